"""Before and after nnUNetv2_predict: the check of what it will read, and the stamp of what made a folder.

    check_before_predicting(images, checkpoints, folds)        InputsNotUsable naming every bad file, else the cases
    prediction_stamp(checkpoints, images, configuration)      which checkpoint files (path, SHA-256) made predictions
    write_prediction_stamp(predictions, stamp)                 into <predictions>/.prediction.json
    read_prediction_stamp(predictions)                         the stamp there, None when missing or unreadable
    prediction_stamp_matches(predictions, stamp)               the folder holds predictions of exactly that

A folder of predictions is reused only when its stamp matches: the same checkpoint contents (not
only the same file name), the same images, the same configuration and folds.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from swin_umamba.fileio import sha256_of, write_text_atomic
from swin_umamba.workflow.errors import InputsNotUsable

PREDICTION_STAMP = ".prediction.json"


def check_before_predicting(images: Path, checkpoints: Mapping[Path, str], folds: list[str] | tuple[str, ...]) -> int:
    """What nnUNetv2_predict will read, checked as `swin-umamba check-inputs` checks it: for each model folder
    of `checkpoints` its checkpoint file of that name in every fold of `folds`, and the images against
    the model's dataset.json. Raises InputsNotUsable listing every problem; returns the number of cases."""
    from swin_umamba.input_checks import check_prediction_inputs, format_problems

    problems, cases = [], 0
    for model_folder, checkpoint in checkpoints.items():
        found, cases = check_prediction_inputs(images, model_folder, [str(f) for f in folds], checkpoint)
        problems += [p for p in found if p not in problems]  # the images' problems once, not per model
    if problems:
        raise InputsNotUsable(f"the inputs of the prediction are not usable:\n{format_problems(problems)}")
    return cases


def prediction_stamp(checkpoints: Mapping[str, Path], images: Path, configuration: str) -> dict:
    """The record of predictions made from `images` with the checkpoint file of each fold in `checkpoints`
    (fold -> file) of a model of `configuration`."""
    return {"configuration": configuration, "images": str(Path(images).resolve()),
            "folds": {str(fold): {"checkpoint": str(Path(path).resolve()), "sha256": sha256_of(path)}
                      for fold, path in checkpoints.items()}}


def write_prediction_stamp(predictions: Path, stamp: dict) -> None:
    write_text_atomic(Path(predictions) / PREDICTION_STAMP, json.dumps(stamp, indent=2) + "\n")


def read_prediction_stamp(predictions: Path) -> dict | None:
    try:
        stamp = json.loads((Path(predictions) / PREDICTION_STAMP).read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def prediction_stamp_matches(predictions: Path, stamp: dict) -> bool:
    return read_prediction_stamp(predictions) == stamp
