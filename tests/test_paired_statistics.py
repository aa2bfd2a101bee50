"""Paired statistics of a comparison: hand-computed values and scipy's own implementations as oracles."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from scipy import stats

from swin_umamba.evaluation.paired import (BOOTSTRAP_RESAMPLES, PairingError, bootstrap_mean_interval,
                                           compare_paired, paired_values, smallest_exact_p, wilcoxon_p)


def test_paired_values_sorts_cases_and_drops_undefined_ones():
    cases, ours, base, dropped = paired_values({"b": 0.5, "a": 0.9, "c": float("nan")},
                                               {"a": 0.7, "c": 0.1, "b": 0.6})
    assert cases == ["a", "b"] and dropped == ["c"]
    assert ours.tolist() == [0.9, 0.5] and base.tolist() == [0.7, 0.6]


def test_paired_values_refuses_different_case_sets():
    with pytest.raises(PairingError, match=r"only in ours: \['x'\].*only in the baseline: \['y'\]"):
        paired_values({"a": 1.0, "x": 1.0}, {"a": 1.0, "y": 1.0})


def test_bootstrap_of_two_values_spans_their_range():
    # resampled means of [1, 3] are 1, 2 or 3 with probabilities 1/4, 1/2, 1/4: the 2.5 % and 97.5 %
    # quantiles of many draws are 1 and 3
    assert bootstrap_mean_interval([1.0, 3.0], resamples=4000, seed=1) == (1.0, 3.0)


def test_bootstrap_of_one_case_is_degenerate_and_of_none_is_nan():
    assert bootstrap_mean_interval([0.25]) == (0.25, 0.25)
    assert all(math.isnan(v) for v in bootstrap_mean_interval([]))


def test_bootstrap_equals_scipys_percentile_bootstrap_with_the_same_generator():
    differences = np.array([0.1, -0.05, 0.2, 0.3, 0.0, 0.12, -0.4, 0.07])
    ours = bootstrap_mean_interval(differences, resamples=3000, seed=5)
    theirs = stats.bootstrap((differences,), np.mean, n_resamples=3000, method="percentile",
                             rng=np.random.default_rng(5), vectorized=True).confidence_interval
    assert ours == pytest.approx((theirs.low, theirs.high), abs=1e-12)


def test_bootstrap_is_seeded():
    values = np.random.default_rng(0).normal(size=12)
    assert bootstrap_mean_interval(values, seed=3) == bootstrap_mean_interval(values, seed=3)
    assert bootstrap_mean_interval(values, seed=3) != bootstrap_mean_interval(values, seed=4)


@pytest.mark.parametrize("bad", [{"resamples": 0}, {"confidence": 1.0}])
def test_bootstrap_rejects_bad_settings(bad):
    with pytest.raises(ValueError):
        bootstrap_mean_interval([1.0, 2.0], **bad)


def test_wilcoxon_exact_values_by_hand():
    # six positive differences: W- = 0, P = 2 / 2**6; one negative rank of 1: W- = 1, P = 2 * 2 / 2**6
    p, note = wilcoxon_p([1, 2, 3, 4, 5, 6])
    assert p == pytest.approx(2 / 64) and note == ""
    p, _ = wilcoxon_p([-1, 2, 3, 4, 5, 6])
    assert p == pytest.approx(4 / 64)


def test_wilcoxon_matches_scipy_on_random_differences():
    differences = np.random.default_rng(7).normal(0.02, 0.05, size=15)
    p, note = wilcoxon_p(differences)
    assert p == pytest.approx(stats.wilcoxon(differences).pvalue) and note == ""


def test_wilcoxon_with_few_cases_says_it_cannot_reach_significance():
    p, note = wilcoxon_p([0.1, 0.2, 0.3, 0.4, 0.5])
    assert p == pytest.approx(2 / 32) == smallest_exact_p(5)
    assert "only 5 non-zero" in note and "0.0625" in note and "cannot reach 0.05" in note


def test_wilcoxon_all_zero_and_empty():
    p, note = wilcoxon_p([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert p == 1.0 and "every difference is zero" in note
    p, note = wilcoxon_p([])
    assert math.isnan(p) and "no case" in note


def test_wilcoxon_leaves_zero_differences_out():
    p, note = wilcoxon_p([0.0, 1, 2, 3, 4, 5, 6])
    assert p == pytest.approx(2 / 64) and "1 zero difference(s)" in note


def test_compare_paired_by_hand():
    ours = {"a": 0.9, "b": 0.8, "c": 0.7, "d": float("nan")}
    base = {"a": 0.8, "b": 0.8, "c": 0.4, "d": 0.5}
    result = compare_paired("DSC", "ours", ours, "nnU-Net", base, resamples=500, seed=2)
    assert result.cases == ("a", "b", "c") and result.dropped == ("d",)
    assert result.differences == pytest.approx((0.1, 0.0, 0.3))
    assert result.mean_difference == pytest.approx(0.4 / 3)
    assert result.mean_ours == pytest.approx(0.8) and result.mean_baseline == pytest.approx(2.0 / 3)
    assert result.ci_low <= result.mean_difference <= result.ci_high
    assert (result.ci_low, result.ci_high) == bootstrap_mean_interval(result.differences, 500, 2)
    assert "1 case(s) without a value" in result.note and "only 2 non-zero" in result.note
    assert result.resamples == 500 and BOOTSTRAP_RESAMPLES == 10_000


def test_report_files(tmp_path):
    from PIL import Image

    from swin_umamba.evaluation.paired_report import write_report

    cases = [f"case{i}" for i in range(7)]
    rng = np.random.default_rng(1)
    values = {m: {"DSC": {c: float(v) for c, v in zip(cases, rng.uniform(0.5, 0.9, 7))},
                  "NSD": {c: float(v) for c, v in zip(cases, rng.uniform(0.5, 0.9, 7))}}
              for m in ("ours", "nnU-Net", "ResEnc")}
    comparisons = [compare_paired(k, "ours", values["ours"][k], b, values[b][k], 200, 0)
                   for k in ("DSC", "NSD") for b in ("nnU-Net", "ResEnc")]
    names = {"markdown": "r.md", "summary": "r.csv", "per_case": "p.csv", "plot": "r.png"}
    markdown = write_report(tmp_path, names, "title", "ours", ["ours", "nnU-Net", "ResEnc"], ["DSC", "NSD"],
                            values, comparisons, ["Protocol: x."])
    assert (tmp_path / "r.md").read_text() == markdown
    assert "| **ours** (ours) | DSC | 7 |" in markdown and "| nnU-Net | NSD | 7 |" in markdown

    summary = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert [(r["model"], r["metric"]) for r in summary] == [
        ("ours", "DSC"), ("nnU-Net", "DSC"), ("ResEnc", "DSC"), ("ours", "NSD"), ("nnU-Net", "NSD"), ("ResEnc", "NSD")]
    row = summary[1]
    c = comparisons[0]
    assert float(row["mean_difference"]) == pytest.approx(c.mean_difference)
    assert float(row["p_value"]) == pytest.approx(c.p_value) and summary[0]["p_value"] == ""
    assert float(row["mean"]) == pytest.approx(np.mean(list(values["nnU-Net"]["DSC"].values())))

    per_case = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(per_case) == 14
    first = per_case[0]
    assert float(first["ours"]) == values["ours"]["DSC"][first["case"]]
    assert float(first["ours - ResEnc"]) == pytest.approx(values["ours"]["DSC"][first["case"]]
                                                          - values["ResEnc"]["DSC"][first["case"]])
    with Image.open(tmp_path / "r.png") as image:
        assert image.format == "PNG" and image.size[0] > 400
