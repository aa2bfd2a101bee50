"""Section ``nnunet_train``: ``nnUNetv2_plan_and_preprocess`` and ``nnUNetv2_train`` of the demo dataset
with the benchmark trainer (``trainers/bench_trainer.py``: one epoch of 4 iterations),
SWIN_UMAMBA_SCAN=triton and nnU-Net's torch.compile on, in a temporary nnU-Net work folder: exit
codes, times and the last lines of the output and of the training log (all output in
``nnunet_train.log``). The commands come from ``swin_umamba.workflow.nnunet_commands`` and run
through ``run_logged``, each within what is left of the budget."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks import timing
from swin_umamba.demo.layout import CONFIGURATION, DATASET_ID, DATASET_NAME, dataset_source
from swin_umamba.environment import COMPILE_VAR, EXT_TRAINER_VAR, NNUNET_RAW_VAR, NNUNET_RESULTS_VAR
from swin_umamba.environment import SCAN_BACKEND_VAR, trainers_dir
from swin_umamba.nnunet_layout import CHECKPOINT_FINAL, DEFAULT_PLANS
from swin_umamba.workflow import nnunet_commands
from swin_umamba.workflow.nnunet_runner import CommandFailed, CommandTimedOut, log_tail, nnunet_environment
from swin_umamba.workflow.nnunet_runner import run_logged

NAME = "nnunet_train"
BENCH_TRAINER = "nnUNetTrainerSwinUMambaScratch_bench"
BENCH_TRAINERS_DIR = Path(__file__).resolve().parent / "trainers"
LOG_NAME = "nnunet_train.log"
MIN_STEP_S = 30  # a step is not started with less time than this left
LAST_LINES = 12


def commands(device: str) -> list[tuple[str, list[str]]]:
    """(step name, command) of the section, in order."""
    model = nnunet_commands.NnUNetModel(DATASET_ID, CONFIGURATION, BENCH_TRAINER, DEFAULT_PLANS)
    return [("plan_and_preprocess", nnunet_commands.plan_and_preprocess_command(DATASET_ID, [CONFIGURATION],
                                                                                workers=4)),
            ("train", nnunet_commands.train_command(model, 0, device=device))]


def run(ctx, result) -> None:
    settings, budget = ctx.settings, ctx.budget
    steps = commands(settings.device.type)
    result.update(trainer=BENCH_TRAINER, scan="triton", compile=f"{COMPILE_VAR}=true",
                  commands=[nnunet_commands.command_line(cmd) for _, cmd in steps])
    if settings.dry:
        result.update(status="skipped", reason="dry run: a real nnUNetv2_train (minutes) runs only without --dry-run")
        return
    if not settings.cuda:
        result["note"] = "on the CPU: nnU-Net does not compile and SWIN_UMAMBA_SCAN=triton falls back"
    work = Path(tempfile.mkdtemp(prefix="gpu_bench_nnunet_"))
    log = Path(ctx.out_dir) / LOG_NAME
    env = nnunet_environment(work, **{SCAN_BACKEND_VAR: "triton", COMPILE_VAR: "true",
                                      EXT_TRAINER_VAR: os.pathsep.join([str(trainers_dir()), str(BENCH_TRAINERS_DIR)])})
    done = result["steps"] = []
    try:
        shutil.copytree(dataset_source(), work / NNUNET_RAW_VAR / DATASET_NAME)
        for i, (name, cmd) in enumerate(steps):
            step = {"step": name}
            done.append(step)
            left = budget.left() - 5
            if left < MIN_STEP_S:
                step["error"] = "skipped: out of time"
                break
            offset = log.stat().st_size if i and log.exists() else 0
            t0 = time.perf_counter()
            try:
                run_logged(cmd, env, log, append=i > 0, timeout=min(left, settings.train_timeout))
                step["exit_code"] = 0
            except CommandTimedOut as exc:
                step.update(exit_code=None, error=f"timed out after {exc.timeout:.0f} s")
            except CommandFailed as exc:
                step["exit_code"] = exc.returncode
            step["seconds"] = round(time.perf_counter() - t0, 1)
            step["last_lines"] = log_tail(log, LAST_LINES, offset).splitlines()
            print(f"  {name}: exit code {step['exit_code']} in {step['seconds']} s", flush=True)
            for line in step["last_lines"][-4:]:
                print(f"    {line}", flush=True)
            ctx.save()
            if step["exit_code"] != 0:
                break
        model = nnunet_commands.NnUNetModel(DATASET_ID, CONFIGURATION, BENCH_TRAINER, DEFAULT_PLANS)
        fold = model.fold_folder(work / NNUNET_RESULTS_VAR, DATASET_NAME, 0)
        logs = sorted(fold.glob("training_log_*.txt")) if fold.is_dir() else []
        if logs:
            result["training_log_last_lines"] = log_tail(logs[-1], LAST_LINES).splitlines()
        result["checkpoint_final"] = (fold / CHECKPOINT_FINAL).is_file()
        result["ended_cleanly"] = bool(len(done) == len(steps) and all(s.get("exit_code") == 0 for s in done)
                                       and result["checkpoint_final"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def tables(result: dict) -> list[tuple[str, list, list]]:
    n = timing.number
    if not result.get("steps"):
        return []
    cols = [("step", "<20", n("step", "")), ("exit code", ">9", n("exit_code", "")),
            ("seconds", ">8", n("seconds", ".1f")), ("last line", "<40", lambda r: (r.get("last_lines") or [None])[-1]),
            ("note", "<10", n("error", ""))]
    return [(f"nnUNetv2_train ({result.get('trainer')}, SWIN_UMAMBA_SCAN=triton, compiled): "
             f"ended cleanly: {result.get('ended_cleanly')}", cols, result["steps"])]
