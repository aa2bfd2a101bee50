"""The whole nnU-Net pipeline through the stock command-line tools, on CPU.

One workspace per module. What several tests need is built by module-scoped fixtures on first
use (plan/preprocess, a trained fold of the tiny trainer, the ImageNet-started model folder), so
each test also passes alone: plan/preprocess -> folds -> find_best_configuration -> predict ->
ensemble; an ImageNet start with the encoder-freeze check across a stop and --c; --val --npz;
-pretrained_weights; the error paths.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from swin_umamba.commands.setup import trainers_dir
from tests.nnunet_workspace import NnUNetWorkspace
from tests.synthetic_weights import write_model_only_checkpoint

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "swin_umamba" / "demo_data" / "Dataset990_DemoAbdomenMR"
BIN = Path(sys.executable).parent
TINY = "nnUNetTrainerSwinUMambaScratch_tiny"
SHORT_PRETRAINED = "nnUNetTrainerSwinUMamba_test"


class Workspace(NnUNetWorkspace):
    def __init__(self, root: Path):
        super().__init__(root, os.pathsep.join([str(trainers_dir()), str(REPO / "tests" / "nnunet_trainers")]),
                         unset=("SWIN_UMAMBA_PRETRAINED",))
        shutil.copytree(DEMO, self.raw / DEMO.name)
        self.env["PYTHONPATH"] = str(REPO)

    def run(self, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(BIN / args[0]), *args[1:]]
        proc = subprocess.run(cmd, env={**self.env, **(env or {})}, capture_output=True, text=True, cwd=self.root)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
        return proc

    def model_dir(self, trainer: str) -> Path:
        return self.results / DEMO.name / f"{trainer}__nnUNetPlans__2d"


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    """The demo dataset in nnU-Net's raw folder; nothing planned yet."""
    return Workspace(tmp_path_factory.mktemp("nnunet"))


@pytest.fixture(scope="module")
def ws(workspace) -> Workspace:
    """The workspace after nnUNetv2_plan_and_preprocess (2d)."""
    workspace.run("nnUNetv2_plan_and_preprocess", "-d", "990", "-c", "2d", "--verify_dataset_integrity",
                  "-npfp", "1", "-np", "1")
    return workspace


@pytest.fixture(scope="module")
def tiny_fold(ws):
    """fold -> its folder, trained with the tiny trainer the first time it is asked for."""
    def trained(fold: int) -> Path:
        fold_dir = ws.model_dir(TINY) / f"fold_{fold}"
        if not (fold_dir / "checkpoint_final.pth").is_file():
            ws.run("nnUNetv2_train", "990", "2d", str(fold), "-tr", TINY, "-device", "cpu")
        return fold_dir

    return trained


@pytest.fixture(scope="module")
def five_folds(ws, tiny_fold) -> list[Path]:
    return [tiny_fold(fold) for fold in range(5)]


@pytest.fixture(scope="module")
def imagenet_weights(workspace) -> tuple[Path, dict[str, torch.Tensor]]:
    """A synthetic ImageNet file with the released key layout, and its tensors."""
    path = workspace.root / "vmamba_tiny_e292.pth"
    return path, write_model_only_checkpoint(path)


@pytest.fixture(scope="module")
def imagenet_started_fold(ws, imagenet_weights) -> Path:
    """Fold 0 of the ImageNet-started short trainer: stopped after epoch 0, then resumed with --c to the end."""
    env = {"SWIN_UMAMBA_PRETRAINED": str(imagenet_weights[0])}
    fold = ws.model_dir(SHORT_PRETRAINED) / "fold_0"
    ws.run("nnUNetv2_train", "990", "2d", "0", "-tr", SHORT_PRETRAINED, "-device", "cpu",
           env={**env, "SWIN_UMAMBA_STOP_AFTER_EPOCHS": "1"})
    assert (fold / "checkpoint_0.pth").is_file() and not (fold / "checkpoint_1.pth").exists(), \
        "SWIN_UMAMBA_STOP_AFTER_EPOCHS=1 must end training after epoch 0"
    ws.run("nnUNetv2_train", "990", "2d", "0", "-tr", SHORT_PRETRAINED, "-device", "cpu", "--c", env=env)
    return fold


