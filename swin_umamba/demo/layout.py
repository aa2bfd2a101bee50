"""The demo's dataset, trainer and work folder (default ./swin_umamba_demo):

    nnUNet_raw/ nnUNet_preprocessed/ nnUNet_results/   nnU-Net's three folders
    predictions/                                       predicted label maps of the held-out cases
    overlays/<case>.png                                image, ground truth and prediction side by side
    dice.csv                                           Dice per case and class, with a mean row
    demo.log                                           full output of the nnU-Net commands
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from swin_umamba.environment import (AUGMENTATION_WORKERS_VAR, DEFAULT_WORKERS_VAR, DEMO_EPOCHS_VAR,
                                     DEMO_ITERATIONS_VAR, EXT_TRAINER_VAR, trainers_dir)
from swin_umamba.network_registry import DEMO_TRAINER
from swin_umamba.workflow.nnunet_runner import NNUNET_FOLDERS, nnunet_environment

TRAINER = DEMO_TRAINER


@dataclass(frozen=True)
class DemoDataset:
    """An embedded data set (swin_umamba/demo_data/<name>) and the nnU-Net configuration the demo trains on it."""

    dataset_id: int
    name: str
    configuration: str
    description: str


# `swin-umamba demo --configuration`: the 2D demo on axial slices, the 3D demo on 6 mm slabs of the same subject
DEMO_DATASETS = {d.configuration: d for d in (
    DemoDataset(990, "Dataset990_DemoAbdomenMR", "2d", "16 training and 4 test 2D MR slices"),
    DemoDataset(992, "Dataset992_DemoAbdomenMR3D", "3d_fullres",
                "5 training and 1 test 3D MR volumes of 8 slices, 6 x 3 x 3 mm"),
)}
CONFIGURATION = "2d"  # the default
DATASET_ID = DEMO_DATASETS[CONFIGURATION].dataset_id
DATASET_NAME = DEMO_DATASETS[CONFIGURATION].name
LOG_NAME = "demo.log"
CSV_NAME = "dice.csv"
PREDICTIONS = "predictions"
OVERLAYS = "overlays"
# what the demo creates in its folder; --overwrite removes these and nothing else
OUTPUT_NAMES = (*NNUNET_FOLDERS, PREDICTIONS, OVERLAYS, CSV_NAME, LOG_NAME)


class DemoError(RuntimeError):
    """A step of the demo failed; the message says what to do."""


def dataset_source(configuration: str = CONFIGURATION) -> Path:
    """The dataset shipped inside the package for the demo of `configuration`."""
    return Path(__file__).resolve().parent.parent / "demo_data" / DEMO_DATASETS[configuration].name


def prepare_workdir(workdir: Path, overwrite: bool) -> None:
    """Create the work folder; refuse a non-empty one unless `overwrite`, which removes only the
    demo's own outputs (OUTPUT_NAMES) and leaves any other file in the folder alone."""
    if workdir.exists() and not workdir.is_dir():
        raise DemoError(f"{workdir} exists and is not a folder; choose another --workdir")
    if workdir.is_dir() and any(workdir.iterdir()):
        if not overwrite:
            raise DemoError(f"{workdir} is not empty. Pass --overwrite to replace the demo's outputs in it "
                            f"({', '.join(OUTPUT_NAMES)}), or choose another --workdir.")
        for name in OUTPUT_NAMES:
            path = workdir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    workdir.mkdir(parents=True, exist_ok=True)


def child_environment(workdir: Path, epochs: int | None, iterations: int | None) -> dict[str, str]:
    """The environment of the nnU-Net commands: our folders, only our trainers, CPU-friendly settings."""
    return nnunet_environment(
        workdir,
        **{EXT_TRAINER_VAR: str(trainers_dir()),
           # one augmentation worker and one export worker (nnU-Net's defaults, 12 and 8 processes that each
           # import torch, only compete with the training step on a small CPU); the user's settings win
           AUGMENTATION_WORKERS_VAR: os.environ.get(AUGMENTATION_WORKERS_VAR, "1"),
           DEFAULT_WORKERS_VAR: os.environ.get(DEFAULT_WORKERS_VAR, "1"),
           # the demo's length is set by --epochs/--iterations
           DEMO_EPOCHS_VAR: None if epochs is None else str(epochs),
           DEMO_ITERATIONS_VAR: None if iterations is None else str(iterations)},
    )
