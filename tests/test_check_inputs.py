"""`swin-umamba check-inputs` and swin_umamba.input_checks: each bad input is named with its fix."""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from swin_umamba.cli import main
from swin_umamba.demo.layout import dataset_source
from swin_umamba.input_checks import (check_checkpoint, check_image_file, check_images_folder, check_model_folder,
                                      expectation_from_dataset_json)

DEMO = dataset_source()


def _dataset_json(folder: Path, channels: int) -> Path:
    path = folder / "dataset.json"
    path.write_text(json.dumps({"channel_names": {str(i): f"MR{i}" for i in range(channels)},
                                "labels": {"background": 0, "organ": 1}, "numTraining": 1,
                                "file_ending": ".nii.gz"}))
    return path


def _image(path: Path, spacing=(1.0, 1.0), size=(24, 20)) -> Path:
    image = sitk.GetImageFromArray(np.random.default_rng(0).normal(size=size[::-1]).astype(np.float32))
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def _problems(folder: Path, channels: int) -> list[str]:
    expected, problems = expectation_from_dataset_json(_dataset_json(folder.parent, channels))
    assert not problems
    found, _ = check_images_folder(folder, expected)
    return [str(p) for p in found]


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    return folder


def test_the_demo_test_images_pass(tmp_path, capsys):
    expected, problems = expectation_from_dataset_json(DEMO / "dataset.json")
    found, cases = check_images_folder(DEMO / "imagesTs", expected)
    assert (problems, found, cases) == ([], [], 4)
    assert main(["check-inputs", "-i", str(DEMO / "imagesTs"), "--dataset-json", str(DEMO / "dataset.json")]) == 0
    assert "4 case(s) checked" in capsys.readouterr().out


def test_truncated_gzip_is_named(images):
    source = next((DEMO / "imagesTs").glob("*.nii.gz"))
    bad = images / source.name
    data = source.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    found = _problems(images, 1)
    assert len(found) == 1 and str(bad) in found[0] and "truncated" in found[0] and "copy the file again" in found[0]


