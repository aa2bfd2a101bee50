"""AbdomenMR rules: absent organs, z-range rule, rounding, summary."""
import math

import numpy as np
import pytest

from swin_umamba.evaluation import abdomen
from swin_umamba.evaluation.modes import mean_of_column_means, per_case

SPACING = (1.0, 1.0, 1.0)


def volume():
    return np.zeros((12, 12, 10), dtype=np.int64)


def test_absent_in_both_is_one_absent_in_truth_but_predicted_is_zero():
    gt, pred = volume(), volume()
    gt[2:5, 2:5, 2:5] = 1  # liver in both
    pred[2:5, 2:5, 2:5] = 1
    pred[8:10, 8:10, 2:4] = 3  # spleen predicted, absent in truth
    row = abdomen.score_case(gt, pred, SPACING)
    assert row["Liver_DSC"] == 1 and row["Liver_NSD"] == 1
    assert row["Spleen_DSC"] == 0 and row["Spleen_NSD"] == 0
    for name in ("RK", "Pancreas", "Aorta", "IVC", "LK"):
        assert row[f"{name}_DSC"] == 1 and row[f"{name}_NSD"] == 1


def test_present_in_truth_not_predicted_is_zero():
    gt, pred = volume(), volume()
    gt[2:5, 2:5, 2:5] = 4
    row = abdomen.score_case(gt, pred, SPACING)
    assert row["Pancreas_DSC"] == 0 and row["Pancreas_NSD"] == 0


def test_z_range_excludes_last_slice_in_paper_mode():
    gt, pred = volume(), volume()
    gt[3:7, 3:7, 2:5] = 5  # aorta on slices 2, 3, 4 (16 voxels each)
    pred[3:7, 3:7, 2:4] = 5  # prediction misses slice 4
    pred[3:7, 3:7, 8] = 5  # and adds a slice outside the labelled range (ignored)
    assert abdomen.z_range(gt == 5, "paper") == slice(2, 4)
    assert abdomen.z_range(gt == 5, "corrected") == slice(2, 5)
    paper = abdomen.score_case(gt, pred, SPACING, "paper")
    corrected = abdomen.score_case(gt, pred, SPACING, "corrected")
    assert paper["Aorta_DSC"] == 1  # slices 2, 3 only
    assert corrected["Aorta_DSC"] == pytest.approx(2 * 32 / (48 + 32))  # 0.8
    # the same prediction for a non-z-range organ counts everything
    gt2, pred2 = np.where(gt == 5, 1, 0), np.where(pred == 5, 1, 0)
    assert abdomen.score_case(gt2, pred2, SPACING)["Liver_DSC"] == pytest.approx(round(2 * 32 / (48 + 48), 4))


def test_single_slice_truth_gives_nan_in_paper_mode():
    gt, pred = volume(), volume()
    gt[3:7, 3:7, 4] = 10  # esophagus on one slice only
    pred[3:7, 3:7, 4] = 10
    paper = abdomen.score_case(gt, pred, SPACING, "paper")
    assert math.isnan(paper["Esophagus_DSC"]) and math.isnan(paper["Esophagus_NSD"])
    corrected = abdomen.score_case(gt, pred, SPACING, "corrected")
    assert corrected["Esophagus_DSC"] == 1 and corrected["Esophagus_NSD"] == 1


def test_anisotropic_spacing_and_rounding():
    # right adrenal (tolerance 2 mm): truth two voxels along z (spacing 2.5), prediction one of them.
    gt, pred = volume(), volume()
    gt[4, 4, 4:6] = 7
    pred[4, 4, 4] = 7
    spacing = (1.0, 1.0, 2.5)
    a = math.sqrt(2.5 ** 2 + 2.5 ** 2 + 1) / 8
    q = 0.5 * 2.5 * math.sqrt(2)
    nsd = (12 * a + 4 * q) / (16 * a + 4 * q)
    row = abdomen.score_case(gt, pred, spacing, "paper")
    assert row["RAG_DSC"] == 0.6667
    assert row["RAG_NSD"] == round(nsd, 4) == 0.8726
    row = abdomen.score_case(gt, pred, spacing, "corrected")
    assert row["RAG_DSC"] == pytest.approx(2 / 3, abs=1e-12)
    assert row["RAG_NSD"] == pytest.approx(nsd, abs=1e-12)


def test_rounding_happens_before_averaging():
    assert per_case(2 / 3, "paper") == 0.6667
    assert per_case(0.99996, "paper") == 1.0 and per_case(0.00004, "paper") == 0.0
    assert per_case(2 / 3, "corrected") == 2 / 3
    assert math.isnan(per_case(float("nan"), "paper"))
    rows_paper = [{"a": per_case(v, "paper")} for v in (1 / 3, 1 / 3, 1 / 3)]
    rows_exact = [{"a": per_case(v, "corrected")} for v in (1 / 3, 1 / 3, 1 / 3)]
    assert mean_of_column_means(rows_paper, ["a"]) == pytest.approx(0.3333, abs=1e-12)
    assert mean_of_column_means(rows_exact, ["a"]) == pytest.approx(1 / 3, abs=1e-12)


def test_summary_is_mean_of_column_means_skipping_nan():
    nan = float("nan")
    rows = []
    for values in ((1.0, nan), (0.5, 0.2), (0.0, 0.4)):
        row = {c: 1.0 for c in abdomen.COLUMNS}
        row["Liver_DSC"], row["Aorta_DSC"] = values
        rows.append(row)
    summary = abdomen.summarize(rows)
    # liver column 0.5, aorta column (0.2 + 0.4) / 2 = 0.3, eleven columns of 1
    assert summary["DSC"] == pytest.approx((0.5 + 0.3 + 11) / 13)
    assert summary["NSD"] == 1.0
    # a column that is NaN everywhere is skipped
    for row in rows:
        row["Esophagus_DSC"] = nan
    assert abdomen.summarize(rows)["DSC"] == pytest.approx((0.5 + 0.3 + 10) / 12)
