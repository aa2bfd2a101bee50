"""The steps of a reproduction run; each is skipped when its result exists and is up to date.

nnU-Net's steps run its console programs (output into `<out>/logs/<n>_<step>.log`); the cell
instances and the scoring run in this process and write their log the same way.
"""
from __future__ import annotations

import shlex
import shutil
import traceback
from pathlib import Path
from typing import Callable

from swin_umamba.environment import EXT_TRAINER_VAR
from swin_umamba.nnunet_layout import CHECKPOINT_BEST, CHECKPOINT_FINAL, CHECKPOINT_LATEST, DATASET_JSON
from swin_umamba.reproduction.recipes import CONFIGURATION, FOLD, PLANS, SCHEDULE_EPOCHS
from swin_umamba.reproduction.run import ReproduceError, Run
from swin_umamba.workflow import nnunet_commands
from swin_umamba.workflow.nnunet_commands import command_line
from swin_umamba.workflow.nnunet_outputs import checkpoint_epoch
from swin_umamba.workflow.nnunet_outputs import plans_ready as nnunet_plans_ready
from swin_umamba.workflow.nnunet_runner import STOP_ENV_VAR, CommandFailed, format_seconds, nnunet_environment, run_logged
from swin_umamba.workflow.predictions import (check_before_predicting, prediction_stamp, prediction_stamp_matches,
                                              write_prediction_stamp)
from swin_umamba.workflow.progress import NOTE_INDENT, StepCounter, TrainingProgress, say

STEPS = ("plan", "train", "predict", "evaluate")  # cells-to-instances belongs to "evaluate" for --restart-from


class StepFailed(Exception):
    def __init__(self, step: str, returncode: int, log: Path):
        super().__init__(f"step '{step}' failed with exit code {returncode}; log: {log}")
        self.step, self.returncode, self.log = step, returncode, log


# running one step ------------------------------------------------------------------------------------
def run_command(step: str, cmd: list[str], env: dict[str, str], log: Path, verbose: bool) -> float:
    """Run the nnU-Net program `cmd` (a workflow.nnunet_commands list), output to `log`; StepFailed unless it
    exits 0. The console shows everything with `verbose`, else one line per training epoch."""
    StepCounter.note(f"$ {shlex.join(cmd)}")
    StepCounter.note(f"log: {log}")
    epochs = env.get(STOP_ENV_VAR)  # the epochs a training child will run, when it is told
    show = (lambda line: line) if verbose else TrainingProgress(int(epochs) if epochs else None, indent=NOTE_INDENT)
    try:
        elapsed = run_logged(cmd, env, log, show=show)
    except CommandFailed as exc:
        raise StepFailed(step, exc.returncode, log) from exc
    StepCounter.note(f"done in {format_seconds(elapsed)}")
    return elapsed


