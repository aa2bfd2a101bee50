"""The whole nnU-Net pipeline through the stock command-line tools, on CPU, on the demo data.

The demo data set is planned once per session and the tiny trainer's fold 0 is trained once
(tests/conftest.py): plan -> train and validate -> find_best_configuration -> predict. This module adds
an ImageNet-started model (encoder freeze across a stop and --c, prediction without the ImageNet
file) and our trainers' refusals, the last ones in-process
(nnU-Net's run_training, the function behind nnUNetv2_train: no start-up of a new Python).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from swin_umamba.environment import CACHE_DIR_VAR
from swin_umamba.pretrained import RELEASE_FILE
from tests.conftest import DEMO_2D, TINY
from tests.http_file_server import serving

DEMO = DEMO_2D.name
SHORT_PRETRAINED = "nnUNetTrainerSwinUMamba_test"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def imagenet_started(demo_workspace, imagenet_file, tmp_path_factory):
    """(workspace, fold 0 folder) of the ImageNet-started short trainer in a copy of the demo workspace:
    stopped after epoch 0, then resumed with --c to the end."""
    ws = demo_workspace.copy_to(tmp_path_factory.mktemp("imagenet_started"))
    # the user's way: `swin-umamba weights download` (here from a server on 127.0.0.1) into the cache
    # folder, then nothing set for the weights
    with serving(imagenet_file[0].read_bytes()) as server:
        ws.run("swin-umamba", "weights", "download", "--url", server.url, env={"no_proxy": "127.0.0.1"})
    fold = ws.model_dir(DEMO, SHORT_PRETRAINED) / "fold_0"
    ws.run("nnUNetv2_train", "990", "2d", "0", "-tr", SHORT_PRETRAINED, "-device", "cpu",
           env={"SWIN_UMAMBA_STOP_AFTER_EPOCHS": "1"})
    assert (fold / "checkpoint_0.pth").is_file() and not (fold / "checkpoint_1.pth").exists(), \
        "SWIN_UMAMBA_STOP_AFTER_EPOCHS=1 must end training after epoch 0"
    ws.run("nnUNetv2_train", "990", "2d", "0", "-tr", SHORT_PRETRAINED, "-device", "cpu", "--c")
    return ws, fold


def _load(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_plan_and_preprocess(demo_workspace):
    ws = demo_workspace
    plans = json.loads((ws.pre / DEMO / "nnUNetPlans.json").read_text())
    assert plans["configurations"]["2d"]["patch_size"] == [96, 128]
    cases = sorted(p.name for p in (ws.raw / DEMO / "imagesTr").glob("*_0000.nii.gz"))
    preprocessed = ws.pre / DEMO / "nnUNetPlans_2d"
    assert len(cases) == len([p for p in preprocessed.iterdir() if p.name.endswith(".pkl")])


def test_fold_trains_validates_and_find_best_configuration_names_our_trainer(demo_workspace, demo_tiny_fold,
                                                                            tmp_path):
    ws = demo_workspace.copy_to(tmp_path, models=(demo_tiny_fold.parent,))  # find_best writes beside the model
    assert (demo_tiny_fold / "checkpoint_final.pth").is_file()
    summary = json.loads((demo_tiny_fold / "validation" / "summary.json").read_text())
    assert summary["metric_per_case"] and np.isfinite(summary["foreground_mean"]["Dice"])
    proc = ws.run("nnUNetv2_find_best_configuration", "990", "-c", "2d", "-tr", TINY, "-f", "0", "-np", "1")
    inference = json.loads((ws.results / DEMO / "inference_information.json").read_text())
    assert inference["best_model_or_ensemble"]["selected_model_or_models"][0]["trainer"] == TINY
    # the printed instructions name our trainer in the predict command
    predict_lines = [line for line in proc.stdout.splitlines() if "nnUNetv2_predict" in line]
    assert predict_lines and all(f"-tr {TINY}" in line for line in predict_lines)


def test_predict_nifti_with_probabilities(demo_workspace, demo_tiny_predictions):
    ws, pred = demo_workspace, demo_tiny_predictions
    images = ws.raw / DEMO / "imagesTs"
    labels = json.loads((ws.raw / DEMO / "dataset.json").read_text())["labels"]
    cases = sorted(images.glob("*_0000.nii.gz"))
    assert len(cases) == 4
    for case in cases:
        name = case.name.replace("_0000", "")
        reference = _load(ws.raw / DEMO / "labelsTs" / name)
        segmentation = _load(pred / name)
        assert segmentation.shape == reference.shape
        assert set(np.unique(segmentation)) <= set(labels.values())
        probabilities = np.load(pred / name.replace(".nii.gz", ".npz"))["probabilities"]
        assert probabilities.shape[0] == len(labels) and probabilities[0].size == reference.size


def _encoder(checkpoint: Path) -> dict[str, torch.Tensor]:
    weights = torch.load(checkpoint, map_location="cpu", weights_only=False)["network_weights"]
    return {k[len("vssm_encoder."):]: v for k, v in weights.items() if k.startswith("vssm_encoder.")}


def test_imagenet_start_freeze_and_resume(imagenet_started, imagenet_file):
    """Epochs 0-1 frozen (patch_embed trains), epoch 2 trainable, across a stop after epoch 0 and --c."""
    _, imagenet = imagenet_file
    ws, fold = imagenet_started
    epochs = [_encoder(fold / name) for name in ("checkpoint_0.pth", "checkpoint_1.pth", "checkpoint_final.pth")]

    key = "layers.2.blocks.4.self_attention.A_logs"  # same name in the file and in our encoder
    assert torch.equal(epochs[0][key], imagenet[key])
    assert torch.equal(epochs[1][key], imagenet[key]), "encoder must still be frozen after resuming"
    assert not torch.equal(epochs[2][key], imagenet[key]), "encoder must train from epoch 2"
    assert torch.equal(epochs[1]["downsamples.0.reduction.weight"], imagenet["layers.0.downsample.reduction.weight"])
    # patch_embed sees the 48-channel stem, is not loaded, and trains while the rest is frozen
    assert not torch.equal(epochs[0]["patch_embed.proj.weight"], epochs[1]["patch_embed.proj.weight"])
    log = "".join(p.read_text() for p in sorted(fold.glob("training_log_*.txt")))
    assert "204 tensors loaded" in log
    assert f"ImageNet weights from {Path(ws.env[CACHE_DIR_VAR]) / RELEASE_FILE}" in log  # the downloaded file


def test_prediction_does_not_need_the_imagenet_file(imagenet_started, imagenet_file, monkeypatch):
    """Same probabilities with and without the ImageNet file (predictor in-process: no second start-up)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    ws, _ = imagenet_started
    ws.activate(monkeypatch)
    case = sorted((ws.raw / DEMO / "imagesTs").glob("*.nii.gz"))[0]
    outputs = []
    for weights in (imagenet_file[0], ws.root / "missing.pth"):
        monkeypatch.setenv("SWIN_UMAMBA_PRETRAINED", str(weights))
        predictor = nnUNetPredictor(device=torch.device("cpu"), use_mirroring=False, verbose=False)
        predictor.initialize_from_trained_model_folder(str(ws.model_dir(DEMO, SHORT_PRETRAINED)), use_folds=(0,))
        _, probabilities = predictor.predict_from_files_sequential(
            [[str(case)]], None, save_probabilities=True, overwrite=True, folder_with_segs_from_prev_stage=None
        )[0]
        outputs.append(probabilities)
    np.testing.assert_array_equal(outputs[0], outputs[1])


