"""Section ``nnunet_train``: ``nnUNetv2_plan_and_preprocess`` and ``nnUNetv2_train`` with the benchmark
trainer (``trainers/bench_trainer.py``: one epoch of 4 iterations) and SWIN_UMAMBA_SCAN=triton, in a
temporary nnU-Net work folder per run: the 2D demo dataset (2d, nnU-Net's torch.compile on), then
the 3D demo dataset (3d_fullres, eager). Exit codes, times and the last lines of the output and of
the training log (all output in ``nnunet_train.log``). The commands come from ``swin_umamba.workflow.nnunet_commands`` and run
through ``run_logged``, each within what is left of the budget."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
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
DEMO_3D_DATASET_ID = 992  # swin_umamba/demo_data's 3D dataset
CONFIGURATION_3D = "3d_fullres"
MIN_STEP_S = 30  # a step is not started with less time than this left
LAST_LINES = 12


@dataclass(frozen=True)
class TrainRun:
    """One dataset and configuration trained by the section; ``compiled``: nnU-Net's torch.compile on."""

    dataset_id: int
    dataset_name: str
    configuration: str
    source: Path
    compiled: bool

    def model(self) -> nnunet_commands.NnUNetModel:
        return nnunet_commands.NnUNetModel(self.dataset_id, self.configuration, BENCH_TRAINER, DEFAULT_PLANS)


def demo_3d_run() -> TrainRun:
    """The 3D demo dataset shipped beside the 2D one, trained 3d_fullres (eager: compiling the 3D network
    takes minutes of the budget)."""
    folder = next(dataset_source().parent.glob(f"Dataset{DEMO_3D_DATASET_ID:03d}_*"))
    return TrainRun(DEMO_3D_DATASET_ID, folder.name, CONFIGURATION_3D, folder, compiled=False)


def train_runs() -> list[TrainRun]:
    return [TrainRun(DATASET_ID, DATASET_NAME, CONFIGURATION, dataset_source(), compiled=True), demo_3d_run()]


def commands(run: TrainRun, device: str) -> list[tuple[str, list[str]]]:
    """(step name, command) of one run, in order."""
    return [("plan_and_preprocess", nnunet_commands.plan_and_preprocess_command(run.dataset_id, [run.configuration],
                                                                                workers=4)),
            ("train", nnunet_commands.train_command(run.model(), 0, device=device))]


def run(ctx, result) -> None:
    settings = ctx.settings
    runs = train_runs()
    result.update(trainer=BENCH_TRAINER, scan="triton",
                  commands=[nnunet_commands.command_line(cmd) for r in runs for _, cmd in commands(r, settings.device.type)],
                  runs=[])
    if settings.dry:
        result.update(status="skipped", reason="dry run: a real nnUNetv2_train (minutes) runs only without --dry-run")
        return
    if not settings.cuda:
        result["note"] = "on the CPU: nnU-Net does not compile and SWIN_UMAMBA_SCAN=triton falls back"
    for i, train_run in enumerate(runs):
        entry = {"dataset": train_run.dataset_name, "configuration": train_run.configuration,
                 "compile": f"{COMPILE_VAR}={'true' if train_run.compiled else 'false'}"}
        result["runs"].append(entry)
        run_one(ctx, train_run, entry, append_log=i > 0)
    result["ended_cleanly"] = all(r.get("ended_cleanly") for r in result["runs"])


def run_one(ctx, train_run: TrainRun, entry: dict, append_log: bool) -> None:
    """Plan, preprocess and train one dataset in a temporary nnU-Net work folder; ``entry`` gets the steps."""
    settings, budget = ctx.settings, ctx.budget
    steps = commands(train_run, settings.device.type)
    work = Path(tempfile.mkdtemp(prefix="gpu_bench_nnunet_"))
    log = Path(ctx.out_dir) / LOG_NAME
    env = nnunet_environment(work, **{SCAN_BACKEND_VAR: "triton", COMPILE_VAR: str(train_run.compiled).lower(),
                                      EXT_TRAINER_VAR: os.pathsep.join([str(trainers_dir()), str(BENCH_TRAINERS_DIR)])})
    done = entry["steps"] = []
    try:
        shutil.copytree(train_run.source, work / NNUNET_RAW_VAR / train_run.dataset_name)
        for i, (name, cmd) in enumerate(steps):
            step = {"step": f"{train_run.configuration} {name}"}
            done.append(step)
            left = budget.left() - 5
            if left < MIN_STEP_S:
                step["error"] = "skipped: out of time"
                break
            append = append_log or i > 0
            offset = log.stat().st_size if append and log.exists() else 0
            t0 = time.perf_counter()
            try:
                run_logged(cmd, env, log, append=append, timeout=min(left, settings.train_timeout))
                step["exit_code"] = 0
            except CommandTimedOut as exc:
                step.update(exit_code=None, error=f"timed out after {exc.timeout:.0f} s")
            except CommandFailed as exc:
                step["exit_code"] = exc.returncode
            step["seconds"] = round(time.perf_counter() - t0, 1)
            step["last_lines"] = log_tail(log, LAST_LINES, offset).splitlines()
            print(f"  {step['step']}: exit code {step['exit_code']} in {step['seconds']} s", flush=True)
            for line in step["last_lines"][-4:]:
                print(f"    {line}", flush=True)
            ctx.save()
            if step["exit_code"] != 0:
                break
        fold = train_run.model().fold_folder(work / NNUNET_RESULTS_VAR, train_run.dataset_name, 0)
        logs = sorted(fold.glob("training_log_*.txt")) if fold.is_dir() else []
        if logs:
            entry["training_log_last_lines"] = log_tail(logs[-1], LAST_LINES).splitlines()
        entry["checkpoint_final"] = (fold / CHECKPOINT_FINAL).is_file()
        entry["ended_cleanly"] = bool(len(done) == len(steps) and all(s.get("exit_code") == 0 for s in done)
                                      and entry["checkpoint_final"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def tables(result: dict) -> list[tuple[str, list, list]]:
    n = timing.number
    steps = [step for r in result.get("runs", []) for step in r.get("steps", [])]
    if not steps:
        return []
    cols = [("step", "<20", n("step", "")), ("exit code", ">9", n("exit_code", "")),
            ("seconds", ">8", n("seconds", ".1f")), ("last line", "<40", lambda r: (r.get("last_lines") or [None])[-1]),
            ("note", "<10", n("error", ""))]
    runs = "; ".join(f"{r['configuration']} ({r['compile']}) ended cleanly: {r.get('ended_cleanly')}"
                     for r in result["runs"])
    return [(f"nnUNetv2_train ({result.get('trainer')}, SWIN_UMAMBA_SCAN=triton): {runs}", cols, steps)]
