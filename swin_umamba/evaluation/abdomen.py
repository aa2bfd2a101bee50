"""AbdomenMR (dataset 702): per-organ DSC and NSD as the paper's scripts compute them.

Rules (docs/metrics.md):

* 13 organs with label ids 1..13 and NSD tolerances in mm (`ORGANS`);
* the organ absent from both ground truth and prediction scores DSC = NSD = 1; absent from
  the ground truth but predicted scores 0;
* for aorta (5), IVC (6) and esophagus (10) only the axial slices labelled in the ground
  truth count: array axis 2 of the data as stored (no reorientation), slices
  [first, last) in paper mode, [first, last] in corrected mode;
* spacing = the ground-truth header zooms (x, y, z), no resampling;
* a surface element is within tolerance when its distance is <= the tolerance.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .modes import PAPER, check_mode, mean_of_column_means, per_case
from .overlap import dice
from .surface import normalized_surface_dice

# (label id, column name, NSD tolerance in mm), in the order of the 702 label table.
ORGANS: tuple[tuple[int, str, float], ...] = (
    (1, "Liver", 5.0), (2, "RK", 3.0), (3, "Spleen", 3.0), (4, "Pancreas", 5.0),
    (5, "Aorta", 2.0), (6, "IVC", 2.0), (7, "RAG", 2.0), (8, "LAG", 2.0),
    (9, "Gallbladder", 2.0), (10, "Esophagus", 3.0), (11, "Stomach", 5.0),
    (12, "Duodenum", 7.0), (13, "LK", 3.0),
)
Z_RANGE_LABELS = frozenset({5, 6, 10})
DSC_COLUMNS = tuple(f"{name}_DSC" for _, name, _ in ORGANS)
NSD_COLUMNS = tuple(f"{name}_NSD" for _, name, _ in ORGANS)
COLUMNS = DSC_COLUMNS + NSD_COLUMNS


def z_range(gt_organ: np.ndarray, mode: str = PAPER) -> slice:
    """Slices along axis 2 kept for a z-range organ: [first, last) (paper) or [first, last] (corrected)."""
    z = np.flatnonzero(gt_organ.any(axis=(0, 1)))
    first, last = int(z[0]), int(z[-1])
    return slice(first, last if check_mode(mode) == PAPER else last + 1)


def organ_scores(gt: np.ndarray, pred: np.ndarray, label: int, tolerance: float,
                 spacing: Sequence[float], mode: str = PAPER) -> tuple[float, float]:
    """(DSC, NSD) of one organ in one case, unrounded."""
    gt_organ = gt == label
    pred_organ = pred == label
    in_gt, in_pred = bool(gt_organ.any()), bool(pred_organ.any())
    if not in_gt:
        return (1.0, 1.0) if not in_pred else (0.0, 0.0)
    if label in Z_RANGE_LABELS:
        keep = z_range(gt_organ, mode)
        gt_organ, pred_organ = gt_organ[:, :, keep], pred_organ[:, :, keep]
    return dice(gt_organ, pred_organ), normalized_surface_dice(gt_organ, pred_organ, spacing, tolerance)


def score_case(gt: np.ndarray, pred: np.ndarray, spacing: Sequence[float], mode: str = PAPER) -> dict:
    """Per-organ DSC and NSD columns of one case, as stored per case in `mode`."""
    if gt.ndim != 3 or gt.shape != pred.shape:
        raise ValueError(f"need 3D label volumes of one shape, got {gt.shape} and {pred.shape}")
    if len(spacing) < 3:
        raise ValueError(f"need 3 spacing values, got {tuple(spacing)}")
    spacing = tuple(float(s) for s in spacing[:3])
    row = {}
    for label, name, tolerance in ORGANS:
        dsc, nsd = organ_scores(gt, pred, label, tolerance, spacing, mode)
        row[f"{name}_DSC"] = per_case(dsc, mode)
        row[f"{name}_NSD"] = per_case(nsd, mode)
    return row


def summarize(rows: Sequence[dict]) -> dict:
    """DSC and NSD summaries: the mean of the 13 per-organ column means, NaN skipped per column."""
    return {"DSC": mean_of_column_means(rows, DSC_COLUMNS), "NSD": mean_of_column_means(rows, NSD_COLUMNS)}
