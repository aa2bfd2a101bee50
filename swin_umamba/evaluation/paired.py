"""Paired statistics of two models scored on the same cases (pure functions, no files).

For each case the difference is `ours - baseline` of one per-case value (e.g. the case's mean DSC).

* `paired_values`          the cases both models scored, in one order, with the values side by side;
* `bootstrap_mean_interval` percentile bootstrap interval of the mean difference: `resamples` draws of
                           n cases with replacement from a seeded generator (numpy's default_rng), the
                           2.5 and 97.5 % quantiles of the resampled means (linear interpolation);
* `wilcoxon_p`             two-sided Wilcoxon signed-rank p-value (scipy.stats.wilcoxon, zero
                           differences dropped as in Wilcoxon's original test, exact distribution
                           when scipy can use it, else its normal approximation), with a note on how
                           far it can be trusted;
* `compare_paired`         all of the above for one metric and one baseline.

Small samples: with n non-zero differences the exact two-sided p-value cannot fall below 2 / 2**n
(0.0625 for 5 cases, 0.03125 for 6), so under MIN_CASES_FOR_WILCOXON cases the p-value is still
reported but flagged as unable to reach 0.05. When every difference is zero the test is undefined
(scipy raises or returns NaN there, depending on its version): p = 1.0 is reported with a note,
because the data give no evidence of any difference.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
MIN_CASES_FOR_WILCOXON = 6  # the first n whose exact two-sided p-value can be below 0.05


class PairingError(ValueError):
    """The two models were not scored on the same cases."""


def paired_values(ours: Mapping[str, float], baseline: Mapping[str, float]) -> tuple[list[str], np.ndarray,
                                                                                       np.ndarray, list[str]]:
    """(cases, ours, baseline, dropped): the cases in sorted order with both values finite.

    Both mappings must hold the same case names (PairingError names the odd ones out); a case where
    either value is NaN (a metric undefined for that case) is dropped and listed in `dropped`."""
    only_ours = sorted(set(ours) - set(baseline))
    only_baseline = sorted(set(baseline) - set(ours))
    if only_ours or only_baseline:
        raise PairingError("the models were scored on different cases: "
                           f"only in ours: {only_ours or 'none'}; only in the baseline: {only_baseline or 'none'}")
    cases, dropped = [], []
    for case in sorted(ours):
        a, b = float(ours[case]), float(baseline[case])
        (dropped if math.isnan(a) or math.isnan(b) else cases).append(case)
    return (cases, np.array([float(ours[c]) for c in cases]), np.array([float(baseline[c]) for c in cases]),
            dropped)


def bootstrap_mean_interval(differences: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES,
                            seed: int = BOOTSTRAP_SEED, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `differences`; (NaN, NaN) without any value.

    One case gives the degenerate interval (d, d): resampling one value always returns it."""
    values = np.asarray(differences, dtype=np.float64)
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie between 0 and 1, got {confidence}")
    if values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.size, size=(resamples, values.size))
    means = values[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def smallest_exact_p(nonzero: int) -> float:
    """The smallest two-sided p-value the exact signed-rank test can give with `nonzero` differences."""
    return min(1.0, 2.0 / 2.0 ** nonzero)


def wilcoxon_p(differences: Sequence[float]) -> tuple[float, str]:
    """(two-sided p-value, note) of the Wilcoxon signed-rank test on paired differences.

    The note is empty when nothing limits the result; otherwise it says why the p-value is NaN, 1.0 or
    unable to reach 0.05."""
    from scipy.stats import wilcoxon

    values = np.asarray(differences, dtype=np.float64)
    nonzero = int(np.count_nonzero(values))
    if values.size == 0:
        return float("nan"), "no case scored by both models"
    if nonzero == 0:
        return 1.0, "every difference is zero: no evidence of a difference (the test itself is undefined)"
    p = float(wilcoxon(values, zero_method="wilcox", alternative="two-sided").pvalue)
    notes = []
    if values.size - nonzero:
        notes.append(f"{values.size - nonzero} zero difference(s) left out of the ranks")
    if nonzero < MIN_CASES_FOR_WILCOXON:
        notes.append(f"only {nonzero} non-zero difference(s): p cannot fall below "
                     f"{smallest_exact_p(nonzero):.4g}, so it cannot reach 0.05")
    return p, "; ".join(notes)


@dataclass(frozen=True)
class PairedComparison:
    """Ours against one baseline for one metric, on the cases both were scored on."""

    metric: str
    ours: str
    baseline: str
    cases: tuple[str, ...]
    ours_values: tuple[float, ...]
    baseline_values: tuple[float, ...]
    dropped: tuple[str, ...]  # cases where either value is NaN
    mean_ours: float
    mean_baseline: float
    mean_difference: float
    ci_low: float
    ci_high: float
    p_value: float
    note: str
    resamples: int
    seed: int

    @property
    def differences(self) -> tuple[float, ...]:
        return tuple(a - b for a, b in zip(self.ours_values, self.baseline_values))


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def compare_paired(metric: str, ours_name: str, ours: Mapping[str, float], baseline_name: str,
                   baseline: Mapping[str, float], resamples: int = BOOTSTRAP_RESAMPLES,
                   seed: int = BOOTSTRAP_SEED) -> PairedComparison:
    """Mean difference (ours - baseline), its bootstrap interval and the Wilcoxon p-value for `metric`."""
    cases, a, b, dropped = paired_values(ours, baseline)
    differences = a - b
    low, high = bootstrap_mean_interval(differences, resamples, seed)
    p, note = wilcoxon_p(differences)
    if dropped:
        note = "; ".join(filter(None, [f"{len(dropped)} case(s) without a value for both models left out", note]))
    return PairedComparison(metric, ours_name, baseline_name, tuple(cases), tuple(a.tolist()), tuple(b.tolist()),
                            tuple(dropped), _mean(a), _mean(b), _mean(differences), low, high, p, note,
                            resamples, seed)
