"""Evaluation modes, per-case rounding and summaries.

`paper` (default) reproduces the authors' scripts, quirks included (docs/metrics.md):

* every per-case value is rounded to 4 decimals before anything is averaged;
* AbdomenMR: the z-range rule for aorta, IVC and esophagus keeps ground-truth slices
  [first, last) along array axis 2, so the last labelled slice is dropped and a one-slice
  organ leaves an empty region (DSC and NSD NaN, skipped in the means);
* Endovis17: the classes scored are the labels of each mask minus its smallest value,
  merged (for masks that contain background this is "every non-background label present
  in either mask"); a frame where neither mask has such a label scores NaN (the script
  stops with an assertion there);
* cells: with no predicted cell, TP = FP = FN = 0 (F1 is 0 either way).

`corrected` fixes those points and nothing else:

* no rounding before averaging (values are kept at full precision);
* AbdomenMR z-range [first, last], the last labelled slice included;
* Endovis17: the classes scored are every label other than 0 (background) found in either
  mask; a frame where both masks are pure background scores 1 (a perfect empty prediction);
* cells: with no predicted cell, FN = the number of ground-truth cells (F1 still 0).
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

PAPER = "paper"
CORRECTED = "corrected"
MODES = (PAPER, CORRECTED)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown evaluation mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode


def per_case(value: float, mode: str) -> float:
    """A per-case value as the mode stores it: rounded to 4 decimals in paper mode.

    Rounding follows numpy (round half to even on the scaled value), as the scripts
    round numpy floats. NaN stays NaN.
    """
    value = float(value)
    if check_mode(mode) == PAPER and not math.isnan(value):
        return float(np.round(np.float64(value), 4))
    return value


def nanmean(values: Iterable[float]) -> float:
    """Mean skipping NaN (pandas' default); NaN when nothing is left."""
    kept = [float(v) for v in values if not math.isnan(float(v))]
    return float(np.mean(kept)) if kept else float("nan")


def mean_of_column_means(rows: Sequence[dict], columns: Sequence[str]) -> float:
    """Mean over `columns` of each column's NaN-skipping mean over `rows` (the abdomen summary)."""
    return nanmean(nanmean(row[c] for row in rows) for c in columns)
