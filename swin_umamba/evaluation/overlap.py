"""Dice similarity coefficient (DSC) of two boolean masks."""
from __future__ import annotations

import numpy as np


def dice(mask_gt: np.ndarray, mask_pred: np.ndarray) -> float:
    """2|A and B| / (|A| + |B|); NaN when both masks are empty (as in the challenge scripts)."""
    mask_gt = np.asarray(mask_gt, dtype=bool)
    mask_pred = np.asarray(mask_pred, dtype=bool)
    if mask_gt.shape != mask_pred.shape:
        raise ValueError(f"mask shapes differ: {mask_gt.shape} vs {mask_pred.shape}")
    volume = int(mask_gt.sum()) + int(mask_pred.sum())
    if volume == 0:
        return float("nan")
    return 2.0 * int(np.logical_and(mask_gt, mask_pred).sum()) / volume


def dice_empty_is_perfect(mask_gt: np.ndarray, mask_pred: np.ndarray) -> float:
    """DSC where two empty masks score 1 (the cell-segmentation script's convention)."""
    value = dice(mask_gt, mask_pred)
    return 1.0 if np.isnan(value) else value