class StepLog:
    """The log of a step that runs in this process: lines go to the file, and to the console with `echo`."""

    def __init__(self, stream, echo: bool):
        self.stream, self.echo = stream, echo

    def __call__(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()
        if self.echo:
            say(line)


def run_in_process(step: str, equivalent: list[str], log: Path, verbose: bool,
                   work: Callable[[StepLog], None]) -> float:
    """Run `work(log)`; `equivalent` is the swin-umamba command line doing the same, for the log's first line.

    Any exception becomes StepFailed, with its message (or traceback) at the end of the log."""
    import time

    log.parent.mkdir(parents=True, exist_ok=True)
    shown = shlex.join(["swin-umamba", *equivalent])
    StepCounter.note(f"$ {shown}")
    StepCounter.note(f"log: {log}")
    start = time.monotonic()
    with open(log, "w", encoding="utf-8") as stream:
        write = StepLog(stream, verbose)
        write(f"$ {shown}")
        try:
            work(write)
        except Exception as exc:
            from swin_umamba.evaluation.files import EvaluationError
            from swin_umamba.preprocessing.common import ConversionError

            if isinstance(exc, (EvaluationError, ConversionError)):
                write(f"error: {exc}")
            else:  # not a message of ours: keep the traceback
                write(traceback.format_exc().rstrip())
            raise StepFailed(step, 1, log) from exc
    elapsed = time.monotonic() - start
    StepCounter.note(f"done in {format_seconds(elapsed)}")
    return elapsed


# the commands -----------------------------------------------------------------------------------------
def plan_command(run: Run) -> list[str]:
    return nnunet_commands.plan_and_preprocess_command(run.recipe.dataset_id, [CONFIGURATION],
                                                       workers=run.num_processes)


def train_command(run: Run, resume: bool) -> list[str]:
    return nnunet_commands.train_command(run.model, FOLD, device=run.device, resume=resume, num_gpus=run.num_gpus)


def predict_command(run: Run, checkpoint_name: str) -> list[str]:
    # num_processes 0: nnU-Net's sequential mode, no worker processes
    return nnunet_commands.predict_command(run.model, run.test_images, run.predictions, [FOLD], device=run.device,
                                           checkpoint=checkpoint_name, disable_tta=True, workers=run.num_processes)


def instances_command(run: Run) -> list[str]:
    return ["cells-to-instances", "--pred", str(run.predictions), "--out", str(run.instances), "--overwrite"]


def evaluate_command(run: Run, scored: Path) -> list[str]:
    argv = ["evaluate", "--task", run.recipe.task, "--gt", str(run.test_labels), "--pred", str(scored),
            "--out", str(run.metrics_csv), "--mode", "paper", "--quiet"]
    if run.num_processes:
        argv += ["--num-workers", str(run.num_processes)]
    return argv


# what exists already ------------------------------------------------------------------------------------
def plans_ready(run: Run) -> bool:
    """Plans written and every training case preprocessed for the 2d configuration."""
    import json

    try:
        expected = int(json.loads((run.raw / run.dataset_name / DATASET_JSON).read_text())["numTraining"])
    except (OSError, ValueError, KeyError):
        return False
    return nnunet_plans_ready(run.preprocessed / run.dataset_name, PLANS, expected, CONFIGURATION)


def usable_checkpoint(run: Run) -> Path | None:
    """The checkpoint of epoch stop_after - 1 if training got that far, else None.

    checkpoint_{E}.pth exists when E + 1 is a multiple of the trainer's extra_checkpoint_every;
    otherwise checkpoint_final.pth serves when it was written right after that epoch.
    """
    named = run.model_folder / run.checkpoint_name
    final = run.model_folder / CHECKPOINT_FINAL
    if named.is_file() and final.is_file():
        return named
    if final.is_file() and checkpoint_epoch(final) == run.stop_after:
        return final
    return None


def predictions_stamp(run: Run, checkpoint: Path) -> dict:
    """What the run's predictions are made from: the checkpoint (path, SHA-256), test images, configuration, fold."""
    return prediction_stamp({FOLD: checkpoint}, run.test_images, CONFIGURATION)


def predictions_complete(run: Run, cases: list[str], file_ending: str) -> bool:
    return run.predictions.is_dir() and all((run.predictions / f"{c}{file_ending}").is_file() for c in cases)


def scored_folder(run: Run) -> Path:
    """What the metrics read: the cell instances for 703, else nnU-Net's predictions."""
    return run.instances if run.recipe.task == "cells" else run.predictions


# the steps ------------------------------------------------------------------------------------------------
def step_plan(run: Run, steps: StepCounter, redo: bool) -> None:
    if not redo and plans_ready(run):
        steps.begin(f"plan: skipped: plans and preprocessed {CONFIGURATION} data exist in "
                    f"{run.preprocessed / run.dataset_name}")
        return
    steps.begin(f"plan: nnU-Net fingerprint, plans and preprocessing ({CONFIGURATION})")
    run_command("plan", plan_command(run), nnunet_environment(), run.logs / "1_plan.log", run.verbose)


def step_train(run: Run, steps: StepCounter, redo: bool) -> Path:
    if redo and run.model_folder.is_dir():
        stale = sorted(run.model_folder.glob("checkpoint_*.pth"))
        for path in stale:
            path.unlink()
        if stale:
            StepCounter.note(f"--restart-from: removed {len(stale)} checkpoint(s) from {run.model_folder}")
    checkpoint = None if redo else usable_checkpoint(run)
    if checkpoint is not None:
        steps.begin(f"train: skipped: {checkpoint} exists")
        return checkpoint
    resume = any((run.model_folder / n).is_file()
                 for n in (CHECKPOINT_LATEST, CHECKPOINT_FINAL, CHECKPOINT_BEST))
    what = "resuming from nnU-Net's latest checkpoint (--c)" if resume else "from the start"
    steps.begin(f"train: {run.trainer}, {run.stop_after} epochs of the {SCHEDULE_EPOCHS}-epoch cosine schedule, "
                f"{what}")
    StepCounter.note(f"{STOP_ENV_VAR}={run.stop_after}")
    run_command("train", train_command(run, resume), nnunet_environment(**{STOP_ENV_VAR: str(run.stop_after)}),
                run.logs / "2_train.log", run.verbose)
    checkpoint = usable_checkpoint(run)
    if checkpoint is None:
        raise ReproduceError(
            f"training finished but {run.model_folder / run.checkpoint_name} is missing and checkpoint_final.pth "
            f"is not from epoch {run.stop_after - 1}: --stop-after must be a multiple of the trainer's "
            f"extra_checkpoint_every (50 for the paper's trainers), or the trainer's num_epochs is smaller")
    return checkpoint


def step_predict(run: Run, steps: StepCounter, checkpoint: Path, stamp: dict, state: dict, redo: bool,
                 cases: list[str], file_ending: str) -> None:
    if not redo and prediction_stamp_matches(run.predictions, stamp) and predictions_complete(run, cases, file_ending):
        steps.begin(f"predict: skipped: {len(cases)} predictions from {checkpoint.name} in {run.predictions}")
        return
    checked = check_inputs(run, checkpoint)  # before anything of an earlier prediction is removed
    if run.predictions.exists():
        shutil.rmtree(run.predictions)  # made by another checkpoint, or incomplete: start clean
    for step in ("instances", "evaluate"):
        state.pop(step, None)
    run.save_state(state)
    steps.begin(f"predict: {len(cases)} test case(s) with {checkpoint.name}, fold {FOLD}, no test-time "
                f"augmentation")
    StepCounter.note(f"inputs checked (swin-umamba check-inputs): {checked} case(s), {checkpoint.name}")
    run_command("predict", predict_command(run, checkpoint.name), nnunet_environment(), run.logs / "3_predict.log",
                run.verbose)
    if not predictions_complete(run, cases, file_ending):
        raise ReproduceError(f"nnUNetv2_predict ended without writing every prediction into {run.predictions}")
    write_prediction_stamp(run.predictions, stamp)


def check_inputs(run: Run, checkpoint: Path) -> int:
    """What nnUNetv2_predict will read (InputsNotUsable naming every bad file); the number of cases."""
    return check_before_predicting(run.test_images, {run.model_folder.parent: checkpoint.name}, [FOLD])


def step_instances(run: Run, steps: StepCounter, stamp: dict, state: dict, redo: bool) -> None:
    """703 only: nnU-Net's 3-class predictions -> instance TIFFs, as the paper's F1 reads them."""
    from swin_umamba.preprocessing.neurips_cell import cells_to_instances

    if not redo and state.get("instances") == stamp and run.instances.is_dir():
        steps.begin(f"instances: skipped: instance TIFFs in {run.instances}")
        return
    steps.begin("instances: 3-class predictions -> cell instances (8-connected interior components)")
    run_in_process("instances", instances_command(run), run.logs / "4_instances.log", run.verbose,
                   lambda log: cells_to_instances(run.predictions, run.instances, overwrite=True, say=log))
    state["instances"] = stamp
    run.save_state(state)


def score(run: Run, scored: Path, log: StepLog) -> None:
    """The paper's metrics of every test case into metrics.csv."""
    from swin_umamba.evaluation.files import write_csv_atomic
    from swin_umamba.evaluation.runner import evaluate_folder

    result = evaluate_folder(run.recipe.task, run.test_labels, scored, "paper", max(1, run.num_processes or 1))
    write_csv_atomic(run.metrics_csv, result.columns, result.rows)
    log(f"{len(result.rows)} case(s) scored ({run.recipe.task}, paper mode); per-case metrics in {run.metrics_csv}")
    for key, value in result.summary.items():
        log(f"mean {key}: {value:.4f}")


def step_evaluate(run: Run, steps: StepCounter, stamp: dict, state: dict, redo: bool) -> None:
    if run.recipe.task == "cells":
        step_instances(run, steps, stamp, state, redo)
    evaluated = {**stamp, "test_labels": str(run.test_labels.resolve())}
    if not redo and state.get("evaluate") == evaluated and run.metrics_csv.is_file():
        steps.begin(f"evaluate: skipped: {run.metrics_csv} is up to date")
        return
    steps.begin(f"evaluate: paper metrics ({run.recipe.task}, --mode paper) against {run.test_labels}")
    scored = scored_folder(run)
    run_in_process("evaluate", evaluate_command(run, scored), run.logs / f"{run.step_count}_evaluate.log",
                   run.verbose, lambda log: score(run, scored, log))
    state["evaluate"] = evaluated
    run.save_state(state)


# --dry-run --------------------------------------------------------------------------------------------------
def dry_run_lines(run: Run, cases: list[str], redo: dict[str, bool]) -> list[str]:
    """The commands the run would execute, each with whether it would be skipped (nothing is started)."""
    env_line = f"{STOP_ENV_VAR}={run.stop_after} {EXT_TRAINER_VAR}={nnunet_environment()[EXT_TRAINER_VAR]}"
    plan = "skip" if not redo["plan"] and plans_ready(run) else "run"
    checkpoint = None if redo["train"] else usable_checkpoint(run)
    lines = [f"plan ({plan}): {command_line(plan_command(run))}",
             f"train ({'skip' if checkpoint else 'run'}): {env_line} {command_line(train_command(run, resume=False))}",
             f"predict: {command_line(predict_command(run, run.checkpoint_name))}  ({len(cases)} case(s))"]
    if run.recipe.task == "cells":
        lines.append(f"instances: swin-umamba {shlex.join(instances_command(run))}")
    lines.append(f"evaluate: swin-umamba {shlex.join(evaluate_command(run, scored_folder(run)))}")
    return lines
