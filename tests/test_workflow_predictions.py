"""The workflow layer's prediction stamp, input check before predicting, and raw dataset lookup."""
from __future__ import annotations

import shutil

import pytest
import torch

from swin_umamba.workflow.errors import DatasetNotFound, InputsNotUsable, NnUNetFoldersNotSet, WorkflowError
from swin_umamba.workflow.nnunet_folders import nnunet_folders, raw_dataset_folder
from swin_umamba.workflow.predictions import (PREDICTION_STAMP, check_before_predicting, prediction_stamp,
                                              prediction_stamp_matches, read_prediction_stamp, write_prediction_stamp)


@pytest.fixture
def checkpoints(tmp_path):
    folder = tmp_path / "model" / "fold_0"
    folder.mkdir(parents=True)
    first, second = folder / "checkpoint_final.pth", folder / "checkpoint_best.pth"
    first.write_bytes(b"weights of one training")
    second.write_bytes(b"weights of another")
    return first, second


# the stamp -----------------------------------------------------------------------------------------------------
def test_a_stamp_matches_the_predictions_of_the_same_checkpoint(tmp_path, checkpoints):
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    stamp = prediction_stamp({"0": checkpoints[0]}, tmp_path / "imagesTs", "3d_fullres")
    write_prediction_stamp(predictions, stamp)
    assert prediction_stamp_matches(predictions, prediction_stamp({"0": checkpoints[0]}, tmp_path / "imagesTs",
                                                                  "3d_fullres"))
    recorded = read_prediction_stamp(predictions)
    assert recorded["configuration"] == "3d_fullres" and recorded["images"] == str((tmp_path / "imagesTs").resolve())
    assert recorded["folds"]["0"]["checkpoint"] == str(checkpoints[0].resolve())
    assert len(recorded["folds"]["0"]["sha256"]) == 64


def test_another_checkpoint_configuration_images_or_folds_do_not_match(tmp_path, checkpoints):
    first, second = checkpoints
    predictions = tmp_path / "predictions"
    write_prediction_stamp(predictions, prediction_stamp({"0": first}, tmp_path / "imagesTs", "2d"))
    assert not prediction_stamp_matches(predictions, prediction_stamp({"0": first}, tmp_path / "imagesTs",
                                                                      "3d_fullres"))
    assert not prediction_stamp_matches(predictions, prediction_stamp({"0": first}, tmp_path / "other", "2d"))
    assert not prediction_stamp_matches(predictions, prediction_stamp({"0": first, "1": second},
                                                                      tmp_path / "imagesTs", "2d"))
    # the same file name with other contents (retrained): the SHA-256 differs
    first.write_bytes(second.read_bytes())
    assert not prediction_stamp_matches(predictions, prediction_stamp({"0": first}, tmp_path / "imagesTs", "2d"))


def test_a_missing_or_corrupt_stamp_matches_nothing(tmp_path, checkpoints):
    stamp = prediction_stamp({"0": checkpoints[0]}, tmp_path, "2d")
    predictions = tmp_path / "predictions"
    assert read_prediction_stamp(predictions) is None and not prediction_stamp_matches(predictions, stamp)
    predictions.mkdir()
    (predictions / PREDICTION_STAMP).write_text('{"configuration": "2d", "fol')  # cut off mid-write
    assert read_prediction_stamp(predictions) is None and not prediction_stamp_matches(predictions, stamp)
    (predictions / PREDICTION_STAMP).write_text("[1, 2]")
    assert read_prediction_stamp(predictions) is None


# the input check ---------------------------------------------------------------------------------------------------
def _model_with_images(tmp_path):
    from swin_umamba.demo.layout import dataset_source

    raw = tmp_path / "raw"
    shutil.copytree(dataset_source(), raw)
    model = tmp_path / "model"
    (model / "fold_0").mkdir(parents=True)
    shutil.copy(raw / "dataset.json", model / "dataset.json")
    torch.save({"network_weights": {}}, model / "fold_0" / "checkpoint_final.pth")
    return raw / "imagesTs", model


def test_usable_inputs_give_the_number_of_cases(tmp_path):
    images, model = _model_with_images(tmp_path)
    assert check_before_predicting(images, {model: "checkpoint_final.pth"}, ["0"]) == 4


def test_every_bad_file_of_every_model_is_named_once(tmp_path):
    images, model = _model_with_images(tmp_path)
    other = tmp_path / "other_model"
    shutil.copytree(model, other)
    (other / "fold_0" / "checkpoint_final.pth").write_bytes(b"")
    damaged = sorted(images.iterdir())[0]
    damaged.write_bytes(damaged.read_bytes()[:100])
    with pytest.raises(InputsNotUsable) as caught:
        check_before_predicting(images, {model: "checkpoint_final.pth", other: "checkpoint_final.pth"}, ["0", "1"])
    message = str(caught.value)
    assert isinstance(caught.value, WorkflowError)
    assert str(other / "fold_0" / "checkpoint_final.pth") in message and "empty (0 bytes)" in message
    assert str(model / "fold_1") in message and "fold not trained" in message
    assert message.count(str(damaged)) == 1  # the images are checked for both models, reported once


# nnU-Net's folders and the raw dataset -------------------------------------------------------------------------------
def test_raw_dataset_by_id_or_name(tmp_path):
    (tmp_path / "Dataset702_AbdomenMR").mkdir()
    (tmp_path / "Dataset070_Other").mkdir()
    assert raw_dataset_folder(tmp_path, 702) == tmp_path / "Dataset702_AbdomenMR"
    assert raw_dataset_folder(tmp_path, "70") == tmp_path / "Dataset070_Other"
    assert raw_dataset_folder(tmp_path, "Dataset702_AbdomenMR") == tmp_path / "Dataset702_AbdomenMR"


def test_a_missing_raw_dataset_names_the_folder_searched_and_the_fix(tmp_path):
    with pytest.raises(DatasetNotFound) as caught:
        raw_dataset_folder(tmp_path, 703, fix="build it with `swin-umamba convert-neurips-cell`")
    assert "Dataset703_*" in str(caught.value) and str(tmp_path) in str(caught.value)
    assert "convert-neurips-cell" in str(caught.value)
    with pytest.raises(DatasetNotFound, match="Dataset704_Endovis17"):
        raw_dataset_folder(tmp_path, "Dataset704_Endovis17")
    with pytest.raises(DatasetNotFound, match="neither"):
        raw_dataset_folder(tmp_path, "AbdomenMR")


def test_two_raw_datasets_with_one_id_are_both_named(tmp_path):
    (tmp_path / "Dataset702_A").mkdir()
    (tmp_path / "Dataset702_B").mkdir()
    with pytest.raises(DatasetNotFound) as caught:
        raw_dataset_folder(tmp_path, 702)
    assert "Dataset702_A" in str(caught.value) and "Dataset702_B" in str(caught.value)


def test_unset_nnunet_folders_are_named_with_the_export_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)
    monkeypatch.delenv("nnUNet_results", raising=False)
    with pytest.raises(NnUNetFoldersNotSet) as caught:
        nnunet_folders()
    assert "export nnUNet_preprocessed=" in str(caught.value) and "export nnUNet_results=" in str(caught.value)
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "res"))
    assert nnunet_folders() == (tmp_path, tmp_path / "pre", tmp_path / "res")
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "absent"))
    with pytest.raises(NnUNetFoldersNotSet, match="absent"):
        nnunet_folders()