def _load(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_plan_and_preprocess(ws):
    plans = json.loads((ws.pre / DEMO.name / "nnUNetPlans.json").read_text())
    assert plans["configurations"]["2d"]["patch_size"] == [96, 128]
    cases = sorted(p.name for p in (ws.raw / DEMO.name / "imagesTr").glob("*_0000.nii.gz"))
    preprocessed = ws.pre / DEMO.name / "nnUNetPlans_2d"
    assert len(cases) == len([p for p in preprocessed.iterdir() if p.name.endswith(".pkl")])


def test_train_all_five_folds(ws, five_folds):
    validated = []
    for fold_dir in five_folds:
        assert (fold_dir / "checkpoint_final.pth").is_file()
        summary = json.loads((fold_dir / "validation" / "summary.json").read_text())
        assert np.isfinite(summary["foreground_mean"]["Dice"])
        validated += [case["prediction_file"] for case in summary["metric_per_case"]]
    # five folds validate every training case exactly once
    names = sorted(Path(f).name for f in validated)
    cases = sorted(p.name for p in (ws.raw / DEMO.name / "labelsTr").glob("*.nii.gz"))
    assert names == cases


def test_find_best_configuration(ws, five_folds):
    proc = ws.run("nnUNetv2_find_best_configuration", "990", "-c", "2d", "-tr", TINY, "-np", "1")
    inference = json.loads((ws.results / DEMO.name / "inference_information.json").read_text())
    assert inference["best_model_or_ensemble"]["selected_model_or_models"][0]["trainer"] == TINY
    # the printed instructions name our trainer in the predict command
    predict_lines = [line for line in proc.stdout.splitlines() if "nnUNetv2_predict" in line]
    assert predict_lines and all(f"-tr {TINY}" in line for line in predict_lines)


def test_predict_nifti_with_all_folds_and_ensemble(ws, five_folds):
    images = ws.raw / DEMO.name / "imagesTs"
    for name, folds in (("pred_f01234", ["0", "1", "2", "3", "4"]), ("pred_f0", ["0"])):
        ws.run("nnUNetv2_predict", "-i", str(images), "-o", str(ws.root / name), "-d", "990", "-c", "2d",
               "-tr", TINY, "-f", *folds, "-device", "cpu", "--save_probabilities", "-npp", "1", "-nps", "1")
    ws.run("nnUNetv2_ensemble", "-i", str(ws.root / "pred_f01234"), str(ws.root / "pred_f0"),
           "-o", str(ws.root / "ensemble"), "-np", "1")
    labels = set(json.loads((DEMO / "dataset.json").read_text())["labels"].values())
    for case in sorted(images.glob("*_0000.nii.gz")):
        name = case.name.replace("_0000", "")
        reference = _load(ws.raw / DEMO.name / "labelsTs" / name)
        for folder in ("pred_f01234", "ensemble"):
            pred = _load(ws.root / folder / name)
            assert pred.shape == reference.shape
            assert set(np.unique(pred)) <= labels
        # the ensemble is the argmax of the mean of the two predictions' probabilities
        p_all = np.load(ws.root / "pred_f01234" / name.replace(".nii.gz", ".npz"))["probabilities"]
        p_0 = np.load(ws.root / "pred_f0" / name.replace(".nii.gz", ".npz"))["probabilities"]
        assert not np.array_equal(p_all, p_0), "five folds and fold 0 alone must differ for the check to mean anything"
        expected = ((p_all + p_0) / 2).argmax(0)
        agreement = (_load(ws.root / "ensemble" / name).reshape(expected.shape) == expected).mean()
        assert agreement > 0.999


def _encoder(checkpoint: Path) -> dict[str, torch.Tensor]:
    weights = torch.load(checkpoint, map_location="cpu", weights_only=False)["network_weights"]
    return {k[len("vssm_encoder."):]: v for k, v in weights.items() if k.startswith("vssm_encoder.")}


def test_imagenet_start_freeze_and_resume(imagenet_started_fold, imagenet_weights):
    """Epochs 0-1 frozen (patch_embed trains), epoch 2 trainable, across a stop after epoch 0 and --c."""
    _, imagenet = imagenet_weights
    fold = imagenet_started_fold
    epochs = [_encoder(fold / f"checkpoint_{e}.pth") for e in range(3)]

    key = "layers.2.blocks.4.self_attention.A_logs"  # same name in the file and in our encoder
    assert torch.equal(epochs[0][key], imagenet[key])
    assert torch.equal(epochs[1][key], imagenet[key]), "encoder must still be frozen after resuming"
    assert not torch.equal(epochs[2][key], imagenet[key]), "encoder must train from epoch 2"
    assert torch.equal(epochs[1]["downsamples.0.reduction.weight"], imagenet["layers.0.downsample.reduction.weight"])
    # patch_embed sees the 48-channel stem, is not loaded, and trains while the rest is frozen
    assert not torch.equal(epochs[0]["patch_embed.proj.weight"], epochs[1]["patch_embed.proj.weight"])
    log = "".join(p.read_text() for p in sorted(fold.glob("training_log_*.txt")))
    assert "204 tensors loaded" in log


def test_validation_only_with_npz(ws, imagenet_started_fold):
    fold = imagenet_started_fold
    shutil.rmtree(fold / "validation")
    ws.run("nnUNetv2_train", "990", "2d", "0", "-tr", SHORT_PRETRAINED, "-device", "cpu", "--val", "--npz")
    summary = json.loads((fold / "validation" / "summary.json").read_text())
    validated = {Path(case["prediction_file"]).name.replace(".nii.gz", "") for case in summary["metric_per_case"]}
    kept = {p.name.replace(".npz", "") for p in (fold / "validation").glob("*.npz")}
    assert validated and kept == validated, "--npz must keep the softmax outputs of every validation case"


def test_pretrained_weights_replace_imagenet(ws, tiny_fold):
    """-pretrained_weights: the ImageNet file is not needed and not read; the given encoder starts the run."""
    source = tiny_fold(1) / "checkpoint_final.pth"
    env = {"SWIN_UMAMBA_PRETRAINED": str(ws.root / "does-not-exist.pth")}
    ws.run("nnUNetv2_train", "990", "2d", "1", "-tr", SHORT_PRETRAINED, "-device", "cpu",
           "-pretrained_weights", str(source), env=env)
    first_epoch = _encoder(ws.model_dir(SHORT_PRETRAINED) / "fold_1" / "checkpoint_0.pth")
    given = _encoder(source)
    key = "layers.1.blocks.0.self_attention.in_proj.weight"
    assert torch.equal(first_epoch[key], given[key])


def test_prediction_does_not_need_the_imagenet_file(ws, imagenet_started_fold, imagenet_weights, monkeypatch):
    """Same probabilities with and without the ImageNet file (predictor in-process: no second start-up)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
        monkeypatch.setenv(key, ws.env[key])
    case = sorted((ws.raw / DEMO.name / "imagesTs").glob("*.nii.gz"))[0]
    outputs = []
    for weights in (imagenet_weights[0], ws.root / "missing.pth"):
        monkeypatch.setenv("SWIN_UMAMBA_PRETRAINED", str(weights))
        predictor = nnUNetPredictor(device=torch.device("cpu"), use_mirroring=False, verbose=False)
        predictor.initialize_from_trained_model_folder(str(ws.model_dir(SHORT_PRETRAINED)), use_folds=(0,))
        _, probabilities = predictor.predict_from_files_sequential(
            [[str(case)]], None, save_probabilities=True, overwrite=True, folder_with_segs_from_prev_stage=None
        )[0]
        outputs.append(probabilities)
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_training_without_imagenet_file_stops_early_with_a_clear_message(ws):
    proc = ws.run("nnUNetv2_train", "990", "2d", "2", "-tr", SHORT_PRETRAINED, "-device", "cpu",
                  env={"SWIN_UMAMBA_PRETRAINED": str(ws.root / "nowhere.pth")}, check=False)
    assert proc.returncode != 0
    assert "ImageNet checkpoint not found" in proc.stderr and "nowhere.pth" in proc.stderr
    assert not (ws.model_dir(SHORT_PRETRAINED) / "fold_2" / "checkpoint_0.pth").exists()


def test_unknown_trainer_names_our_folder(workspace):
    proc = workspace.run("nnUNetv2_train", "990", "2d", "0", "-tr", "nnUNetTrainerSwinUMambaa", "-device", "cpu", check=False)
    assert proc.returncode != 0
    assert str(trainers_dir()) in proc.stderr + proc.stdout


def test_3d_configuration_is_refused(ws):
    plans_path = ws.pre / DEMO.name / "nnUNetPlans.json"
    plans = json.loads(plans_path.read_text())
    plans["configurations"]["3d_fullres"] = {**plans["configurations"]["2d"], "patch_size": [16, 96, 128],
                                             "spacing": [9.0, 3.0, 3.0], "data_identifier": "nnUNetPlans_3d_fullres"}
    plans_path.with_name("nnUNetPlans3D.json").write_text(json.dumps(plans))
    proc = ws.run("nnUNetv2_train", "990", "3d_fullres", "0", "-p", "nnUNetPlans3D", "-tr", TINY, "-device", "cpu",
                  check=False)
    assert proc.returncode != 0
    assert "Swin-UMamba is a 2D network" in proc.stderr and "'3d_fullres'" in proc.stderr


def test_missing_nnunet_paths_are_named(workspace):
    env = {k: v for k, v in workspace.env.items() if k != "nnUNet_preprocessed"}
    proc = subprocess.run([str(BIN / "nnUNetv2_train"), "990", "2d", "0", "-tr", TINY, "-device", "cpu"],
                          env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "nnUNet_preprocessed is not defined" in proc.stderr
