"""The whole nnU-Net pipeline in 3D through the stock command-line tools, on CPU, on the 3D demo data.

The 3D demo data set (Dataset992) is planned once per session for 2d and 3d_fullres, and the tiny
SwinUMambaD trainer trains fold 0 of both configurations, keeping the validation probabilities, and
nnUNetv2_predict segments the NIfTI test volume with each (tests/conftest.py); here
nnUNetv2_find_best_configuration compares and ensembles 2d with 3d_fullres, and nnUNetv2_ensemble
averages the two predictions.
find_best_configuration runs on fold 0 only (-f 0): the five folds of a real run cost five times as much
and exercise nothing more.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from swin_umamba.nnunet_layout import DEPTH_STRIDES_KEY, IMAGES_TS
from tests.conftest import DEMO_3D, TINY_D

pytestmark = pytest.mark.slow


def test_nnunet_plans_an_anisotropic_3d_fullres_and_the_trainer_maps_it(demo3d_workspace, demo3d_folds):
    plans = json.loads((demo3d_workspace.pre / DEMO_3D.name / "nnUNetPlans.json").read_text())
    fullres = plans["configurations"]["3d_fullres"]
    assert fullres["spacing"] == [6.0, 3.0, 3.0]
    assert [s[0] for s in fullres["architecture"]["arch_kwargs"]["strides"]] == [1, 1, 2, 1, 1]
    # the model folder's plans hold what SwinUMambaD3D trained with: depth pooled once, by the patch embedding
    model_plans = json.loads((demo3d_folds["3d_fullres"].parent / "plans.json").read_text())["configurations"]["3d_fullres"]
    assert model_plans[DEPTH_STRIDES_KEY] == [2, 1, 1, 1]
    assert model_plans["patch_size"] == [8, 96, 128]
    log = next(demo3d_folds["3d_fullres"].glob("training_log_*.txt")).read_text()
    assert "SwinUMambaD3D with depth strides [2, 1, 1, 1]" in log
    summary = json.loads((demo3d_folds["3d_fullres"] / "validation" / "summary.json").read_text())
    assert np.isfinite(summary["foreground_mean"]["Dice"])


@pytest.mark.parametrize("configuration", ["2d", "3d_fullres"])
def test_validation_outputs_kept_with_npz(demo3d_folds, configuration):
    validation = demo3d_folds[configuration] / "validation"
    summary = json.loads((validation / "summary.json").read_text())
    validated = {Path(case["prediction_file"]).name.replace(".nii.gz", "") for case in summary["metric_per_case"]}
    kept = {p.name.replace(".npz", "") for p in validation.glob("*.npz")}
    assert validated and kept == validated, "--npz must keep the softmax outputs of every validation case"


def test_find_best_configuration_compares_and_ensembles_2d_with_3d(demo3d_workspace, demo3d_folds, tmp_path):
    # in a copy: find_best_configuration writes beside the models
    ws = demo3d_workspace.copy_to(tmp_path, models=tuple(fold.parent for fold in demo3d_folds.values()))
    ws.run("nnUNetv2_find_best_configuration", DEMO_3D.dataset_id, "-c", "2d", "3d_fullres", "-tr", TINY_D,
           "-f", "0", "-np", "1")
    info = json.loads((ws.results / DEMO_3D.name / "inference_information.json").read_text())
    compared = set(info["all_results"])
    assert any("3d_fullres" in k for k in compared) and any("__2d" in k for k in compared), compared
    assert any(k.startswith("ensemble___") for k in compared), compared
    assert all(np.isfinite(v) for v in info["all_results"].values())


def test_predict_segments_the_nifti_volume_and_ensemble_averages_2d_and_3d(demo3d_workspace, demo3d_predictions,
                                                                           tmp_path):
    ws = demo3d_workspace
    image = sitk.ReadImage(str(next((ws.raw / DEMO_3D.name / IMAGES_TS).glob("*.nii.gz"))))
    for configuration, folder in demo3d_predictions.items():
        [predicted] = folder.glob("*.nii.gz")
        label = sitk.ReadImage(str(predicted))
        assert label.GetSize() == image.GetSize(), configuration
        assert np.allclose(label.GetSpacing(), image.GetSpacing()) and np.allclose(label.GetOrigin(), image.GetOrigin())
        assert set(np.unique(sitk.GetArrayFromImage(label)).tolist()) <= {0, 1, 2, 3, 4}
    ensembled = tmp_path / "ensembled"
    ws.run("nnUNetv2_ensemble", "-i", *(str(p) for p in demo3d_predictions.values()), "-o", str(ensembled), "-np", "1")
    [volume] = ensembled.glob("*.nii.gz")
    assert sitk.ReadImage(str(volume)).GetSize() == image.GetSize()


def test_swin_umamba_plan_writes_3d_fullres_with_depth_strides(demo3d_workspace, tmp_path):
    from swin_umamba.network_registry import SWIN_UMAMBA_D
    from swin_umamba.trainers.configuration import network_choice

    ws = demo3d_workspace.copy_to(tmp_path)  # the plans are written into nnUNet_preprocessed
    proc = ws.run("swin-umamba", "plan", "-d", DEMO_3D.dataset_id, "--network", SWIN_UMAMBA_D.name)
    plans = json.loads((ws.pre / DEMO_3D.name / f"{SWIN_UMAMBA_D.plans_name}.json").read_text())
    assert set(plans["configurations"]) == {"2d", "3d_fullres"}  # the volumes are too small for 3d_lowres
    fullres = plans["configurations"]["3d_fullres"]
    assert fullres[DEPTH_STRIDES_KEY] == [2, 1, 1, 1] and fullres["patch_size"] == [8, 96, 128]
    assert fullres["architecture"]["network_class_name"] == SWIN_UMAMBA_D.class_path_3d
    assert fullres["batch_size"] >= 2 and fullres["spacing"] == [6.0, 3.0, 3.0]
    assert "depth strides: [2, 1, 1, 1]" in proc.stdout and "[3d_fullres]" in proc.stdout
    # the trainer takes the recorded depth strides
    choice = network_choice(plans, "3d_fullres", SWIN_UMAMBA_D.cls, SWIN_UMAMBA_D.cls_3d)
    assert choice.depth_strides == (2, 1, 1, 1) and choice.network_class is SWIN_UMAMBA_D.cls_3d


def test_check_inputs_takes_a_3d_fullres_model(demo3d_workspace, demo3d_folds, tmp_path, monkeypatch, capsys):
    """The command in this process (no start-up of a new Python)."""
    from swin_umamba.cli import main

    ws = demo3d_workspace
    ws.activate(monkeypatch)
    images = ws.raw / DEMO_3D.name / IMAGES_TS
    args = ["check-inputs", "-d", DEMO_3D.dataset_id, "-c", "3d_fullres", "-tr", TINY_D, "-f", "0"]
    assert main([*args, "-i", str(images)]) == 0
    out = capsys.readouterr().out
    assert "1 case(s) checked" in out, out
    # a truncated volume is named
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    [volume] = images.glob("*.nii.gz")
    (damaged / volume.name).write_bytes(volume.read_bytes()[:200])
    assert main([*args, "-i", str(damaged)]) == 1
    assert volume.name in capsys.readouterr().out
