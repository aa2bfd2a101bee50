"""The protocol a comparison holds fixed, and the models compared.

A baseline is only a fair comparison when it sees what our run saw: the same preprocessed data
(dataset, configuration), the same fold, the same number of epochs of the same-length schedule
with the same stop, the same iterations per epoch, the same test cases and no test-time
augmentation. The configuration and run length are read from the trained model itself (nnU-Net's `debug.json` in the
fold folder records the trainer's attributes), so it holds for any trainer, short test ones included.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from swin_umamba.environment import (ITERATIONS_PER_EPOCH_VAR, SCHEDULE_EPOCHS_VAR, STOP_AFTER_EPOCHS_VAR,
                                     VAL_ITERATIONS_PER_EPOCH_VAR)
from swin_umamba.network_registry import BASELINE_TRAINER
from swin_umamba.nnunet_layout import CHECKPOINT_FINAL, DEFAULT_PLANS
from swin_umamba.workflow.nnunet_commands import NnUNetModel
from swin_umamba.workflow.trainer_lookup import network_trained_by

RESENC_PLANNER = "nnUNetPlannerResEncM"  # nnUNetv2_plan_experiment -pl
RESENC_PLANS = "nnUNetResEncUNetMPlans"  # the plans identifier it writes
CHECKPOINT = CHECKPOINT_FINAL  # written right after the last (stopped) epoch


class ProtocolError(RuntimeError):
    """The trained model does not say how it was trained; the message names the file."""


@dataclass(frozen=True)
class Model:
    """One of the compared models: a label for tables, and how nnU-Net names it."""

    label: str
    trainer: str
    plans: str

    def nnunet(self, dataset: int | str, configuration: str) -> NnUNetModel:
        return NnUNetModel(dataset, configuration, self.trainer, self.plans)

    def folder(self, results: Path, dataset_name: str, configuration: str) -> Path:
        return self.nnunet(dataset_name, configuration).folder(results, dataset_name)

    @property
    def slug(self) -> str:
        """A file-name-safe form of the label (folders of predictions)."""
        return "".join(c if c.isalnum() else "_" for c in self.label).strip("_")


def our_model(trainer: str, extra_trainer_folders=()) -> Model:
    """The model `trainer` trains on nnU-Net's default plans, labelled with the paper's name of the network it
    builds (its own name for a trainer of another network). Raises TrainerNotFound."""
    network = network_trained_by(trainer, extra_trainer_folders)
    return Model(network.paper_name if network is not None else trainer, trainer, DEFAULT_PLANS)


def baseline_models(trainer: str = BASELINE_TRAINER) -> tuple[Model, Model]:
    """nnU-Net's default U-Net and its residual-encoder M preset, both trained by `trainer`."""
    return (Model("nnU-Net", trainer, DEFAULT_PLANS), Model("nnU-Net ResEnc M", trainer, RESENC_PLANS))


@dataclass(frozen=True)
class Protocol:
    dataset_id: int
    fold: str
    schedule_epochs: int  # epochs the learning-rate schedule spans
    stop_after: int  # epochs actually trained
    iterations_per_epoch: int
    val_iterations_per_epoch: int
    configuration: str

    def baseline_environment(self) -> dict[str, str]:
        """What nnUNetTrainerProtocol reads to run this long."""
        return {SCHEDULE_EPOCHS_VAR: str(self.schedule_epochs), STOP_AFTER_EPOCHS_VAR: str(self.stop_after),
                ITERATIONS_PER_EPOCH_VAR: str(self.iterations_per_epoch),
                VAL_ITERATIONS_PER_EPOCH_VAR: str(self.val_iterations_per_epoch)}

    def describe(self) -> str:
        stop = (f"stopped after {self.stop_after} of {self.schedule_epochs} epochs of the schedule"
                if self.stop_after < self.schedule_epochs else f"{self.schedule_epochs} epochs")
        return (f"dataset {self.dataset_id}, {self.configuration}, fold {self.fold}, {stop}, "
                f"{self.iterations_per_epoch} training and {self.val_iterations_per_epoch} validation iterations "
                f"per epoch, {CHECKPOINT}, no test-time augmentation")


def _int(record: dict, key: str, path: Path) -> int:
    try:
        return int(float(record[key]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"{path} has no usable '{key}' ({exc}); train the model with nnUNetv2_train first") from exc


def protocol_of_trained_model(fold_folder: Path, dataset_id: int, fold: str) -> Protocol:
    """The configuration and run length of the model trained in `fold_folder`, from nnU-Net's debug.json there.

    nnU-Net writes the file when training starts, after the trainer set itself up, so `num_epochs` is
    the number of epochs run (after a stop) and `schedule_epochs` (Swin-UMamba's and the baseline's
    trainers) the length of the schedule; a trainer without it ran its schedule in full."""
    path = Path(fold_folder) / "debug.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ProtocolError(f"cannot read {path} ({exc}); train the model with nnUNetv2_train first") from exc
    epochs = _int(record, "num_epochs", path)
    schedule = _int(record, "schedule_epochs", path) if "schedule_epochs" in record else epochs
    configuration = record.get("configuration_name")
    if not configuration:
        raise ProtocolError(f"{path} names no 'configuration_name'; train the model with nnUNetv2_train first")
    return Protocol(dataset_id, fold, schedule, epochs, _int(record, "num_iterations_per_epoch", path),
                    _int(record, "num_val_iterations_per_epoch", path), configuration)
