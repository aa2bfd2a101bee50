"""The demo's steps: nnU-Net's own programs on the embedded dataset, then scores and overlays.

Every nnU-Net step appends its output to the demo's log."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

from swin_umamba.demo.layout import CONFIGURATION, DATASET_ID, DATASET_NAME, TRAINER, DemoError, dataset_source
from swin_umamba.demo.overlay import write_overlay
from swin_umamba.demo.scoring import Scores, read_image
from swin_umamba.nnunet_layout import DATASET_JSON, IMAGES_TS, image_file
from swin_umamba.workflow.nnunet_runner import NNUNET_FOLDERS, nnunet_tool, run_logged
from swin_umamba.workflow.progress import TrainingProgress


def copy_dataset(workdir: Path) -> Path:
    """The embedded dataset copied into workdir/nnUNet_raw (the other nnU-Net folders created); its path."""
    raw_folder, *others = NNUNET_FOLDERS
    raw = workdir / raw_folder / DATASET_NAME
    shutil.copytree(dataset_source(), raw)
    for name in others:
        (workdir / name).mkdir(parents=True, exist_ok=True)
    return raw


def plan(env: dict[str, str], log: Path) -> None:
    run_logged([nnunet_tool("nnUNetv2_plan_and_preprocess"), "-d", str(DATASET_ID), "-c", CONFIGURATION,
                "--verify_dataset_integrity", "-npfp", "1", "-np", "1"], env, log, append=True)


def train(env: dict[str, str], log: Path, fold: str, epochs: int, class_names: Sequence[str] = ()) -> None:
    """nnUNetv2_train on CPU; one console line per epoch, its pseudo Dice labelled with `class_names`."""
    run_logged([nnunet_tool("nnUNetv2_train"), str(DATASET_ID), CONFIGURATION, str(fold), "-tr", TRAINER,
                "-device", "cpu"], env, log, show=TrainingProgress(epochs, class_names=class_names), append=True)


def check_inputs(workdir: Path, raw: Path, fold: str) -> int:
    """The test images and the trained fold's final checkpoint, as `swin-umamba check-inputs` checks them;
    DemoError naming every bad file. Returns the number of cases."""
    from swin_umamba.input_checks import check_prediction_inputs, format_problems
    from swin_umamba.environment import NNUNET_RESULTS_VAR
    from swin_umamba.nnunet_layout import DEFAULT_PLANS, model_folder

    model = model_folder(workdir / NNUNET_RESULTS_VAR, DATASET_NAME, TRAINER, DEFAULT_PLANS, CONFIGURATION)
    problems, cases = check_prediction_inputs(raw / IMAGES_TS, model, [str(fold)])
    if problems:
        raise DemoError(f"the inputs of the prediction are not usable:\n{format_problems(problems)}")
    return cases


def predict(env: dict[str, str], log: Path, raw: Path, predictions: Path, fold: str) -> None:
    run_logged([nnunet_tool("nnUNetv2_predict"), "-i", str(raw / IMAGES_TS), "-o", str(predictions),
                "-d", str(DATASET_ID), "-c", CONFIGURATION, "-tr", TRAINER, "-f", str(fold),
                "-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1", "--disable_progress_bar"],
               env, log, append=True)


def write_overlays(raw: Path, scores: Scores, folder: Path) -> None:
    """overlays/<case>.png for every scored case."""
    ending = json.loads((raw / DATASET_JSON).read_text())["file_ending"]
    for case in scores.cases:
        image = read_image(raw / IMAGES_TS / image_file(case, ending))
        write_overlay(image, scores.gts[case], scores.preds[case], scores.classes, folder / f"{case}.png",
                      title=f"{case}: ground truth vs Swin-UMamba prediction", scores=scores.table[case])
