"""Dice per class of the demo's test cases: reading the label maps, the console table and `dice.csv`."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from swin_umamba.demo.layout import DemoError
from swin_umamba.evaluation.files import write_csv_atomic
from swin_umamba.evaluation.labels import class_means, class_names, dice_table
from swin_umamba.nnunet_layout import DATASET_JSON, LABELS_TS


def read_labels(path: Path):
    import numpy as np
    import SimpleITK as sitk

    return np.asarray(sitk.GetArrayFromImage(sitk.ReadImage(str(path))))


def read_image(path: Path):
    import numpy as np
    import SimpleITK as sitk

    return np.asarray(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), dtype=np.float32)


@dataclass
class Scores:
    cases: list[str]
    classes: dict[int, str]  # label value -> name
    table: dict[str, dict[str, float]]  # case -> class name -> Dice
    gts: dict  # case -> label map
    preds: dict

    @property
    def names(self) -> list[str]:
        return list(self.classes.values())


def dataset_classes(raw: Path) -> dict[int, str]:
    """label value -> name of the foreground classes of the dataset in `raw`."""
    return class_names(json.loads((raw / DATASET_JSON).read_text()))


def score_predictions(raw: Path, predictions: Path, log: Path) -> Scores:
    """Dice per class of every case in raw/labelsTs against its prediction; DemoError names a missing one."""
    ending = json.loads((raw / DATASET_JSON).read_text())["file_ending"]
    classes = dataset_classes(raw)
    cases = sorted(p.name[: -len(ending)] for p in (raw / LABELS_TS).iterdir() if p.name.endswith(ending))
    missing = [c for c in cases if not (predictions / f"{c}{ending}").is_file()]
    if missing:
        raise DemoError(f"no prediction for {', '.join(missing)} in {predictions}; see {log}")
    gts = {c: read_labels(raw / LABELS_TS / f"{c}{ending}") for c in cases}
    preds = {c: read_labels(predictions / f"{c}{ending}") for c in cases}
    return Scores(cases, classes, dice_table(gts, preds, classes), gts, preds)


def format_score(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def format_dice_table(table: dict[str, dict[str, float]], names: list[str]) -> str:
    means = class_means(table, names)
    width = max([len("mean")] + [len(c) for c in table]) + 2
    cols = [max(len(n), 5) + 2 for n in names]
    lines = ["case".ljust(width) + "".join(n.rjust(w) for n, w in zip(names, cols))]
    for case, row in table.items():
        lines.append(case.ljust(width) + "".join(format_score(row[n]).rjust(w) for n, w in zip(names, cols)))
    lines.append("-" * len(lines[0]))
    lines.append("mean".ljust(width) + "".join(format_score(means[n]).rjust(w) for n, w in zip(names, cols)))
    lines.append("('-': organ absent from both ground truth and prediction in that case)")
    return "\n".join(lines)


def write_dice_csv(table: dict[str, dict[str, float]], names: list[str], path: Path) -> None:
    """One row per case and a mean row; 4 decimals, empty where the class is in neither map."""
    def row(first: str, values: dict[str, float]) -> dict:
        return {"case": first, **{n: "" if math.isnan(values[n]) else f"{values[n]:.4f}" for n in names}}

    rows = [row(case, values) for case, values in table.items()] + [row("mean", class_means(table, names))]
    write_csv_atomic(path, ["case", *names], rows)
