"""Dice per label of label maps whose labels a dataset.json names (the demo's scores)."""
from __future__ import annotations

from typing import Mapping

from .modes import nanmean
from .overlap import dice


def class_names(dataset_json: dict) -> dict[int, str]:
    """label value -> name for the foreground classes of a dataset.json, in label order."""
    labels = {int(v): k for k, v in dataset_json["labels"].items() if not isinstance(v, (list, tuple))}
    return {v: labels[v] for v in sorted(labels) if v != 0}


def dice_table(gt_by_case: Mapping, pred_by_case: Mapping, classes: dict[int, str]) -> dict[str, dict[str, float]]:
    """{case: {class name: DSC}} in case order; NaN where a class is absent from both label maps."""
    table = {}
    for case in sorted(gt_by_case):
        gt, pred = gt_by_case[case], pred_by_case[case]
        table[case] = {name: dice(gt == value, pred == value) for value, name in classes.items()}
    return table


def class_means(table: dict[str, dict[str, float]], names: list[str]) -> dict[str, float]:
    """Mean over cases per class, skipping NaN (class in neither map); NaN if it is never present."""
    return {name: nanmean(row[name] for row in table.values()) for name in names}
