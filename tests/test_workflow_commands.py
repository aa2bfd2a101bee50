"""The argument lists of nnU-Net's programs (swin_umamba.workflow.nnunet_commands), exactly."""
from __future__ import annotations

from pathlib import Path

import pytest

from swin_umamba.workflow import nnunet_commands as nc
from swin_umamba.workflow import nnunet_runner


@pytest.fixture(autouse=True)
def bare_program_names(monkeypatch):
    monkeypatch.setattr(nnunet_runner, "nnunet_tool", lambda name: f"/env/bin/{name}")


MODEL_3D = nc.NnUNetModel(702, "3d_fullres", "nnUNetTrainerSwinUMamba", "nnUNetPlans")
MODEL_2D = nc.NnUNetModel("Dataset990_Demo", "2d", "nnUNetTrainerSwinUMambaDemo", "nnUNetPlans")


def test_programs_are_resolved_and_shown_by_their_bare_name():
    command = nc.plan_experiment_command(702, "nnUNetPlannerResEncM")
    assert command == ["/env/bin/nnUNetv2_plan_experiment", "-d", "702", "-pl", "nnUNetPlannerResEncM"]
    assert nc.command_line(command) == "nnUNetv2_plan_experiment -d 702 -pl nnUNetPlannerResEncM"
    assert nc.command_line(["/x/nnUNetv2_predict", "-i", "a b"]) == "nnUNetv2_predict -i 'a b'"


def test_plan_and_preprocess():
    assert nc.plan_and_preprocess_command(702, ["2d", "3d_fullres"], workers=0)[1:] == [
        "-d", "702", "-c", "2d", "3d_fullres", "--verify_dataset_integrity", "-npfp", "1", "-np", "1"]
    assert nc.plan_and_preprocess_command(5, "3d_fullres", planner="nnUNetPlannerResEncM",
                                          verify_dataset_integrity=False)[1:] == [
        "-d", "5", "-c", "3d_fullres", "-pl", "nnUNetPlannerResEncM"]
    assert nc.plan_and_preprocess_command([991, 992], ["2d"], verify_dataset_integrity=False, preprocess=False,
                                          workers=1)[1:] == ["-d", "991", "992", "-c", "2d", "-npfp", "1", "-np", "1",
                                                             "--no_pp"]
    with pytest.raises(ValueError, match="configurations"):
        nc.plan_and_preprocess_command(5, [])


def test_preprocess_of_other_plans():
    assert nc.preprocess_command(702, "nnUNetResEncUNetMPlans", ["3d_fullres"], workers=3) == [
        "/env/bin/nnUNetv2_preprocess", "-d", "702", "-plans_name", "nnUNetResEncUNetMPlans", "-c", "3d_fullres",
        "-np", "3"]


def test_train():
    assert nc.train_command(MODEL_3D, 2, device="cuda") == [
        "/env/bin/nnUNetv2_train", "702", "3d_fullres", "2", "-tr", "nnUNetTrainerSwinUMamba", "-p", "nnUNetPlans",
        "-device", "cuda"]
    assert nc.train_command(MODEL_2D, "all", device="cpu", resume=True, num_gpus=2,
                            pretrained_weights=Path("/w/checkpoint_final.pth"), save_softmax=True)[1:] == [
        "Dataset990_Demo", "2d", "all", "-tr", "nnUNetTrainerSwinUMambaDemo", "-p", "nnUNetPlans", "-device", "cpu",
        "-num_gpus", "2", "-pretrained_weights", "/w/checkpoint_final.pth", "--npz", "--c"]


def test_predict_with_several_folds_and_every_option():
    assert nc.predict_command(MODEL_3D, Path("/in"), Path("/out"), [0, "1", 4], device="cuda")[1:] == [
        "-i", "/in", "-o", "/out", "-d", "702", "-c", "3d_fullres", "-tr", "nnUNetTrainerSwinUMamba",
        "-p", "nnUNetPlans", "-f", "0", "1", "4", "-device", "cuda", "--disable_progress_bar"]
    assert nc.predict_command(MODEL_2D, Path("/in"), Path("/out"), "all", device="cpu",
                              checkpoint="checkpoint_99.pth", disable_tta=True, save_probabilities=True,
                              previous_stage=Path("/low"), workers=0, progress_bar=True)[1:] == [
        "-i", "/in", "-o", "/out", "-d", "Dataset990_Demo", "-c", "2d", "-tr", "nnUNetTrainerSwinUMambaDemo",
        "-p", "nnUNetPlans", "-f", "all", "-chk", "checkpoint_99.pth", "--disable_tta", "-device", "cpu",
        "-prev_stage_predictions", "/low", "--save_probabilities", "-npp", "0", "-nps", "0"]


def test_find_best_configuration():
    assert nc.find_best_configuration_command(702, ["2d", "3d_fullres"], trainers=["nnUNetTrainerSwinUMamba"],
                                              plans=["nnUNetPlans"], folds=range(5), ensembling=False,
                                              workers=2) == [
        "/env/bin/nnUNetv2_find_best_configuration", "702", "-p", "nnUNetPlans", "-c", "2d", "3d_fullres",
        "-tr", "nnUNetTrainerSwinUMamba", "-f", "0", "1", "2", "3", "4", "-np", "2", "--disable_ensembling"]
    with pytest.raises(ValueError, match="all"):
        nc.find_best_configuration_command(702, ["2d"], trainers=["t"], plans=["p"], folds=["all"])


def test_ensemble():
    assert nc.ensemble_command([Path("/a"), Path("/b")], Path("/e"), save_probabilities=True, workers=1) == [
        "/env/bin/nnUNetv2_ensemble", "-i", "/a", "/b", "-o", "/e", "-np", "1", "--save_npz"]
    with pytest.raises(ValueError, match="two"):
        nc.ensemble_command([Path("/a")], Path("/e"))


def test_model_folders_follow_the_configuration(tmp_path):
    assert MODEL_3D.folder(tmp_path, "Dataset702_AbdomenMR") == (
        tmp_path / "Dataset702_AbdomenMR" / "nnUNetTrainerSwinUMamba__nnUNetPlans__3d_fullres")
    assert MODEL_3D.fold_folder(tmp_path, "Dataset702_AbdomenMR", 3).name == "fold_3"
