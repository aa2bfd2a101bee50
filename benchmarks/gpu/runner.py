"""Runs the sections of the GPU benchmark in order within the time budget and writes the report
(``gpu_bench.json``, ``gpu_bench.md``; ``gpu_bench_dry_run.*`` for a dry run) after every measurement.

``--budget-s``: no new measurement starts once the run would pass it; the training section leaves
``--train-reserve-s`` of it to ``nnunet_train``; what does not fit is listed with "skipped: out of
time". ``--dry-run`` shrinks every shape and repeat count so that the whole command runs on the CPU
in minutes (Triton under its interpreter, compile with the ``eager`` backend); what needs CUDA is
skipped with the reason. The planned batch of the Swin-UMamba networks is the one ``swin-umamba
plan`` gives the case's patch with 14 classes (nnU-Net's 8 GiB target, the measured memory model);
PlainConvUNet's is nnU-Net's own plan for such data.
"""
from __future__ import annotations

import datetime

import json
import os
import platform
import time
import traceback
from pathlib import Path

import torch

from benchmarks import REPOSITORY_ROOT, timing
from benchmarks.gpu import compile_counts, cross_scan, memory3d, nnunet_train, scan, training
from benchmarks.gpu.common import Budget, Run, error_text
from swin_umamba.fileio import write_text_atomic

SECTIONS = (scan, cross_scan, training, compile_counts, memory3d, nnunet_train)  # in the order they run
SECTION_NAMES = tuple(s.NAME for s in SECTIONS)
# one dated folder per run, as benchmarks/gpu_results/README.md lists them
DEFAULT_OUT = REPOSITORY_ROOT / "benchmarks" / "gpu_results" / f"{datetime.date.today().isoformat()}_gpu_bench"
REPORT_STEM, DRY_RUN_STEM = "gpu_bench", "gpu_bench_dry_run"


def tables(report: dict) -> list[tuple[str, list, list]]:
    """(title, columns, rows) of every table, for the terminal and for Markdown."""
    return [t for s in SECTIONS for t in s.tables(report["sections"].get(s.NAME, {}))]


def markdown(report: dict) -> str:
    meta = report["meta"]
    lines = [f"# GPU benchmark{' (dry run)' if meta['dry_run'] else ''}", "",
             f"{meta['device_name']}, torch {meta['torch']} (CUDA {meta['cuda']}), triton {meta['triton']}, "
             f"Python {meta['python']}; {meta['date']}; {meta['elapsed_s']:.0f} s of a {meta['budget_s']:.0f} s budget.",
             ""]
    for name in SECTION_NAMES:
        sec = report["sections"].get(name, {"status": "not run"})
        status = sec.get("status", "running")
        extra = sec.get("error") or sec.get("reason") or ""
        lines.append(f"- `{name}`: {status}{' (' + extra + ')' if extra else ''}"
                     + (f", verdict {sec['verdict']}" if "verdict" in sec else ""))
    for title, cols, rows in tables(report):
        lines += ["", f"## {title}", "", timing.markdown_table(cols, rows)]
    return "\n".join(lines) + "\n"


def environment(settings, budget) -> dict:
    from swin_umamba.ops import dispatch

    try:
        import triton

        triton_version = triton.__version__
    except Exception as exc:
        triton_version = f"not importable ({error_text(exc)})"
    cuda = settings.cuda and torch.cuda.is_available()
    return {"device": str(settings.device), "device_name": torch.cuda.get_device_name(settings.device) if cuda
            else platform.processor() or platform.machine(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "triton": triton_version, "python": platform.python_version(),
            "mamba_available": dispatch.mamba_scan_fn() is not None, "mamba_import_error": dispatch.mamba_error(),
            "dry_run": settings.dry, "budget_s": budget.total, "sections": list(settings.sections),
            "cases": [c.label() for c in settings.cases],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "elapsed_s": 0.0,
            "triton_interpreter": settings.triton_interpreter}


def run(settings, budget: Budget, out_dir: str) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    stem = DRY_RUN_STEM if settings.dry else REPORT_STEM
    report = {"meta": environment(settings, budget), "sections": {}}
    paths = (os.path.join(out_dir, stem + ".json"), os.path.join(out_dir, stem + ".md"))

    def save():
        report["meta"]["elapsed_s"] = round(budget.elapsed(), 1)
        write_text_atomic(Path(paths[0]), json.dumps(report, indent=1, default=str))
        write_text_atomic(Path(paths[1]), markdown(report))

    meta = report["meta"]
    print(f"{meta['device_name']}, torch {meta['torch']} (CUDA {meta['cuda']}), triton {meta['triton']}; "
          f"mamba kernel: {meta['mamba_available']} {meta['mamba_import_error'] or ''}", flush=True)
    ctx = Run(settings, budget, save, report["sections"], out_dir)
    for section in SECTIONS:
        result = report["sections"].setdefault(section.NAME, {})
        if section.NAME not in settings.sections:
            result.update(status="skipped", reason="not among --sections")
            continue
        print(f"\n== {section.NAME} ({budget.elapsed():.0f} s of {budget.total:.0f} s)", flush=True)
        t0 = time.perf_counter()
        result["status"] = "running"
        try:
            section.run(ctx, result)
            if result["status"] == "running":
                result["status"] = "ok"
        except Exception as exc:  # record it and go on with the next section
            result.update(status="error", error=error_text(exc), traceback=traceback.format_exc(limit=8))
            print(f"  error: {result['error']}", flush=True)
        result["seconds"] = round(time.perf_counter() - t0, 1)
        save()
    print()
    for title, cols, rows in tables(report):
        print(f"\n{title}")
        timing.print_table(cols, rows)
    print(f"\nwrote {paths[0]} and {paths[1]} ({budget.elapsed():.0f} s)")
    return report
