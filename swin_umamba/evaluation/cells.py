"""NeurIPS Cell Seg (dataset 703): cell F1 at IoU 0.5 as the challenge script computes it.

Per image:

1. predicted instances: 8-connected components of the interior class (1) of a semantic
   prediction (or an instance map given directly);
2. DSC of foreground (instance > 0) on the whole image, before any border removal; two
   empty masks score 1;
3. images with fewer than `tile_threshold` (25 M) pixels: cells with any pixel within
   `border` (2) pixels of the image edge are removed from truth and prediction
   independently, then instances are matched one-to-one so that the number of pairs with
   IoU >= 0.5 is maximal (ties broken by the larger IoU sum; scipy's linear_sum_assignment);
4. larger images are zero-padded to multiples of `tile_size` (2000) and step 3 runs on each
   tile (border cells removed per tile); TP, FP, FN and the cell counts are summed;
5. precision = TP / predicted cells, recall = TP / true cells, F1 their harmonic mean;
   F1 = 0 when TP = 0.

With no predicted cell in an image (or tile) the script counts TP = FP = FN = 0; corrected
mode counts FN = the true cells there instead.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from .modes import PAPER, check_mode, nanmean, per_case
from .overlap import dice_empty_is_perfect

IOU_THRESHOLD = 0.5
BORDER = 2
TILE_THRESHOLD = 25_000_000
TILE_SIZE = 2000
COLUMNS = ("true_num", "pred_num", "TP", "FN", "FP", "precision", "recall", "DSC", "F1")


def instances_from_semantic(semantic: np.ndarray, interior: int = 1) -> np.ndarray:
    """Instance map: 8-connected components of the interior class, numbered 1..n."""
    labels, _ = ndimage.label(np.asarray(semantic) == interior, structure=np.ones((3, 3), dtype=bool))
    return labels.astype(np.int64)


def relabel_sequential(instances: np.ndarray) -> np.ndarray:
    """Renumber the instances present to 1..n in increasing order of their ids; 0 stays 0."""
    ids, inverse = np.unique(instances, return_inverse=True)
    inverse = inverse.reshape(instances.shape)
    if ids.size and ids[0] == 0:
        return inverse.astype(np.int64)
    return (inverse + 1).astype(np.int64)


def remove_border_cells(instances: np.ndarray, border: int = BORDER) -> np.ndarray:
    """Drop every instance with a pixel within `border` pixels of the edge, renumber the rest."""
    h, w = instances.shape
    inner = np.zeros((h, w), dtype=bool)
    inner[border:h - border, border:w - border] = True
    touching = np.unique(instances[~inner])
    touching = touching[touching != 0]
    cleaned = np.where(np.isin(instances, touching), 0, instances)
    return relabel_sequential(cleaned)


def iou_matrix(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """IoU of every (true, predicted) instance pair of two sequentially numbered maps (no background row/column)."""
    n_gt, n_pred = int(gt.max(initial=0)), int(pred.max(initial=0))
    overlap = np.bincount(gt.ravel() * (n_pred + 1) + pred.ravel(),
                          minlength=(n_gt + 1) * (n_pred + 1)).reshape(n_gt + 1, n_pred + 1)
    area_gt = overlap.sum(axis=1, keepdims=True)
    area_pred = overlap.sum(axis=0, keepdims=True)
    union = area_gt + area_pred - overlap
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, overlap / np.maximum(union, 1), 0.0)
    return iou[1:, 1:]


def count_true_positives(iou: np.ndarray, threshold: float = IOU_THRESHOLD) -> int:
    """Largest number of one-to-one pairs with IoU >= threshold; among those, the largest IoU sum."""
    if iou.size == 0:
        return 0
    n_min = min(iou.shape)
    cost = -(iou >= threshold).astype(np.float64) - iou / (2 * n_min)
    rows, cols = linear_sum_assignment(cost)
    return int((iou[rows, cols] >= threshold).sum())


def match_counts(gt: np.ndarray, pred: np.ndarray, mode: str = PAPER,
                 threshold: float = IOU_THRESHOLD) -> tuple[int, int, int]:
    """(TP, FP, FN) of two sequentially numbered instance maps."""
    n_gt, n_pred = int(gt.max(initial=0)), int(pred.max(initial=0))
    if n_pred == 0:
        return (0, 0, 0) if check_mode(mode) == PAPER else (0, 0, n_gt)
    tp = count_true_positives(iou_matrix(gt, pred), threshold)
    return tp, n_pred - tp, n_gt - tp


def _score_region(gt: np.ndarray, pred: np.ndarray, mode: str, border: int) -> tuple[int, int, int, int, int]:
    gt = remove_border_cells(gt, border)
    pred = remove_border_cells(pred, border)
    tp, fp, fn = match_counts(gt, pred, mode)
    return int(gt.max(initial=0)), int(pred.max(initial=0)), tp, fp, fn


def tiles(shape: tuple[int, int], tile_size: int = TILE_SIZE) -> list[tuple[slice, slice]]:
    """Tiles of an image padded up to multiples of `tile_size`, row by row."""
    n_rows = -(-shape[0] // tile_size)
    n_cols = -(-shape[1] // tile_size)
    return [(slice(i * tile_size, (i + 1) * tile_size), slice(j * tile_size, (j + 1) * tile_size))
            for i in range(n_rows) for j in range(n_cols)]


def score_case(gt: np.ndarray, pred: np.ndarray, mode: str = PAPER, *, tile_threshold: int = TILE_THRESHOLD,
               tile_size: int = TILE_SIZE, border: int = BORDER) -> dict:
    """Counts, precision, recall, DSC and F1 of one image from two instance maps (0 = background)."""
    gt = np.asarray(gt).astype(np.int64)
    pred = np.asarray(pred).astype(np.int64)
    if gt.ndim != 2 or gt.shape != pred.shape:
        raise ValueError(f"need 2D instance maps of one shape, got {gt.shape} and {pred.shape}")
    dsc = dice_empty_is_perfect(gt > 0, pred > 0)
    if gt.size < tile_threshold:
        true_num, pred_num, tp, fp, fn = _score_region(gt, pred, mode, border)
    else:
        n_rows = -(-gt.shape[0] // tile_size) * tile_size
        n_cols = -(-gt.shape[1] // tile_size) * tile_size
        gt_pad = np.zeros((n_rows, n_cols), dtype=np.int64)
        pred_pad = np.zeros((n_rows, n_cols), dtype=np.int64)
        gt_pad[:gt.shape[0], :gt.shape[1]] = gt
        pred_pad[:pred.shape[0], :pred.shape[1]] = pred
        true_num = pred_num = tp = fp = fn = 0
        for rows, cols in tiles(gt.shape, tile_size):
            t, p, a, b, c = _score_region(gt_pad[rows, cols], pred_pad[rows, cols], mode, border)
            true_num, pred_num, tp, fp, fn = true_num + t, pred_num + p, tp + a, fp + b, fn + c
    if tp == 0:
        precision = recall = f1 = 0.0
    else:
        precision, recall = tp / pred_num, tp / true_num
        f1 = 2 * precision * recall / (precision + recall)
    return {
        "true_num": true_num, "pred_num": pred_num, "TP": tp, "FN": fn, "FP": fp,
        "precision": per_case(precision, mode), "recall": per_case(recall, mode),
        "DSC": per_case(dsc, mode), "F1": per_case(f1, mode),
    }


def summarize(rows: Sequence[dict]) -> dict:
    """Mean F1 and DSC over images (the paper reports the mean F1)."""
    return {"F1": nanmean(r["F1"] for r in rows), "DSC": nanmean(r["DSC"] for r in rows)}
