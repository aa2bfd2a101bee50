"""nnU-Net's commands for one compared model: planning, training, prediction; and scoring per case.

Every command is a child process (nnU-Net's own console programs, as a user would run them) whose
output goes to a log file; the console shows one line per training epoch (everything with `verbose`). Each step is
skipped when its result is there: plans with their preprocessed data, a final checkpoint of the
protocol's epoch, predictions stamped with the checkpoint's SHA-256.
"""
from __future__ import annotations

import json
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from swin_umamba.comparison.protocol import (CHECKPOINT, CONFIGURATION, DEFAULT_PLANS, RESENC_PLANNER, RESENC_PLANS,
                                             Model, Protocol)
from swin_umamba.fileio import sha256_of, write_text_atomic
from swin_umamba.nnunet_layout import CHECKPOINT_LATEST, DATASET_JSON, fold_folder
from swin_umamba.workflow.nnunet_outputs import checkpoint_epoch, plans_ready
from swin_umamba.workflow.nnunet_runner import STOP_ENV_VAR, nnunet_environment, nnunet_tool, run_logged
from swin_umamba.workflow.progress import NOTE_INDENT, StepCounter, TrainingProgress

PREDICTION_STAMP = ".prediction.json"  # in each predictions folder: which checkpoint made it


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
        StepCounter.note(f"$ {shlex.join([Path(command[0]).name, *command[1:]])}")
        StepCounter.note(f"log: {log}")
        epochs = environment.get(STOP_ENV_VAR)
        show = (lambda line: line) if self.verbose else TrainingProgress(int(epochs) if epochs else None,
                                                                         indent=NOTE_INDENT)
        return run_logged(command, nnunet_environment(**environment), log, show=show)

    @property
    def training_cases(self) -> int:
        return int(json.loads((self.raw / self.dataset_name / DATASET_JSON).read_text())["numTraining"])

    def _workers(self) -> list[str]:
        if self.num_processes is None:
            return []
        workers = str(max(1, self.num_processes))
        return ["-npfp", workers, "-np", workers]

    # planning ----------------------------------------------------------------------------------------------
    def plan_default(self) -> bool:
        """nnUNetv2_plan_and_preprocess for 2d; False when the plans and data were there already."""
        if plans_ready(self.preprocessed / self.dataset_name, DEFAULT_PLANS, self.training_cases, CONFIGURATION):
            return False
        self.run("plan_default", [nnunet_tool("nnUNetv2_plan_and_preprocess"), "-d", str(self.dataset_id),
                                  "-c", CONFIGURATION, "--verify_dataset_integrity", *self._workers()])
        return True

    def plan_resenc(self) -> bool:
        """nnU-Net's residual-encoder M preset: nnUNetv2_plan_experiment -pl nnUNetPlannerResEncM on the
        existing fingerprint, then nnUNetv2_preprocess of its 2d configuration."""
        if plans_ready(self.preprocessed / self.dataset_name, RESENC_PLANS, self.training_cases, CONFIGURATION):
            return False
        self.run("plan_resenc", [nnunet_tool("nnUNetv2_plan_experiment"), "-d", str(self.dataset_id),
                                 "-pl", RESENC_PLANNER])
        workers = [] if self.num_processes is None else ["-np", str(max(1, self.num_processes))]
        self.run("preprocess_resenc", [nnunet_tool("nnUNetv2_preprocess"), "-d", str(self.dataset_id),
                                       "-plans_name", RESENC_PLANS, "-c", CONFIGURATION, *workers])
        return True

    # training ----------------------------------------------------------------------------------------------
    def fold_folder(self, model: Model, fold: str) -> Path:
        return fold_folder(model.folder(self.results, self.dataset_name), fold)

    def trained(self, model: Model, fold: str, epochs: int | None) -> Path | None:
        """The final checkpoint if the model finished training (after `epochs` epochs, when given)."""
        final = self.fold_folder(model, fold) / CHECKPOINT
        if not final.is_file():
            return None
        return final if epochs is None or checkpoint_epoch(final) == epochs else None

    def train(self, model: Model, fold: str, stop_after: int | None, environment: dict[str, str],
              log_name: str) -> tuple[Path, bool]:
        """(final checkpoint, trained now): nnUNetv2_train with `environment`, resumed with --c from an
        interrupted run; skipped when the final checkpoint of `stop_after` epochs exists."""
        done = self.trained(model, fold, stop_after)
        if done is not None:
            return done, False
        folder = self.fold_folder(model, fold)
        if stop_after is not None and (folder / CHECKPOINT).is_file():
            epochs = checkpoint_epoch(folder / CHECKPOINT)
            if epochs is not None and epochs > stop_after:
                raise StepError(f"{folder / CHECKPOINT} is from epoch {epochs}, past the protocol's {stop_after}: "
                                f"move {folder} away to train it again under this protocol")
        resume = any((folder / name).is_file() for name in (CHECKPOINT_LATEST, CHECKPOINT))
        command = [nnunet_tool("nnUNetv2_train"), str(self.dataset_id), CONFIGURATION, fold, "-tr", model.trainer,
                   "-p", model.plans, "-device", self.device] + (["--c"] if resume else [])
        stop = {STOP_ENV_VAR: str(stop_after)} if stop_after is not None else {}
        self.run(log_name, command, **{**environment, **stop})
        done = self.trained(model, fold, stop_after)
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
        stamp = {"checkpoint": str(Path(checkpoint).resolve()), "sha256": sha256_of(checkpoint),
                 "images": str(Path(images).resolve())}
        stamp_file = out / PREDICTION_STAMP
        complete = out.is_dir() and all((out / f"{c}{file_ending}").is_file() for c in cases)
        try:
            if complete and json.loads(stamp_file.read_text()) == stamp:
                return False
        except (OSError, ValueError):
            pass
        if out.exists():
            shutil.rmtree(out)  # from another checkpoint, or incomplete: start clean
        command = [nnunet_tool("nnUNetv2_predict"), "-i", str(images), "-o", str(out), "-d", str(self.dataset_id),
                   "-c", protocol.configuration, "-tr", model.trainer, "-p", model.plans, "-f", protocol.fold,
                   "-chk", Path(checkpoint).name, "--disable_tta", "-device", self.device, "--disable_progress_bar"]
        if self.num_processes is not None:  # 0: nnU-Net's sequential mode
            command += ["-npp", str(self.num_processes), "-nps", str(self.num_processes)]
        self.run(log_name, command)
        missing = [c for c in cases if not (out / f"{c}{file_ending}").is_file()]
        if missing:
            raise StepError(f"nnUNetv2_predict wrote no prediction for {', '.join(missing)} in {out}; "
                            f"see {self.logs / (log_name + '.log')}")
        write_text_atomic(stamp_file, json.dumps(stamp, indent=2) + "\n")
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
