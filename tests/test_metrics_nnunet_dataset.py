"""`evaluate --task nnunet`: DSC and NSD per dataset.json label on 2D and 3D maps, against values by hand.

The 2D case used throughout: a 4x4 square and the same square moved one pixel along axis 1.
DSC = 2 * 12 / 32 = 0.75. Its marching-squares contour has 12 straight pieces of one pixel and 4 corner
cuts of half a diagonal; the two contours share their top and bottom rows of corner points (each row:
3 straight pieces and 1 corner cut of each contour) and lie one pixel apart elsewhere. So at a tolerance
below one pixel NSD = 2 * (3 + sqrt(2)/2) / (12 + 2 sqrt(2)) = 0.5, and from one pixel on NSD = 1.
"""
from __future__ import annotations

import argparse
import csv
import json
import math

import nibabel as nib
import numpy as np
import pytest

from swin_umamba.evaluation import cli
from swin_umamba.evaluation.surface import contour_length_table, normalized_surface_dice

DEMO = "Dataset990_DemoAbdomenMR"


def run(argv):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["evaluate", *argv])
    return args.func(args)


def square_and_shifted(shape=(10, 10)):
    gt = np.zeros(shape, np.uint8)
    gt[2:6, 2:6] = 1
    return gt, np.roll(gt, 1, axis=1)


def save_nifti(path, data, zooms):
    image = nib.Nifti1Image(data.astype(np.uint8), np.diag(list(zooms) + [1.0] * (4 - len(zooms))))
    image.header.set_zooms(zooms)
    nib.save(image, str(path))


def write_dataset_json(path, labels, ending=".nii.gz"):
    path.write_text(json.dumps({"labels": labels, "file_ending": ending, "channel_names": {"0": "MR"}}))
    return path


