"""The Swin-UMamba planner: patch and batch rules, the memory model, and plans that nnU-Net's own CLIs use.

The end-to-end part builds a tiny synthetic 2D PNG dataset in a temporary
nnUNet_raw, runs `swin-umamba plan --preprocess`, compares with nnU-Net's default
planner, then trains one iteration with the stock nnUNetv2_train using `-p nnUNetPlansSwinUMamba` and
predicts with nnU-Net's predictor in this process (the same model loading as nnUNetv2_predict, whose
command the end-to-end modules run). SwinUMambaD (`--network swinumambaD`, plans nnUNetPlansSwinUMambaD)
is planned in `compared`.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from swin_umamba.commands.setup import trainers_dir as swin_umamba_trainers_dir
from swin_umamba.nnunet_plans.memory_model import (
    DEFAULT_MODEL_PATH, GIB, MemoryModelError, load_memory_model, parse_memory_model)
from swin_umamba.nnunet_plans.planner import round_patch_to_stride, shrink_patch
from swin_umamba.network_registry import NETWORKS, SWIN_UMAMBA

REPO = Path(__file__).resolve().parents[1]
TEST_TRAINERS = REPO / "tests" / "nnunet_trainers"
DATASET_ID = 991
DATASET = f"Dataset{DATASET_ID}_SwinPlanTest"
PLANS = "nnUNetPlansSwinUMamba"
TRAINER = "nnUNetTrainerSwinUMambaScratch_noval"  # tests/nnunet_trainers: one iteration, no final validation


# --- rules and the memory model (no nnU-Net run) -----------------------------------------------------------------

def test_round_patch_to_stride():
    s = SWIN_UMAMBA.stride
    assert s == (32, 32)
    assert round_patch_to_stride([80, 112], [73, 104], s) == [96, 128]  # ties go up, within the median's cover
    assert round_patch_to_stride([272, 208], [270, 205], s) == [288, 224]  # nearest multiple, up
    assert round_patch_to_stride([256, 200], [300, 300], s) == [256, 192]  # nearest multiple, down
    assert round_patch_to_stride([16, 48], [10, 40], s) == [32, 64]  # at least one stride
    assert round_patch_to_stride([112, 112], [70, 120], s) == [96, 128]  # never beyond ceil(median / 32) * 32
    assert round_patch_to_stride([20, 80, 112], [20, 73, 104], (8, 32, 32)) == [24, 96, 128]  # one stride per axis


def test_shrink_patch_reduces_side_largest_relative_to_median():
    s = SWIN_UMAMBA.stride
    assert shrink_patch([256, 256], [200, 400], s) == [224, 256]
    assert shrink_patch([32, 64], [50, 50], s) == [32, 32]
    assert shrink_patch([32, 32], [50, 50], s) is None
    assert shrink_patch([16, 64], [10, 100], (8, 32)) == [8, 64]  # by the stride of the axis it shrinks


def test_shipped_memory_model_is_valid_and_documented():
    raw = json.loads(DEFAULT_MODEL_PATH.read_text())
    model = load_memory_model()
    assert set(NETWORKS) <= set(model.networks)
    assert raw["provenance"]["method"] and raw["provenance"]["device"]
    if model.provisional:
        assert "PROVISIONAL" in raw["provenance"]["method"]
    for name in NETWORKS:
        net = model.network(name)
        assert net.fixed_bytes > 0 and net.per_pixel_bytes > 0 and net.reserved_over_allocated >= 1


def test_shipped_memory_model_has_3d_entries_used_for_3d_patches():
    raw = json.loads(DEFAULT_MODEL_PATH.read_text())
    model = load_memory_model()
    provenance = raw["networks_3d"]["provenance"]
    assert provenance["method"] and provenance["device"] and provenance["date"]
    if provenance["provisional"]:
        assert "PROVISIONAL" in provenance["method"] and "PROVISIONAL" in model.describe(3)
    for name in NETWORKS:
        assert model.has(name, 3) and model.network(name, 3) != model.network(name)
        net3d = model.network(name, 3)
        # a 3D patch is priced per voxel with the 3D entry; deeper patches cost more
        assert model.estimate_bytes(name, 2, [8, 64, 64], 5) == pytest.approx(
            model.cuda_context_bytes + net3d.reserved_over_allocated * net3d.allocated_bytes(2, [8, 64, 64], 5))
        assert model.estimate_bytes(name, 2, [16, 64, 64], 5) > model.estimate_bytes(name, 2, [8, 64, 64], 5)


def test_a_model_without_3d_entries_says_so():
    model = parse_memory_model({"provenance": {"method": "test", "device": "none"}, "networks": {
        "swinumamba": {"fixed_bytes": GIB, "per_pixel_bytes": 10_000}}})
    assert not model.has("swinumamba", 3)
    with pytest.raises(MemoryModelError, match="3D entry"):
        model.estimate_bytes("swinumamba", 2, [8, 64, 64], 5)


def test_max_batch_size_follows_the_model():
    model = parse_memory_model({
        "provenance": {"method": "test", "device": "none"}, "provisional": True, "cuda_context_bytes": 0.5 * GIB,
        "networks": {"swinumamba": {"fixed_bytes": GIB, "per_pixel_bytes": 10_000, "per_pixel_per_class_bytes": 100,
                                    "reserved_over_allocated": 1.0}}})
    patch, classes = [256, 256], 5
    per_sample = 256 * 256 * (10_000 + 100 * classes)
    assert model.max_batch_size("swinumamba", patch, classes, 8 * GIB) == int((6.5 * GIB) // per_sample)
    assert model.max_batch_size("swinumamba", patch, classes, 1.2 * GIB) == 0
    sizes = [model.max_batch_size("swinumamba", patch, classes, t * GIB) for t in (4, 8, 16, 40)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    with pytest.raises(MemoryModelError):
        model.network("swinumambaD")
    with pytest.raises(MemoryModelError):
        parse_memory_model({"networks": {"x": {"fixed_bytes": 1, "per_pixel_bytes": 1}}})  # no provenance


def _measure_memory_module():
    spec = importlib.util.spec_from_file_location("measure_memory", REPO / "benchmarks" / "measure_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_measure_memory_fit_recovers_constants():
    fit = _measure_memory_module().fit
    points = []
    for c in (2, 16):
        for b in (1, 2, 4):
            for s in (128, 256):
                points.append({"batch_size": b, "patch_size": [s, s], "num_classes": c,
                               "allocated_bytes": 7e8 + b * s * s * (5000 + 30 * c)})
    result = fit(points)
    assert result["fixed_bytes"] == pytest.approx(7e8, rel=1e-6)
    assert result["per_pixel_bytes"] == pytest.approx(5000, rel=1e-6)
    assert result["per_pixel_per_class_bytes"] == pytest.approx(30, rel=1e-4)
    assert result["max_relative_error"] < 1e-6


# --- end to end through nnU-Net ------------------------------------------------------------------------------------

def _write_dataset(raw: Path) -> dict:
    """Synthetic 2D PNG dataset: a bright disc (label 1) and a dark square (label 2) on noise."""
    folder = raw / DATASET
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (folder / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    shapes = {}

    def case(name: str, h: int, w: int, split: str):
        yy, xx = np.mgrid[:h, :w]
        cy, cx = rng.integers(10, h - 10), rng.integers(10, w - 10)
        seg = np.zeros((h, w), np.uint8)
        seg[(yy - cy) ** 2 + (xx - cx) ** 2 < 64] = 1
        sy, sx = rng.integers(0, h - 10), rng.integers(0, w - 10)
        seg[sy:sy + 10, sx:sx + 10] = 2
        img = rng.normal(100, 10, (h, w))
        img[seg == 1] += 80
        img[seg == 2] -= 60
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"images{split}" / f"{name}_0000.png")
        if split == "Tr":
            Image.fromarray(seg).save(folder / "labelsTr" / f"{name}.png")
        shapes[name] = (h, w)

    # median 36 x 52: nnU-Net's U-Net patch is 40 x 56, ours 32 x 64 (one side rounds down, one up).
    # Five cases: each fold validates a single case, which keeps the final validation short.
    for i in range(5):
        case(f"case{i:02d}", 34 + 2 * (i % 3), 50 + 2 * (i % 3), "Tr")
    for i in range(2):
        case(f"test{i:02d}", 35 + 2 * i, 51 + 2 * i, "Ts")
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "synthetic"}, "labels": {"background": 0, "disc": 1, "square": 2},
        "numTraining": 5, "file_ending": ".png"}))
    return shapes


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("planner")
    dirs = {k: root / k for k in ("raw", "preprocessed", "results")}
    for d in dirs.values():
        d.mkdir()
    shapes = _write_dataset(dirs["raw"])
    trainers_dir = str(swin_umamba_trainers_dir())
    env = dict(os.environ, nnUNet_raw=str(dirs["raw"]), nnUNet_preprocessed=str(dirs["preprocessed"]),
               nnUNet_results=str(dirs["results"]), nnUNet_extTrainer=trainers_dir + os.pathsep + str(TEST_TRAINERS),
               nnUNet_n_proc_DA="0", nnUNet_def_n_proc="1", nnUNet_compile="false", PYTHONWARNINGS="ignore")
    # this environment's console scripts, also when the venv is not activated
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return {"root": root, "env": env, "shapes": shapes, **dirs}


def _run(cmd: list[str], env: dict, timeout: int = 300) -> str:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def planned(workspace):
    out = _run(["swin-umamba", "plan", "-d", str(DATASET_ID), "--preprocess", "-np", "1", "-npfp", "1"],
               workspace["env"])
    plans = json.loads((workspace["preprocessed"] / DATASET / f"{PLANS}.json").read_text())
    return {"stdout": out, "plans": plans}


@pytest.fixture(scope="module")
def compared(workspace, planned):
    """nnU-Net's default planner and ours (SwinUMambaD; three memory targets) on the planned data set,
    in-process (nnU-Net reads its folders from the environment when it uses them)."""
    import torch
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner

    from swin_umamba.nnunet_plans.planner import SwinUMambaPlanner

    threads = torch.get_num_threads()  # nnU-Net's default planner sets torch's thread count
    with pytest.MonkeyPatch.context() as env:
        for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
            env.setenv(key, workspace["env"][key])
        env.setenv("nnUNet_n_proc_DA", "1")
        try:
            out = {"default": ExperimentPlanner(DATASET_ID).plan_experiment()}
            planner = SwinUMambaPlanner(DATASET_ID, network="swinumambaD")  # default 8 GiB, nnUNetPlansSwinUMambaD
            out["D"] = {"plans": planner.plan_experiment(), "report": planner.report,
                        "plans_name": planner.plans_identifier}
            for target in (2.0, 4.0, 40.0):
                planner = SwinUMambaPlanner(DATASET_ID, gpu_memory_target_in_gb=target,
                                            plans_name=f"nnUNetPlansSwinUMamba_t{target:g}")
                planner.max_dataset_covered = 1e9  # the dataset is tiny: lift the 5% cap to see the memory model
                planner.plan_experiment()
                out[str(target)] = planner.report
        finally:
            torch.set_num_threads(threads)
    return json.loads(json.dumps(out, default=str))


@pytest.mark.slow
def test_plan_patch_is_multiple_of_32_close_to_nnunet(planned):
    config = planned["plans"]["configurations"]["2d"]
    info = config["swin_umamba_planning"]
    assert set(planned["plans"]["configurations"]) == {"2d"}, "a 2D data set has only the 2d configuration"
    patch, nnunet_patch, median = config["patch_size"], info["nnunet_patch_size"], info["median_image_size_in_voxels"]
    assert all(p % 32 == 0 for p in patch)
    assert all(abs(p - q) <= 16 for p, q in zip(patch, nnunet_patch)), (patch, nnunet_patch)
    assert (nnunet_patch, patch) == ([40, 56], [32, 64])  # this dataset: one side rounds down, one up
    assert all(p <= math.ceil(m / 32) * 32 for p, m in zip(patch, median))
    assert config["data_identifier"] == f"{PLANS}_2d"
    # the tiny dataset: 5% of its voxels is below one patch, so nnU-Net's minimum batch of 2 applies
    assert info["batch_size_5_percent_cap"] < 2 and config["batch_size"] == 2
    assert "patch size" in planned["stdout"] and "batch size" in planned["stdout"] and "memory model" in \
        planned["stdout"]


@pytest.mark.slow
def test_plan_keeps_nnunet_data_decisions(planned, compared):
    ours, default = planned["plans"], compared["default"]
    for key in ("transpose_forward", "transpose_backward", "original_median_spacing_after_transp",
                "foreground_intensity_properties_per_channel", "image_reader_writer"):
        assert ours[key] == default[key], key
    c_ours, c_default = ours["configurations"]["2d"], default["configurations"]["2d"]
    for key in ("spacing", "normalization_schemes", "use_mask_for_norm", "resampling_fn_data",
                "resampling_fn_data_kwargs", "resampling_fn_seg", "resampling_fn_seg_kwargs",
                "resampling_fn_probabilities", "resampling_fn_probabilities_kwargs", "batch_dice",
                "preprocessor_name"):
        assert np.all(np.asarray(c_ours[key], dtype=object) == np.asarray(c_default[key], dtype=object)), key
    assert list(c_default["patch_size"]) == c_ours["swin_umamba_planning"]["nnunet_patch_size"]


@pytest.mark.slow
def test_networks_and_default_plans_names(planned, compared):
    ours = planned["plans"]["configurations"]["2d"]
    assert planned["plans"]["plans_name"] == "nnUNetPlansSwinUMamba"
    assert ours["swin_umamba_planning"]["network"] == "swinumamba"
    assert ours["swin_umamba_planning"]["gpu_memory_target_gb"] == 8.0
    assert ours["architecture"]["network_class_name"] == "swin_umamba.nets.SwinUMamba"
    d = compared["D"]
    assert d["plans_name"] == "nnUNetPlansSwinUMambaD" and d["report"]["network"] == "swinumambaD"
    d_config = d["plans"]["configurations"]["2d"]
    assert d_config["architecture"]["network_class_name"] == "swin_umamba.nets.SwinUMambaD"
    assert d_config["patch_size"] == ours["patch_size"] and d_config["data_identifier"] == "nnUNetPlansSwinUMambaD_2d"


@pytest.mark.slow
def test_plans_for_swinumambaD_stop_a_swinumamba_trainer_at_once(workspace, compared, monkeypatch):
    """nnUNetPlansSwinUMambaD (planned in `compared`) with a trainer that builds SwinUMamba: training (nnU-Net's
    run_training, in-process) stops before anything is built or written, naming the trainer or plans to use."""
    import torch
    from nnunetv2.run.run_training import run_training

    from swin_umamba.trainers import ConfigurationError

    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
        monkeypatch.setenv(key, workspace["env"][key])
    with pytest.raises(ConfigurationError) as caught:
        run_training(str(DATASET_ID), "2d", 0, TRAINER, "nnUNetPlansSwinUMambaD", device=torch.device("cpu"))
    message = " ".join(str(caught.value).split())
    assert f"{TRAINER} builds SwinUMamba" in message and "SwinUMambaD" in message
    assert "-tr nnUNetTrainerSwinUMambaD" in message and "--network swinumamba" in message
    assert not (workspace["results"] / DATASET / f"{TRAINER}__nnUNetPlansSwinUMambaD__2d").exists()


@pytest.mark.slow
def test_batch_size_comes_from_the_memory_model(compared):
    model = load_memory_model()
    batches = {}
    for target in ("2.0", "4.0", "40.0"):
        report = compared[target]
        expected = model.max_batch_size(report["network"], report["patch_size"], report["num_segmentation_heads"],
                                        float(target) * GIB)
        assert report["batch_size_memory_allows"] == expected
        assert report["batch_size"] == max(expected, 2)
        batches[target] = report["batch_size"]
    assert batches["4.0"] < batches["40.0"]
    assert batches["2.0"] <= batches["4.0"]


def _predict(workspace: dict, model_dir: Path, out_dir: Path, monkeypatch):
    """The test images of the data set through nnU-Net's predictor (fold 0, no mirroring), in this process;
    returns the predictor."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
        monkeypatch.setenv(key, workspace["env"][key])
    out_dir.mkdir(parents=True, exist_ok=True)
    predictor = nnUNetPredictor(device=torch.device("cpu"), use_mirroring=False, verbose=False)
    predictor.initialize_from_trained_model_folder(str(model_dir), use_folds=(0,))
    images = sorted((workspace["raw"] / DATASET / "imagesTs").glob("*_0000.png"))
    predictor.predict_from_files_sequential([[str(p)] for p in images], str(out_dir), save_probabilities=False,
                                            overwrite=True, folder_with_segs_from_prev_stage=None)
    return predictor