def test_complete_gzip_with_missing_image_data_is_named(images):
    # the gzip stream is intact, but the NIfTI inside stops half-way through its voxels
    path = _image(images / "case_0000.nii")
    raw = path.read_bytes()
    with gzip.open(images / "case_0000.nii.gz", "wb") as stream:
        stream.write(raw[: 352 + (len(raw) - 352) // 2])
    path.unlink()
    found = check_image_file(images / "case_0000.nii.gz")
    assert len(found) == 1 and "case_0000.nii.gz" in str(found[0].path)
    assert f"where its NIfTI header announces {len(raw)}" in found[0].message


def test_empty_file_is_named(images):
    (images / "case_0000.nii.gz").touch()
    found = _problems(images, 1)
    assert len(found) == 1 and str(images / "case_0000.nii.gz") in found[0] and "empty (0 bytes)" in found[0]


def test_missing_channel_names_the_file_to_add(images):
    _image(images / "case_0000.nii.gz")
    found = _problems(images, 2)
    assert len(found) == 1
    assert str(images / "case_0001.nii.gz") in found[0] and "missing" in found[0] and "MR1" in found[0]


def test_extra_channel_is_named(images):
    _image(images / "case_0000.nii.gz")
    _image(images / "case_0001.nii.gz")
    found = _problems(images, 1)
    assert len(found) == 1 and str(images / "case_0001.nii.gz") in found[0] and "unexpected channel 1" in found[0]


def test_mismatched_geometry_is_named(images):
    _image(images / "case_0000.nii.gz")
    _image(images / "case_0001.nii.gz", spacing=(1.0, 2.0))
    _image(images / "other_0000.nii.gz")
    _image(images / "other_0001.nii.gz", size=(24, 21))
    found = _problems(images, 2)
    assert len(found) == 2
    assert str(images / "case_0001.nii.gz") in found[0] and "spacing [1.0, 2.0] vs [1.0, 1.0]" in found[0]
    assert str(images / "other_0001.nii.gz") in found[1] and "size [24, 21] vs [24, 20]" in found[1]


def test_badly_named_and_foreign_format_files(images):
    _image(images / "case.nii.gz")
    _image(images / "case_0000.nrrd")
    (images / "notes.txt").write_text("ignored")
    found = _problems(images, 1)
    assert len(found) == 2  # notes.txt is not an image: left alone
    assert any("case.nii.gz" in f and "case_0000.nii.gz" in f for f in found)
    assert any("case_0000.nrrd" in f and "convert it to .nii.gz" in f for f in found)


def _model(tmp_path: Path, checkpoint: bytes | None) -> Path:
    model = tmp_path / "model"
    (model / "fold_0").mkdir(parents=True)
    shutil.copy(DEMO / "dataset.json", model / "dataset.json")
    if checkpoint is not None:
        (model / "fold_0" / "checkpoint_final.pth").write_bytes(checkpoint)
    return model


def _checkpoint_bytes(tmp_path: Path, content: dict) -> bytes:
    torch.save(content, tmp_path / "c.pth")
    return (tmp_path / "c.pth").read_bytes()


def test_good_checkpoint_passes(tmp_path):
    model = _model(tmp_path, _checkpoint_bytes(tmp_path, {"network_weights": {"w": torch.zeros(3)}}))
    expected, problems = check_model_folder(model, ["0"])
    assert problems == [] and expected.channels == {0: "MR"} and expected.file_ending == ".nii.gz"


def test_empty_checkpoint_is_named(tmp_path):
    model = _model(tmp_path, b"")
    _, problems = check_model_folder(model, ["0"])
    assert len(problems) == 1 and problems[0].path == model / "fold_0" / "checkpoint_final.pth"
    assert "empty (0 bytes)" in str(problems[0]) and "-chk" in problems[0].fix


def test_truncated_checkpoint_is_named(tmp_path):
    data = _checkpoint_bytes(tmp_path, {"network_weights": {"w": torch.zeros(1000)}})
    model = _model(tmp_path, data[: len(data) // 2])
    _, problems = check_model_folder(model, ["0"])
    assert len(problems) == 1 and str(model / "fold_0" / "checkpoint_final.pth") in str(problems[0])
    assert "cannot be loaded with torch" in problems[0].message and "truncated" in problems[0].message


def test_checkpoint_without_weights_and_missing_fold(tmp_path):
    model = _model(tmp_path, _checkpoint_bytes(tmp_path, {"something": 1}))
    _, problems = check_model_folder(model, ["0", "3"])
    assert "no 'network_weights'" in problems[0].message
    assert problems[1].path == model / "fold_3" and "-f" in problems[1].fix and "(0)" in problems[1].fix
    assert check_checkpoint(tmp_path / "absent.pth")[0].message == "not found"


def test_cli_with_a_model_folder_exits_1_and_names_the_files(tmp_path, capsys):
    model = _model(tmp_path, b"")
    images = tmp_path / "images"
    shutil.copytree(DEMO / "imagesTs", images)
    bad = sorted(images.iterdir())[0]
    bad.write_bytes(bad.read_bytes()[:200])
    code = main(["check-inputs", "-i", str(images), "-m", str(model), "-f", "0"])
    out = capsys.readouterr().out
    assert code == 1
    assert str(model / "fold_0" / "checkpoint_final.pth") in out and str(bad) in out and "2 problem(s)" in out


def test_cli_finds_the_model_folder_from_dataset_and_trainer(tmp_path, monkeypatch, capsys):
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / name).mkdir()
        monkeypatch.setenv(name, str(tmp_path / name))
    folder = tmp_path / "nnUNet_results" / "Dataset990_Demo" / "nnUNetTrainerX__nnUNetPlans__2d"
    (folder / "fold_0").mkdir(parents=True)
    shutil.copy(DEMO / "dataset.json", folder / "dataset.json")
    code = main(["check-inputs", "-i", str(DEMO / "imagesTs"), "-d", "990", "-tr", "nnUNetTrainerX", "-f", "0"])
    out = capsys.readouterr().out
    assert code == 1 and str(folder / "fold_0" / "checkpoint_final.pth") in out and "not found" in out
    assert main(["check-inputs", "-i", str(DEMO / "imagesTs")]) == 2  # neither a model nor a dataset.json


def test_an_rgb_file_holds_three_channels(images):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(images / "rgb_0000.png")
    Image.fromarray(np.zeros((8, 8, 4), np.uint8)).save(images / "rgba_0000.png")
    path = images.parent / "dataset.json"
    path.write_text(json.dumps({"channel_names": {"0": "R", "1": "G", "2": "B"}, "file_ending": ".png"}))
    expected, _ = expectation_from_dataset_json(path)
    found, cases = check_images_folder(images, expected)
    assert cases == 2 and len(found) == 1  # nnU-Net reads the RGB file as the three channels
    assert found[0].path == images / "rgba_0000.png" and "holds 4 channel(s)" in found[0].message


def test_a_missing_input_folder_is_named_as_missing_with_the_fix(tmp_path, capsys):
    missing = tmp_path / "imagesTs_typo"
    code = main(["check-inputs", "-i", str(missing), "--dataset-json", str(DEMO / "dataset.json")])
    out = capsys.readouterr().out
    assert code == 1 and f"{missing}: folder not found (it does not exist)" in out
    assert f"nearest folder that exists is {tmp_path}" in out and "-i" in out
    # also when the model cannot be read either: both are named
    code = main(["check-inputs", "-i", str(missing), "-m", str(tmp_path / "no_model"), "-f", "0"])
    out = capsys.readouterr().out
    assert code == 1 and "model folder not found" in out and f"{missing}: folder not found" in out
    a_file = tmp_path / "case_0000.nii.gz"
    a_file.write_bytes(b"")
    code = main(["check-inputs", "-i", str(a_file), "--dataset-json", str(DEMO / "dataset.json")])
    assert code == 1 and "is a file, not a folder" in capsys.readouterr().out
