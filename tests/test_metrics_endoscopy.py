"""Endovis17 rules: classes scored, per-frame means, empty frames."""
import math

import numpy as np
import pytest

from swin_umamba.evaluation import endoscopy

SQRT2, SQRT3 = math.sqrt(2), math.sqrt(3)


def frame():
    return np.zeros((20, 20), dtype=np.int64)


def test_classes_are_union_without_background():
    gt, pred = frame(), frame()
    gt[2:6, 2:6] = 3
    pred[10:12, 10:12] = 5
    assert endoscopy.scored_classes(gt, pred, "paper") == [3, 5]
    assert endoscopy.scored_classes(gt, pred, "corrected") == [3, 5]
    row = endoscopy.score_case(gt, pred)
    assert row["DSC"] == 0 and row["NSD"] == 0 and row["classes"] == "3 5"


def test_paper_rule_drops_each_masks_smallest_value():
    gt = np.full((6, 6), 2)  # no background in the ground truth: 2 is its smallest value
    pred = np.full((6, 6), 2)
    pred[0, 0] = 0
    assert endoscopy.scored_classes(gt, pred, "paper") == [2]
    gt[:3] = 4
    assert endoscopy.scored_classes(gt, pred, "paper") == [2, 4]
    pure = np.full((6, 6), 2)
    assert endoscopy.scored_classes(pure, pure, "paper") == []
    assert endoscopy.scored_classes(pure, pure, "corrected") == [2]


def test_shifted_square_and_perfect_class_are_averaged():
    gt, pred = frame(), frame()
    gt[5:15, 2:12] = 1
    pred[5:15, 5:15] = 1  # the square shifted by 3 columns
    gt[0:2, 0:2] = 6
    pred[0:2, 0:2] = 6  # a perfect second class
    nsd_square = 1 - (SQRT3 / 4 + 9 * SQRT2 / 2) / (81 + 18 * SQRT2 + SQRT3 / 2)
    row = endoscopy.score_case(gt, pred, "corrected")
    assert row["DSC"] == pytest.approx((0.7 + 1) / 2)
    assert row["NSD"] == pytest.approx((nsd_square + 1) / 2)
    paper = endoscopy.score_case(gt, pred, "paper")
    assert paper["DSC"] == 0.85 and paper["NSD"] == round((nsd_square + 1) / 2, 4)


def test_missed_class_counts_zero_and_empty_frames():
    gt, pred = frame(), frame()
    gt[2:6, 2:6] = 2
    gt[10:14, 10:14] = 4
    pred[2:6, 2:6] = 2
    row = endoscopy.score_case(gt, pred)
    assert row["DSC"] == 0.5 and row["NSD"] == 0.5
    empty = frame()
    assert math.isnan(endoscopy.score_case(empty, empty, "paper")["DSC"])
    assert endoscopy.score_case(empty, empty, "corrected")["NSD"] == 1
    rows = [row, endoscopy.score_case(empty, empty, "paper")]
    assert endoscopy.summarize(rows) == {"DSC": 0.5, "NSD": 0.5}
