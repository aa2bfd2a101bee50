"""Score a folder of predictions against a folder of ground truth for one task."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from . import abdomen, cells, endoscopy, nnunet_dataset
from .files import (CasePair, EvaluationError, pair_by_name, pair_cells, read_labels_with_spacing,
                    read_nifti_labels, read_png_labels, read_tiff_labels)
from .modes import check_mode
from .nnunet_dataset import DatasetRules

PAPER_TASKS = ("abdomen", "endoscopy", "cells")
NNUNET_TASK = "nnunet"
TASKS = PAPER_TASKS + (NNUNET_TASK,)


@dataclass
class Result:
    task: str
    mode: str
    columns: tuple[str, ...]
    rows: list[dict]
    summary: dict


def _mismatch(pair: CasePair, gt_shape, pred_shape) -> EvaluationError:
    return EvaluationError(f"shape mismatch: prediction {pair.pred} has shape {tuple(pred_shape)}, "
                           f"ground truth {pair.gt} has shape {tuple(gt_shape)}")


def score_pair(task: str, pair: CasePair, mode: str, rules: DatasetRules | None = None) -> dict:
    """One row of the CSV: the case name and its metrics (`rules`: those of the nnunet task)."""
    if task == "abdomen":
        gt, spacing = read_nifti_labels(pair.gt)
        if gt.ndim != 3:
            raise EvaluationError(f"{pair.gt}: the abdomen task scores 3D volumes, this is a {gt.ndim}D map of "
                                  f"shape {gt.shape}; score 2D maps with --task {NNUNET_TASK} --dataset-json FILE")
        pred, _ = read_nifti_labels(pair.pred)
        if gt.shape != pred.shape:
            raise _mismatch(pair, gt.shape, pred.shape)
        metrics = abdomen.score_case(gt, pred, spacing, mode)
    elif task == NNUNET_TASK:
        gt, spacing = read_labels_with_spacing(pair.gt)
        pred, _ = read_labels_with_spacing(pair.pred)
        if gt.shape != pred.shape:
            raise _mismatch(pair, gt.shape, pred.shape)
        metrics = nnunet_dataset.score_case(gt, pred, spacing, rules, mode)
    elif task == "endoscopy":
        gt, pred = read_png_labels(pair.gt), read_png_labels(pair.pred)
        if gt.shape != pred.shape:
            raise _mismatch(pair, gt.shape, pred.shape)
        metrics = endoscopy.score_case(gt, pred, mode)
    elif task == "cells":
        gt = read_tiff_labels(pair.gt)
        if pair.pred.suffix == ".png":
            pred = cells.instances_from_semantic(read_png_labels(pair.pred))
        else:
            pred = read_tiff_labels(pair.pred)
        if gt.shape != pred.shape:
            raise _mismatch(pair, gt.shape, pred.shape)
        metrics = cells.score_case(gt, pred, mode)
    else:
        raise EvaluationError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return {"Name": pair.name, **metrics}


_PAPER_MODULES = {"abdomen": abdomen, "endoscopy": endoscopy, "cells": cells}


def _columns(task: str, rules: DatasetRules | None = None) -> tuple[str, ...]:
    return ("Name",) + tuple(rules.columns if task == NNUNET_TASK else _PAPER_MODULES[task].COLUMNS)


def summarize(task: str, rows: Sequence[dict], rules: DatasetRules | None = None) -> dict:
    if task == NNUNET_TASK:
        return nnunet_dataset.summarize(rows, rules)
    return _PAPER_MODULES[task].summarize(rows)


def evaluate_folder(task: str, gt_dir: Path, pred_dir: Path, mode: str = "paper", num_workers: int = 1,
                    progress: Callable[[int, int, str], None] | None = None,
                    rules: DatasetRules | None = None) -> Result:
    """Score every ground-truth case of `gt_dir` against its prediction in `pred_dir`.

    The nnunet task needs `rules` (see nnunet_dataset.rules_from_dataset_json). A missing prediction,
    an unreadable file or a shape mismatch raises EvaluationError naming the file; nothing is scored
    partially.
    """
    if task not in TASKS:
        raise EvaluationError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if task == NNUNET_TASK and rules is None:
        raise EvaluationError(f"the {NNUNET_TASK} task needs the data set's dataset.json (--dataset-json FILE)")
    check_mode(mode)
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    if task == "abdomen":
        pairs = pair_by_name(gt_dir, pred_dir, ".nii.gz")
    elif task == "endoscopy":
        pairs = pair_by_name(gt_dir, pred_dir, ".png")
    elif task == NNUNET_TASK:
        pairs = pair_by_name(gt_dir, pred_dir, rules.file_ending)
    else:
        pairs = pair_cells(gt_dir, pred_dir)
    rows: list[dict] = []
    if num_workers > 1 and len(pairs) > 1:
        n = len(pairs)
        with ProcessPoolExecutor(max_workers=num_workers) as pool:
            for i, row in enumerate(pool.map(score_pair, [task] * n, pairs, [mode] * n, [rules] * n), 1):
                rows.append(row)
                if progress:
                    progress(i, n, row["Name"])
    else:
        for i, pair in enumerate(pairs, 1):
            rows.append(score_pair(task, pair, mode, rules))
            if progress:
                progress(i, len(pairs), pair.name)
    return Result(task, mode, _columns(task, rules), rows, summarize(task, rows, rules))
