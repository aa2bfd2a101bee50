"""The demo's steps: nnU-Net's own programs on the embedded dataset, then scores and overlays.

Every nnU-Net step appends its output to the demo's log."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

from swin_umamba.demo.layout import DEMO_DATASETS, TRAINER, dataset_source
from swin_umamba.demo.overlay import write_overlay
from swin_umamba.demo.scoring import Scores, read_image
from swin_umamba.environment import NNUNET_RESULTS_VAR
from swin_umamba.nnunet_layout import CHECKPOINT_FINAL, DATASET_JSON, DEFAULT_PLANS, IMAGES_TS, image_file
from swin_umamba.workflow import nnunet_commands
from swin_umamba.workflow.nnunet_commands import NnUNetModel
from swin_umamba.workflow.nnunet_runner import NNUNET_FOLDERS, run_logged
from swin_umamba.workflow.predictions import check_before_predicting
from swin_umamba.workflow.progress import TrainingProgress

DEVICE = "cpu"
WORKERS = 1  # processes of planning and of prediction: a small CPU gains nothing from more


def demo_model(configuration: str) -> NnUNetModel:
    """The demo trainer's model of `configuration` on its embedded dataset."""
    return NnUNetModel(DEMO_DATASETS[configuration].dataset_id, configuration, TRAINER, DEFAULT_PLANS)


def copy_dataset(workdir: Path, configuration: str) -> Path:
    """The embedded dataset of `configuration` copied into workdir/nnUNet_raw (the other nnU-Net folders
    created); its path."""
    raw_folder, *others = NNUNET_FOLDERS
    raw = workdir / raw_folder / DEMO_DATASETS[configuration].name
    shutil.copytree(dataset_source(configuration), raw)
    for name in others:
        (workdir / name).mkdir(parents=True, exist_ok=True)
    return raw


def plan(env: dict[str, str], log: Path, configuration: str) -> None:
    run_logged(nnunet_commands.plan_and_preprocess_command(DEMO_DATASETS[configuration].dataset_id, [configuration],
                                                           workers=WORKERS), env, log, append=True)


def train(env: dict[str, str], log: Path, configuration: str, fold: str, epochs: int,
          class_names: Sequence[str] = ()) -> None:
    """nnUNetv2_train on CPU; one console line per epoch, its pseudo Dice labelled with `class_names`."""
    run_logged(nnunet_commands.train_command(demo_model(configuration), fold, device=DEVICE), env, log,
               show=TrainingProgress(epochs, class_names=class_names), append=True)


def check_inputs(workdir: Path, raw: Path, configuration: str, fold: str) -> int:
    """The test images and the trained fold's final checkpoint, as `swin-umamba check-inputs` checks them
    (InputsNotUsable naming every bad file). Returns the number of cases."""
    model = demo_model(configuration).folder(workdir / NNUNET_RESULTS_VAR, DEMO_DATASETS[configuration].name)
    return check_before_predicting(raw / IMAGES_TS, {model: CHECKPOINT_FINAL}, [fold])


def predict(env: dict[str, str], log: Path, raw: Path, predictions: Path, configuration: str, fold: str) -> None:
    run_logged(nnunet_commands.predict_command(demo_model(configuration), raw / IMAGES_TS, predictions, [fold],
                                               device=DEVICE, disable_tta=True, workers=WORKERS),
               env, log, append=True)


def overlay_slice(labels) -> int:
    """The slice (first axis) of a volume's ground truth with the most labelled voxels: the organ-richest view."""
    import numpy as np

    return int(np.argmax((np.asarray(labels) > 0).reshape(len(labels), -1).sum(1)))


def write_overlays(raw: Path, scores: Scores, folder: Path) -> None:
    """overlays/<case>.png for every scored case; of a volume, its organ-richest slice (Dice of the volume)."""
    ending = json.loads((raw / DATASET_JSON).read_text())["file_ending"]
    for case in scores.cases:
        image, gt, pred = read_image(raw / IMAGES_TS / image_file(case, ending)), scores.gts[case], scores.preds[case]
        title = f"{case}: ground truth vs Swin-UMamba prediction"
        if image.ndim == 3:
            z = overlay_slice(gt)
            image, gt, pred = image[z], gt[z], pred[z]
            title = f"{case}, slice {z}: ground truth vs Swin-UMamba prediction (Dice of the volume)"
        write_overlay(image, gt, pred, scores.classes, folder / f"{case}.png", title=title, scores=scores.table[case])