def read_rows(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_contour_lengths_by_hand():
    table = contour_length_table((2.0, 0.5))
    half_diagonal = 0.5 * math.hypot(2.0, 0.5)
    assert table[0] == 0 and table[15] == 0
    for code in (1, 2, 4, 8, 14, 13, 11, 7):  # one pixel in, or one out
        assert table[code] == pytest.approx(half_diagonal)
    assert table[0b0011] == pytest.approx(0.5)  # both pixels of axis-0 offset 0: a piece across axis 1
    assert table[0b0101] == pytest.approx(2.0)  # both pixels of axis-1 offset 0: a piece across axis 0
    assert table[0b1001] == pytest.approx(2 * half_diagonal)  # diagonal pair: two corner cuts


@pytest.mark.parametrize("spacing,below,at", [((1.0, 1.0), 0.99, 1.0), ((3.0, 3.0), 2.99, 3.0)])
def test_2d_nsd_of_the_moved_square(spacing, below, at):
    gt, pred = square_and_shifted()
    assert normalized_surface_dice(gt > 0, pred > 0, spacing, 0.0) == pytest.approx(0.5)
    assert normalized_surface_dice(gt > 0, pred > 0, spacing, below) == pytest.approx(0.5)
    assert normalized_surface_dice(gt > 0, pred > 0, spacing, at) == pytest.approx(1.0)


@pytest.fixture
def folders(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir(), pred_dir.mkdir()
    return tmp_path, gt_dir, pred_dir


def test_2d_nifti_slices_per_label_with_header_spacing(folders, capsys):
    """Label 1 moved by one pixel (3 mm), label 2 missed, label 3 in neither map."""
    root, gt_dir, pred_dir = folders
    gt, pred = square_and_shifted((12, 10))
    gt[8:11, 1:4] = 2
    save_nifti(gt_dir / "case_a.nii.gz", gt, (3.0, 3.0))
    save_nifti(pred_dir / "case_a.nii.gz", pred, (3.0, 3.0))
    dataset = write_dataset_json(root / "dataset.json", {"background": 0, "liver": 1, "spleen": 2, "kidney": 3})
    out = root / "m.csv"
    base = ["--task", "nnunet", "--gt", str(gt_dir), "--pred", str(pred_dir), "--dataset-json", str(dataset),
            "--out", str(out), "--quiet"]
    assert run(base + ["--tolerance-mm", "2.9"]) == 0
    row = read_rows(out)[0]
    assert list(row) == ["Name", "liver_DSC", "spleen_DSC", "kidney_DSC", "liver_NSD", "spleen_NSD", "kidney_NSD"]
    assert float(row["liver_DSC"]) == 0.75 and float(row["liver_NSD"]) == 0.5
    assert float(row["spleen_DSC"]) == 0 and float(row["spleen_NSD"]) == 0
    assert math.isnan(float(row["kidney_DSC"])) and math.isnan(float(row["kidney_NSD"]))
    printed = capsys.readouterr().out
    assert "mean DSC: 0.3750" in printed and "mean NSD: 0.2500" in printed  # kidney left out
    assert run(base + ["--tolerance-mm", "3"]) == 0
    assert float(read_rows(out)[0]["liver_NSD"]) == 1.0


def test_one_slice_volume_is_scored_as_its_2d_map(folders):
    root, gt_dir, pred_dir = folders
    gt, pred = square_and_shifted()
    save_nifti(gt_dir / "s.nii.gz", gt[:, :, None], (1.0, 1.0, 5.0))
    save_nifti(pred_dir / "s.nii.gz", pred[:, :, None], (1.0, 1.0, 5.0))
    dataset = write_dataset_json(root / "dataset.json", {"background": 0, "organ": 1})
    assert run(["--task", "nnunet", "--gt", str(gt_dir), "--pred", str(pred_dir), "--dataset-json", str(dataset),
                "--out", str(root / "m.csv"), "--tolerance-mm", "0.5", "--quiet"]) == 0
    assert float(read_rows(root / "m.csv")[0]["organ_NSD"]) == 0.5  # no top and bottom faces counted


def test_3d_volumes_with_a_region_and_anisotropic_spacing(folders):
    """A 4x4x4 cube moved by one slice along axis 2 (2.5 mm): DSC 48/64 = 0.75. Every surface element lies
    within 2.5 mm of the other surface, the two end faces (one of each cube) no closer, so NSD is 1 from
    2.5 mm on and below 1 under it. Labels 1 and 2 split the cube; the region joins them."""
    root, gt_dir, pred_dir = folders
    gt = np.zeros((8, 8, 10), np.uint8)
    gt[2:6, 2:6, 2:6] = 1
    gt[2:6, 4:6, 2:6] = 2
    pred = np.roll(gt, 1, axis=2)
    save_nifti(gt_dir / "v.nii.gz", gt, (1.0, 1.0, 2.5))
    save_nifti(pred_dir / "v.nii.gz", pred, (1.0, 1.0, 2.5))
    dataset = write_dataset_json(root / "dataset.json", {"background": 0, "left": 1, "right": 2, "cube": [1, 2]})
    base = ["--task", "nnunet", "--gt", str(gt_dir), "--pred", str(pred_dir), "--dataset-json", str(dataset),
            "--out", str(root / "m.csv"), "--quiet", "--mode", "corrected"]
    assert run(base + ["--tolerance-mm", "2.5"]) == 0
    row = read_rows(root / "m.csv")[0]
    assert float(row["cube_DSC"]) == 0.75 and float(row["left_DSC"]) == 0.75 and float(row["right_DSC"]) == 0.75
    assert float(row["cube_NSD"]) == pytest.approx(1.0)
    assert run(base + ["--tolerance-mm", "2.4"]) == 0
    assert float(read_rows(root / "m.csv")[0]["cube_NSD"]) < 0.9


def test_demo_labels_against_themselves(tmp_path):
    from swin_umamba.demo.layout import dataset_source

    source = dataset_source()
    out = tmp_path / "m.csv"
    assert run(["--task", "nnunet", "--gt", str(source / "labelsTs"), "--pred", str(source / "labelsTs"),
                "--dataset-json", str(source / "dataset.json"), "--out", str(out), "--quiet"]) == 0
    rows = read_rows(out)
    assert len(rows) == 4
    values = [float(v) for row in rows for k, v in row.items() if k != "Name"]
    assert all(v == 1.0 or math.isnan(v) for v in values) and any(v == 1.0 for v in values)


def test_inputs_that_cannot_be_scored_are_named(folders, capsys):
    root, gt_dir, pred_dir = folders
    gt, _ = square_and_shifted()
    save_nifti(gt_dir / "c.nii.gz", gt, (1.0, 1.0))
    save_nifti(pred_dir / "c.nii.gz", gt, (1.0, 1.0))
    common = ["--gt", str(gt_dir), "--pred", str(pred_dir), "--out", str(root / "m.csv")]
    assert run(["--task", "nnunet", *common]) == 2
    assert "--dataset-json" in capsys.readouterr().err
    broken = root / "dataset.json"
    broken.write_text(json.dumps({"file_ending": ".nii.gz"}))
    assert run(["--task", "nnunet", "--dataset-json", str(broken), *common]) == 1
    err = capsys.readouterr().err
    assert str(broken) in err and "'labels'" in err
    assert run(["--task", "abdomen", *common]) == 1  # the paper's 13-organ rules need volumes
    err = capsys.readouterr().err
    assert str(gt_dir / "c.nii.gz") in err and "--task nnunet" in err
    assert not (root / "m.csv").exists()