def _train_in_process(configuration: str, fold: int, trainer: str, plans: str = "nnUNetPlans"):
    from nnunetv2.run.run_training import run_training

    run_training("990", configuration, fold, trainer, plans, device=torch.device("cpu"))


def test_training_without_imagenet_file_stops_early_naming_it(demo_workspace, tmp_path, monkeypatch):
    from swin_umamba.pretrained import PretrainedWeightsError

    ws = demo_workspace.copy_to(tmp_path)
    ws.activate(monkeypatch)
    monkeypatch.setenv("SWIN_UMAMBA_PRETRAINED", str(tmp_path / "nowhere.pth"))
    with pytest.raises(PretrainedWeightsError) as caught:
        _train_in_process("2d", 2, SHORT_PRETRAINED)
    assert "ImageNet checkpoint not found" in str(caught.value) and "nowhere.pth" in str(caught.value)
    assert not (ws.model_dir(DEMO, SHORT_PRETRAINED) / "fold_2" / "checkpoint_0.pth").exists()


def test_training_without_any_imagenet_file_names_the_download_command(demo_workspace, tmp_path, monkeypatch):
    """SWIN_UMAMBA_PRETRAINED unset and nothing downloaded: stopped before any data is read, never a download."""
    from swin_umamba.pretrained import DOWNLOAD_COMMAND, PretrainedWeightsError

    ws = demo_workspace.copy_to(tmp_path)
    ws.activate(monkeypatch)  # the workspace's own, empty cache folder
    with pytest.raises(PretrainedWeightsError) as caught:
        _train_in_process("2d", 3, SHORT_PRETRAINED)
    assert DOWNLOAD_COMMAND in str(caught.value) and ws.env[CACHE_DIR_VAR] in str(caught.value)
    assert not (ws.model_dir(DEMO, SHORT_PRETRAINED) / "fold_3" / "checkpoint_0.pth").exists()
    assert not Path(ws.env[CACHE_DIR_VAR]).exists()  # nothing was fetched