@pytest.mark.slow
def test_stock_train_and_predict_with_our_plans(workspace, planned, monkeypatch):
    env = workspace["env"]
    _run(["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-p", PLANS, "-tr", TRAINER, "-device", "cpu"], env,
         timeout=600)
    model_dir = workspace["results"] / DATASET / f"{TRAINER}__{PLANS}__2d"
    assert (model_dir / "fold_0" / "checkpoint_final.pth").is_file()
    trained_plans = json.loads((model_dir / "plans.json").read_text())
    assert trained_plans["configurations"]["2d"]["patch_size"] == planned["plans"]["configurations"]["2d"]["patch_size"]

    out_dir = workspace["root"] / "predictions"
    predictor = _predict(workspace, model_dir, out_dir, monkeypatch)
    assert list(predictor.configuration_manager.patch_size) == trained_plans["configurations"]["2d"]["patch_size"]
    for name in ("test00", "test01"):
        seg = np.asarray(Image.open(out_dir / f"{name}.png"))
        assert seg.shape == workspace["shapes"][name]
        assert set(np.unique(seg)) <= {0, 1, 2}


@pytest.mark.slow
def test_stock_plans_with_a_patch_not_multiple_of_32_train_and_predict(workspace, compared, monkeypatch):
    """nnU-Net's own plans for this dataset have a 40x56 patch: our trainer rounds it up to 64x64,
    records that in the model folder, and prediction uses it."""
    env = workspace["env"]
    default_patch = compared["default"]["configurations"]["2d"]["patch_size"]
    assert any(p % 32 for p in default_patch)
    _run(["nnUNetv2_preprocess", "-d", str(DATASET_ID), "-plans_name", "nnUNetPlans", "-c", "2d", "-np", "1"], env)
    _run(["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", TRAINER, "-device", "cpu"], env, timeout=600)
    model_dir = workspace["results"] / DATASET / f"{TRAINER}__nnUNetPlans__2d"
    assert json.loads((model_dir / "plans.json").read_text())["configurations"]["2d"]["patch_size"] == [64, 64]
    out_dir = workspace["root"] / "predictions_stock_plans"
    predictor = _predict(workspace, model_dir, out_dir, monkeypatch)
    assert list(predictor.configuration_manager.patch_size) == [64, 64]
    for name in ("test00", "test01"):
        seg = np.asarray(Image.open(out_dir / f"{name}.png"))
        assert seg.shape == workspace["shapes"][name]
