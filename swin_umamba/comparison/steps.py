"""nnU-Net's commands for one compared model: planning, training, prediction; and scoring per case.

Every command is a child process (nnU-Net's own console programs, as a user would run them) whose
output goes to a log file; the console shows one line per training epoch (everything with `verbose`). Each step is
skipped when its result is there: plans with their preprocessed data, a final checkpoint of the
protocol's epoch, predictions stamped with the checkpoint's SHA-256.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from swin_umamba.comparison.protocol import CHECKPOINT, DEFAULT_PLANS, RESENC_PLANNER, RESENC_PLANS, Model, Protocol
from swin_umamba.nnunet_layout import CHECKPOINT_LATEST, DATASET_JSON
from swin_umamba.workflow import nnunet_commands
from swin_umamba.workflow.nnunet_commands import command_line
from swin_umamba.workflow.nnunet_outputs import checkpoint_epoch, plans_ready
from swin_umamba.workflow.nnunet_runner import STOP_ENV_VAR, nnunet_environment, run_logged
from swin_umamba.workflow.predictions import prediction_stamp, prediction_stamp_matches, write_prediction_stamp
from swin_umamba.workflow.progress import NOTE_INDENT, StepCounter, TrainingProgress


class StepError(RuntimeError):
    """A step ended without its result; the message says where to look."""


@dataclass
class NnUNetSteps:
    """Where a comparison runs: nnU-Net's folders (from the environment), device, logs."""

    dataset_id: int
    dataset_name: str
    raw: Path
    preprocessed: Path
    results: Path
    logs: Path
    device: str = "cuda"
    num_processes: int | None = None
    verbose: bool = False

    def run(self, log_name: str, command: list[str], **environment: str | None) -> float:
        log = self.logs / f"{log_name}.log"
        StepCounter.note(f"$ {command_line(command)}")
        StepCounter.note(f"log: {log}")
        epochs = environment.get(STOP_ENV_VAR)
        show = (lambda line: line) if self.verbose else TrainingProgress(int(epochs) if epochs else None,
                                                                         indent=NOTE_INDENT)
        return run_logged(command, nnunet_environment(**environment), log, show=show)

    @property
    def training_cases(self) -> int:
        return int(json.loads((self.raw / self.dataset_name / DATASET_JSON).read_text())["numTraining"])

    # planning ----------------------------------------------------------------------------------------------
    def plan_default(self, configuration: str) -> bool:
        """nnUNetv2_plan_and_preprocess for `configuration`; False when the plans and data were there already."""
        if plans_ready(self.preprocessed / self.dataset_name, DEFAULT_PLANS, self.training_cases, configuration):
            return False
        self.run("plan_default", nnunet_commands.plan_and_preprocess_command(self.dataset_id, [configuration],
                                                                             workers=self.num_processes))
        return True

    def plan_resenc(self, configuration: str) -> bool:
        """nnU-Net's residual-encoder M preset: nnUNetv2_plan_experiment -pl nnUNetPlannerResEncM on the
        existing fingerprint, then nnUNetv2_preprocess of `configuration`."""
        if plans_ready(self.preprocessed / self.dataset_name, RESENC_PLANS, self.training_cases, configuration):
            return False
        self.run("plan_resenc", nnunet_commands.plan_experiment_command(self.dataset_id, RESENC_PLANNER))
        self.run("preprocess_resenc", nnunet_commands.preprocess_command(self.dataset_id, RESENC_PLANS, [configuration],
                                                                         workers=self.num_processes))
        return True

    # training ----------------------------------------------------------------------------------------------
    def fold_folder(self, model: Model, configuration: str, fold: str) -> Path:
        return model.nnunet(self.dataset_id, configuration).fold_folder(self.results, self.dataset_name, fold)

    def trained(self, model: Model, configuration: str, fold: str, epochs: int | None) -> Path | None:
        """The final checkpoint if the model finished training (after `epochs` epochs, when given)."""
        final = self.fold_folder(model, configuration, fold) / CHECKPOINT
        if not final.is_file():
            return None
        return final if epochs is None or checkpoint_epoch(final) == epochs else None

    def train(self, model: Model, configuration: str, fold: str, stop_after: int | None,
              environment: dict[str, str], log_name: str) -> tuple[Path, bool]:
        """(final checkpoint, trained now): nnUNetv2_train with `environment`, resumed with --c from an
        interrupted run; skipped when the final checkpoint of `stop_after` epochs exists."""
        done = self.trained(model, configuration, fold, stop_after)
        if done is not None:
            return done, False
        folder = self.fold_folder(model, configuration, fold)
        if stop_after is not None and (folder / CHECKPOINT).is_file():
            epochs = checkpoint_epoch(folder / CHECKPOINT)
            if epochs is not None and epochs > stop_after:
                raise StepError(f"{folder / CHECKPOINT} is from epoch {epochs}, past the protocol's {stop_after}: "
                                f"move {folder} away to train it again under this protocol")
        resume = any((folder / name).is_file() for name in (CHECKPOINT_LATEST, CHECKPOINT))
        command = nnunet_commands.train_command(model.nnunet(self.dataset_id, configuration), fold,
                                                device=self.device, resume=resume)
        stop = {STOP_ENV_VAR: str(stop_after)} if stop_after is not None else {}
        self.run(log_name, command, **{**environment, **stop})
        done = self.trained(model, configuration, fold, stop_after)
        if done is None:
            raise StepError(f"nnUNetv2_train ended without {folder / CHECKPOINT}"
                            + (f" of epoch {stop_after}" if stop_after else "")
                            + f"; see {self.logs / (log_name + '.log')}")
        return done, True

    # prediction --------------------------------------------------------------------------------------------
    def predict(self, model: Model, protocol: Protocol, checkpoint: Path, images: Path, out: Path,
                file_ending: str, cases: list[str], log_name: str) -> bool:
        """nnUNetv2_predict of `cases` with the model's checkpoint, no TTA; False when the predictions of this
        very checkpoint (same SHA-256) are complete in `out` already."""
        stamp = prediction_stamp({protocol.fold: checkpoint}, images, protocol.configuration)
        complete = out.is_dir() and all((out / f"{c}{file_ending}").is_file() for c in cases)
        if complete and prediction_stamp_matches(out, stamp):
            return False
        if out.exists():
            shutil.rmtree(out)  # from another checkpoint, or incomplete: start clean
        # num_processes 0: nnU-Net's sequential mode
        self.run(log_name, nnunet_commands.predict_command(
            model.nnunet(self.dataset_id, protocol.configuration), images, out, [protocol.fold], device=self.device,
            checkpoint=Path(checkpoint).name, disable_tta=True, workers=self.num_processes))
        missing = [c for c in cases if not (out / f"{c}{file_ending}").is_file()]
        if missing:
            raise StepError(f"nnUNetv2_predict wrote no prediction for {', '.join(missing)} in {out}; "
                            f"see {self.logs / (log_name + '.log')}")
        write_prediction_stamp(out, stamp)
        return True


def per_case_values(task: str, ground_truth: Path, predictions: Path, mode: str = "paper",
                    rules=None) -> tuple[dict[str, dict[str, float]], list[dict]]:
    """({metric: {case: value}}, the evaluation package's rows): every case scored with
    `swin_umamba.evaluation` for `task`; a case's value of a metric is the task's own summary of that
    one case (e.g. abdomen: the mean over the organs of the case). The metrics are the task's overall
    ones (DSC, NSD, F1); the per-label means the nnunet task also reports (liver_DSC, ...) are left out."""
    from swin_umamba.evaluation.runner import evaluate_folder, summarize

    result = evaluate_folder(task, ground_truth, predictions, mode, rules=rules)
    values: dict[str, dict[str, float]] = {}
    for row in result.rows:
        for metric, value in summarize(task, [row], rules).items():
            if "_" not in metric:
                values.setdefault(metric, {})[row["Name"]] = float(value)
    return values, result.rows
