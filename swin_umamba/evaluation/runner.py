"""Score a folder of predictions against a folder of ground truth for one task."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from . import abdomen, cells, endoscopy
from .files import (CasePair, EvaluationError, pair_by_name, pair_cells, read_nifti_labels, read_png_labels,
                    read_tiff_labels)
from .modes import check_mode

TASKS = ("abdomen", "endoscopy", "cells")


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


def score_pair(task: str, pair: CasePair, mode: str) -> dict:
    """One row of the CSV: the case name and its metrics."""
    if task == "abdomen":
        gt, spacing = read_nifti_labels(pair.gt)
        pred, _ = read_nifti_labels(pair.pred)
        if gt.shape != pred.shape:
            raise _mismatch(pair, gt.shape, pred.shape)
        metrics = abdomen.score_case(gt, pred, spacing, mode)
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


def _columns(task: str) -> tuple[str, ...]:
    module = {"abdomen": abdomen, "endoscopy": endoscopy, "cells": cells}[task]
    return ("Name",) + tuple(module.COLUMNS)


def summarize(task: str, rows: Sequence[dict]) -> dict:
    module = {"abdomen": abdomen, "endoscopy": endoscopy, "cells": cells}[task]
    return module.summarize(rows)


def evaluate_folder(task: str, gt_dir: Path, pred_dir: Path, mode: str = "paper", num_workers: int = 1,
                    progress: Callable[[int, int, str], None] | None = None) -> Result:
    """Score every ground-truth case of `gt_dir` against its prediction in `pred_dir`.

    A missing prediction, an unreadable file or a shape mismatch raises EvaluationError
    naming the file; nothing is scored partially.
    """
    if task not in TASKS:
        raise EvaluationError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    check_mode(mode)
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    if task == "abdomen":
        pairs = pair_by_name(gt_dir, pred_dir, ".nii.gz")
    elif task == "endoscopy":
        pairs = pair_by_name(gt_dir, pred_dir, ".png")
    else:
        pairs = pair_cells(gt_dir, pred_dir)
    rows: list[dict] = []
    if num_workers > 1 and len(pairs) > 1:
        with ProcessPoolExecutor(max_workers=num_workers) as pool:
            for i, row in enumerate(pool.map(score_pair, [task] * len(pairs), pairs, [mode] * len(pairs)), 1):
                rows.append(row)
                if progress:
                    progress(i, len(pairs), row["Name"])
    else:
        for i, pair in enumerate(pairs, 1):
            rows.append(score_pair(task, pair, mode))
            if progress:
                progress(i, len(pairs), pair.name)
    return Result(task, mode, _columns(task), rows, summarize(task, rows))
