"""Any nnU-Net data set: DSC and NSD per label of its dataset.json, for 2D maps and 3D volumes.

Rules:

* the labels scored are those of the dataset.json's `labels`, background (0) left out; a region
  (a list of labels, nnU-Net's region-based training) is scored as the union of its labels;
* a label absent from both ground truth and prediction scores NaN (nothing to compare) and is
  skipped in the means; absent from one of them it scores 0;
* spacing comes from the ground truth's header (NIfTI zooms, NRRD/MHA spacing; 1 per pixel for
  PNG/TIFF), so the NSD tolerance is in mm (in pixels for those image formats);
* an axis of length 1 (a 2D slice stored as a volume) is dropped, so one slice is scored as the 2D
  map it is: contour lengths, not the areas of its top and bottom faces;
* the summary is the mean over labels of each label's mean over cases.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .files import EvaluationError
from .modes import PAPER, mean_of_column_means, nanmean, per_case
from .overlap import dice
from .surface import normalized_surface_dice

DEFAULT_TOLERANCE_MM = 2.0


@dataclass(frozen=True)
class ScoredLabel:
    name: str
    values: tuple[int, ...]  # one label value, or the values a region joins


@dataclass(frozen=True)
class DatasetRules:
    """What a dataset.json fixes for scoring, with the NSD tolerance."""

    labels: tuple[ScoredLabel, ...]
    file_ending: str
    tolerance_mm: float = DEFAULT_TOLERANCE_MM

    @property
    def dsc_columns(self) -> tuple[str, ...]:
        return tuple(f"{label.name}_DSC" for label in self.labels)

    @property
    def nsd_columns(self) -> tuple[str, ...]:
        return tuple(f"{label.name}_NSD" for label in self.labels)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.dsc_columns + self.nsd_columns


def _label_values(name: str, value, path: Path) -> tuple[int, ...]:
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise EvaluationError(f"{path}: label {name!r} has the value {value!r}; expected a whole number >= 0 "
                              "or a list of them (a region)")
    return tuple(int(v) for v in values)


def rules_from_dataset_json(path: Path, tolerance_mm: float = DEFAULT_TOLERANCE_MM) -> DatasetRules:
    """The labels and file ending of an nnU-Net dataset.json; errors name the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"dataset.json not found: {path} (give the data set's dataset.json, e.g. "
                              "$nnUNet_raw/Dataset001_Name/dataset.json)")
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvaluationError(f"{path}: not a readable JSON file ({exc})") from exc
    if not isinstance(content, dict) or not isinstance(content.get("labels"), dict):
        raise EvaluationError(f"{path}: no 'labels' mapping (name -> value); is it an nnU-Net dataset.json?")
    ending = content.get("file_ending")
    if not isinstance(ending, str) or not ending.startswith("."):
        raise EvaluationError(f"{path}: 'file_ending' is {ending!r}; expected one such as \".nii.gz\"")
    if not tolerance_mm >= 0:
        raise EvaluationError(f"NSD tolerance {tolerance_mm} mm: expected a value >= 0")
    labels = []
    for name, value in content["labels"].items():
        values = _label_values(name, value, path)
        if values != (0,):
            labels.append(ScoredLabel(str(name), values))
    if not labels:
        raise EvaluationError(f"{path}: 'labels' has no label besides background (0): nothing to score")
    return DatasetRules(tuple(labels), ending, float(tolerance_mm))


def drop_single_axes(labels: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, tuple[float, ...]]:
    """The map without its length-1 axes, and the spacing of the axes kept."""
    keep = [axis for axis, size in enumerate(labels.shape) if size != 1]
    if len(keep) < 2:  # a single row or pixel: keep it 2D
        keep = list(range(labels.ndim))[-2:]
    shape = tuple(labels.shape[a] for a in keep)
    return labels.reshape(shape), tuple(float(spacing[a]) for a in keep)


def label_scores(gt: np.ndarray, pred: np.ndarray, label: ScoredLabel, spacing: Sequence[float],
                 tolerance_mm: float) -> tuple[float, float]:
    """(DSC, NSD) of one label in one case, unrounded; NaN for both when the label is in neither."""
    gt_mask, pred_mask = np.isin(gt, label.values), np.isin(pred, label.values)
    if not gt_mask.any() and not pred_mask.any():
        return float("nan"), float("nan")
    return dice(gt_mask, pred_mask), normalized_surface_dice(gt_mask, pred_mask, spacing, tolerance_mm)


def score_case(gt: np.ndarray, pred: np.ndarray, spacing: Sequence[float], rules: DatasetRules,
               mode: str = PAPER) -> dict:
    """DSC and NSD columns of one case (2D or 3D, one spacing value per axis), as stored per case in `mode`."""
    if gt.shape != pred.shape or gt.ndim not in (2, 3) or len(spacing) != gt.ndim:
        raise ValueError(f"need 2D or 3D label maps of one shape with one spacing per axis, got {gt.shape}, "
                         f"{pred.shape} and {tuple(spacing)}")
    gt, kept_spacing = drop_single_axes(gt, spacing)
    pred, _ = drop_single_axes(pred, spacing)
    row = {}
    for label in rules.labels:
        dsc, nsd = label_scores(gt, pred, label, kept_spacing, rules.tolerance_mm)
        row[f"{label.name}_DSC"] = per_case(dsc, mode)
        row[f"{label.name}_NSD"] = per_case(nsd, mode)
    return row


def summarize(rows: Sequence[dict], rules: DatasetRules) -> dict:
    """Mean DSC and NSD over labels (each label's mean over cases, NaN skipped), then each label's mean."""
    summary = {"DSC": mean_of_column_means(rows, rules.dsc_columns),
               "NSD": mean_of_column_means(rows, rules.nsd_columns)}
    for column in rules.columns:
        summary[column] = nanmean(row[column] for row in rows)
    return summary
