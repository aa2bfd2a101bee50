"""Endovis17 (dataset 704): per-frame DSC and NSD as the paper's scripts compute them.

Each frame scores the mean over its classes of the per-class DSC and NSD. Classes (see
`modes`): in paper mode the labels of each mask minus that mask's smallest value, merged;
in corrected mode every label other than 0 in either mask. A 2D mask is scored as a
one-slice 3D volume with spacing (1, 1, 1) and tolerance 2 (pixels).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .modes import PAPER, check_mode, nanmean, per_case
from .overlap import dice
from .surface import normalized_surface_dice

SPACING = (1.0, 1.0, 1.0)
TOLERANCE = 2.0
COLUMNS = ("DSC", "NSD", "classes")


def scored_classes(gt: np.ndarray, pred: np.ndarray, mode: str = PAPER) -> list[int]:
    """The labels a frame is scored on."""
    if check_mode(mode) == PAPER:
        return [int(c) for c in np.union1d(np.unique(gt)[1:], np.unique(pred)[1:])]
    return [int(c) for c in np.union1d(np.unique(gt), np.unique(pred)) if c != 0]


def class_scores(gt: np.ndarray, pred: np.ndarray, label: int) -> tuple[float, float]:
    """(DSC, NSD) of one class in one frame, unrounded."""
    gt_c, pred_c = gt == label, pred == label
    if not gt_c.any():
        return (1.0, 1.0) if not pred_c.any() else (0.0, 0.0)
    return (dice(gt_c, pred_c),
            normalized_surface_dice(gt_c[..., None], pred_c[..., None], SPACING, TOLERANCE))


def score_case(gt: np.ndarray, pred: np.ndarray, mode: str = PAPER) -> dict:
    """Mean DSC and NSD over the frame's classes, as stored per case in `mode`."""
    if gt.ndim != 2 or gt.shape != pred.shape:
        raise ValueError(f"need 2D label maps of one shape, got {gt.shape} and {pred.shape}")
    classes = scored_classes(gt, pred, mode)
    if not classes:
        value = float("nan") if mode == PAPER else 1.0
        return {"DSC": value, "NSD": value, "classes": ""}
    scores = [class_scores(gt, pred, c) for c in classes]
    return {
        "DSC": per_case(np.mean([s[0] for s in scores]), mode),
        "NSD": per_case(np.mean([s[1] for s in scores]), mode),
        "classes": " ".join(str(c) for c in classes),
    }


def summarize(rows: Sequence[dict]) -> dict:
    """Mean DSC and NSD over frames, NaN skipped."""
    return {"DSC": nanmean(r["DSC"] for r in rows), "NSD": nanmean(r["NSD"] for r in rows)}
