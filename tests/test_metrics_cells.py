"""Cell F1 at IoU 0.5: connectivity, border cells, matching, empty predictions, tiling."""
import numpy as np
import pytest

from swin_umamba.evaluation import cells


def image(shape=(20, 20)):
    return np.zeros(shape, dtype=np.int64)


def test_touching_interiors_merge_with_8_connectivity():
    semantic = image()
    semantic[5:10, 5:10] = 1
    semantic[10:15, 10:15] = 1  # touches the first square only at a corner
    semantic[4, 4:11] = 2  # boundary class is not an instance
    pred = cells.instances_from_semantic(semantic)
    assert pred.max() == 1
    gt = image()
    gt[5:10, 5:10] = 1
    gt[10:15, 10:15] = 2
    row = cells.score_case(gt, pred)
    # the merged prediction has IoU 25/50 = 0.5 with either cell; one-to-one allows one match
    assert (row["true_num"], row["pred_num"], row["TP"], row["FP"], row["FN"]) == (2, 1, 1, 0, 1)
    assert row["precision"] == 1 and row["recall"] == 0.5 and row["F1"] == 0.6667
    assert row["DSC"] == 1


def test_border_cells_removed_independently():
    gt, pred = image(), image()
    gt[2:6, 8:12] = 1  # row 2 is just inside the 2-pixel band
    pred[1:5, 8:12] = 1  # the prediction reaches row 1: removed, so the true cell is missed
    gt[0:3, 15:18] = 2  # a border cell in the truth only: removed, not a miss
    pred[18:20, 0:3] = 3  # a border cell in the prediction only: removed, not a false positive
    gt[10:14, 10:14] = 4
    pred[10:14, 10:14] = 4
    row = cells.score_case(gt, pred)
    assert (row["true_num"], row["pred_num"], row["TP"], row["FP"], row["FN"]) == (2, 1, 1, 0, 1)
    assert row["F1"] == pytest.approx(round(2 * 1 * 0.5 / 1.5, 4))


def test_dice_is_taken_before_border_removal():
    gt, pred = image((12, 12)), image((12, 12))
    gt[3:5, 3:5] = 1
    pred[3:5, 3:5] = 1
    gt[0:2, 6:8] = 2  # border cell missed by the prediction
    row = cells.score_case(gt, pred)
    assert row["F1"] == 1
    assert row["DSC"] == pytest.approx(round(2 * 4 / (8 + 4), 4))


def test_no_prediction_counts_nothing_in_paper_mode():
    gt, pred = image(), image()
    gt[5:9, 5:9] = 1
    gt[10:14, 10:14] = 2
    paper = cells.score_case(gt, pred, "paper")
    assert (paper["TP"], paper["FP"], paper["FN"], paper["F1"], paper["DSC"]) == (0, 0, 0, 0, 0)
    corrected = cells.score_case(gt, pred, "corrected")
    assert (corrected["TP"], corrected["FP"], corrected["FN"], corrected["F1"]) == (0, 0, 2, 0)
    both_empty = cells.score_case(image(), image())
    assert both_empty["F1"] == 0 and both_empty["DSC"] == 1


def test_matching_maximises_number_of_pairs():
    # greedy by IoU would take (0, 0) and leave one pair; the assignment finds two
    iou = np.array([[0.9, 0.6], [0.55, 0.0]])
    assert cells.count_true_positives(iou) == 2
    assert cells.count_true_positives(np.array([[0.49, 0.3]])) == 0
    assert cells.count_true_positives(np.array([[0.5]])) == 1
    assert cells.count_true_positives(np.zeros((0, 3))) == 0


def test_iou_matrix_and_relabel():
    gt = np.array([[1, 1, 0, 0], [0, 0, 5, 5]])
    pred = np.array([[1, 0, 0, 0], [0, 0, 2, 2]])
    iou = cells.iou_matrix(cells.relabel_sequential(gt), pred)
    assert iou.shape == (2, 2)
    assert iou[0, 0] == 0.5 and iou[1, 1] == 1 and iou[0, 1] == 0
    assert cells.relabel_sequential(np.array([[7, 3], [3, 0]])).tolist() == [[2, 1], [1, 0]]


def test_large_images_are_scored_per_tile():
    # 12x12 image, tiles of 8 (padded to 16x16) once the image reaches the threshold
    gt = image((12, 12))
    gt[3:5, 3:5] = 1  # inside tile (0, 0)
    gt[6:10, 3:5] = 2  # crosses the tile edge at row 8: a border cell in both tiles
    gt[10:12, 10:12] = 3  # image border (removed untiled) but inside tile (1, 1) after padding
    pred = gt.copy()
    pred[pred == 3] = 0  # the prediction misses cell 3
    whole = cells.score_case(gt, pred, tile_threshold=145, tile_size=8)
    assert (whole["true_num"], whole["pred_num"], whole["TP"], whole["F1"]) == (2, 2, 2, 1)
    tiled = cells.score_case(gt, pred, tile_threshold=144, tile_size=8)
    assert (tiled["true_num"], tiled["pred_num"], tiled["TP"]) == (2, 1, 1)
    # tile (1, 1) has a true cell and no prediction: the paper counts no miss there
    assert tiled["FN"] == 0 and tiled["recall"] == 0.5 and tiled["F1"] == 0.6667
    assert cells.score_case(gt, pred, "corrected", tile_threshold=144, tile_size=8)["FN"] == 1
    assert len(cells.tiles((12, 12), 8)) == 4
    assert len(cells.tiles((16, 17), 8)) == 2 * 3
