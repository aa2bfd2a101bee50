"""The `evaluate` sub-command end to end on tiny folders."""
import argparse
import csv
import math

import nibabel as nib
import numpy as np
import tifffile
from PIL import Image

from swin_umamba.evaluation import cli


def run(argv):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["evaluate", *argv])
    return args.func(args)


def read_csv(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def save_nifti(path, data, zooms):
    image = nib.Nifti1Image(data.astype(np.uint8), np.diag([*zooms, 1.0]))
    image.header.set_zooms(zooms)
    nib.save(image, str(path))


def test_help_text_on_every_option():
    parser = argparse.ArgumentParser()
    sub = cli.add_parser(parser.add_subparsers())
    for action in sub._actions:
        if action.dest != "help":
            assert action.help, action.dest


def test_abdomen_end_to_end_uses_header_spacing(tmp_path, capsys):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir(), pred_dir.mkdir()
    gt = np.zeros((8, 8, 8))
    pred = np.zeros((8, 8, 8))
    gt[4, 4, 4:6] = 7
    pred[4, 4, 4] = 7
    save_nifti(gt_dir / "case_001.nii.gz", gt, (1.0, 1.0, 2.5))
    save_nifti(pred_dir / "case_001.nii.gz", pred, (1.0, 1.0, 2.5))
    out = tmp_path / "res" / "metrics.csv"
    assert run(["--task", "abdomen", "--gt", str(gt_dir), "--pred", str(pred_dir), "--out", str(out)]) == 0
    rows = read_csv(out)
    assert rows[0]["Name"] == "case_001.nii.gz"
    assert float(rows[0]["RAG_DSC"]) == 0.6667 and float(rows[0]["RAG_NSD"]) == 0.8726
    assert float(rows[0]["Liver_DSC"]) == 1
    printed = capsys.readouterr().out
    assert f"mean DSC: {(12 + 0.6667) / 13:.4f}" in printed
    assert [p.name for p in out.parent.iterdir()] == ["metrics.csv"]  # no temporary file left


def test_missing_prediction_and_shape_mismatch_name_the_file(tmp_path, capsys):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir(), pred_dir.mkdir()
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(gt_dir / "frame_a.png")
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(gt_dir / "frame_b.png")
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(pred_dir / "frame_a.png")
    out = tmp_path / "m.csv"
    argv = ["--task", "endoscopy", "--gt", str(gt_dir), "--pred", str(pred_dir), "--out", str(out)]
    assert run(argv) == 1
    assert str(pred_dir / "frame_b.png") in capsys.readouterr().err
    assert not out.exists()
    Image.fromarray(np.zeros((6, 7), np.uint8)).save(pred_dir / "frame_b.png")
    assert run(argv) == 1
    err = capsys.readouterr().err
    assert "shape mismatch" in err and str(pred_dir / "frame_b.png") in err
    assert not out.exists()


def test_endoscopy_end_to_end(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir(), pred_dir.mkdir()
    gt = np.zeros((20, 20), np.uint8)
    gt[5:15, 2:12] = 3
    Image.fromarray(gt).save(gt_dir / "f1.png")
    Image.fromarray(np.roll(gt, 3, axis=1)).save(pred_dir / "f1.png")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(gt_dir / "f2.png")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(pred_dir / "f2.png")
    out = tmp_path / "m.csv"
    assert run(["--task", "endoscopy", "--gt", str(gt_dir), "--pred", str(pred_dir), "--out", str(out),
                "--num-workers", "2", "--quiet"]) == 0
    rows = read_csv(out)
    assert float(rows[0]["DSC"]) == 0.7 and float(rows[0]["NSD"]) == 0.9367
    assert math.isnan(float(rows[1]["DSC"]))
    assert run(["--task", "endoscopy", "--gt", str(gt_dir), "--pred", str(pred_dir), "--out", str(out),
                "--mode", "corrected", "--quiet"]) == 0
    assert float(read_csv(out)[1]["DSC"]) == 1


def test_cells_accepts_semantic_png_or_instance_tiff(tmp_path, capsys):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir(), pred_dir.mkdir()
    gt = np.zeros((20, 20), np.uint16)
    gt[5:9, 5:9] = 1
    gt[11:15, 11:15] = 2
    tifffile.imwrite(gt_dir / "cell_00001_label.tiff", gt)
    tifffile.imwrite(gt_dir / "cell_00002_label.tiff", gt)
    semantic = np.zeros((20, 20), np.uint8)
    semantic[5:9, 5:9] = 1
    semantic[4, 4:10] = 2
    Image.fromarray(semantic).save(pred_dir / "cell_00001.png")
    tifffile.imwrite(pred_dir / "cell_00002_label.tiff", gt)
    out = tmp_path / "m.csv"
    assert run(["--task", "cells", "--gt", str(gt_dir), "--pred", str(pred_dir), "--out", str(out)]) == 0
    rows = read_csv(out)
    assert [r["Name"] for r in rows] == ["cell_00001", "cell_00002"]
    assert float(rows[0]["F1"]) == 0.6667 and float(rows[1]["F1"]) == 1
    assert "mean F1: 0.8334" in capsys.readouterr().out
