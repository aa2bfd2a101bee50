"""A model folder in the authors' release format predicts with the stock nnUNetv2_predict.

The folder is generated: nnU-Net 2.1.1-era plans (UNet_class_name & co.), checkpoint_99.pth and
checkpoint_final.pth with the old init_args (unpack_dataset), trainer nnUNetTrainerSwinUMambaD,
PNG images (EndoVis-like: 3 channels, 8 outputs). The prediction must equal our own forward pass
with the weights of checkpoint_99.pth.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from swin_umamba import SwinUMambaD
from swin_umamba.commands.setup import trainers_dir

BIN = Path(sys.executable).parent
PATCH = [64, 96]
LABELS = {"background": 0, "bipolar_forceps": 1, "prograsp_forceps": 2, "large_needle_driver": 3,
          "vessel_sealer": 4, "grasping_retractor": 5, "monopolar_curved_scissors": 6, "other": 7}


def old_format_plans() -> dict:
    resampling = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
    intensity = {"max": 255.0, "mean": 120.0, "median": 118.0, "min": 0.0, "percentile_00_5": 2.0,
                 "percentile_99_5": 250.0, "std": 60.0}
    return {
        "dataset_name": "Dataset704_Endovis17",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [999.0, 1.0, 1.0],
        "original_median_shape_after_transp": [1, 64, 96],
        "image_reader_writer": "NaturalImage2DIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {
            "2d": {
                "data_identifier": "nnUNetPlans_2d",
                "preprocessor_name": "DefaultPreprocessor",
                "batch_size": 12,
                "patch_size": PATCH,
                "median_image_size_in_voxels": [64.0, 96.0],
                "spacing": [1.0, 1.0],
                "normalization_schemes": ["ZScoreNormalization"] * 3,
                "use_mask_for_norm": [False] * 3,
                "UNet_class_name": "PlainConvUNet",
                "UNet_base_num_features": 32,
                "n_conv_per_stage_encoder": [2, 2, 2, 2, 2],
                "n_conv_per_stage_decoder": [2, 2, 2, 2],
                "num_pool_per_axis": [4, 4],
                "pool_op_kernel_sizes": [[1, 1], [2, 2], [2, 2], [2, 2], [2, 2]],
                "conv_kernel_sizes": [[3, 3]] * 5,
                "unet_max_num_features": 512,
                "resampling_fn_data": "resample_data_or_seg_to_shape",
                "resampling_fn_seg": "resample_data_or_seg_to_shape",
                "resampling_fn_data_kwargs": resampling,
                "resampling_fn_seg_kwargs": {**resampling, "is_seg": True, "order": 1},
                "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                "resampling_fn_probabilities_kwargs": {**resampling, "order": 1},
                "batch_dice": True,
            }
        },
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {str(c): intensity for c in range(3)},
    }


def authors_checkpoint(weights: dict, plans: dict, dataset_json: dict, epoch: int) -> dict:
    return {
        "network_weights": weights,
        "optimizer_state": {"state": {}, "param_groups": []},
        "grad_scaler_state": None,
        "logging": {"mean_fg_dice": [0.5] * epoch, "ema_fg_dice": [0.5] * epoch},
        "_best_ema": 0.5,
        "current_epoch": epoch + 1,
        "init_args": {"plans": plans, "configuration": "2d", "fold": "all", "dataset_json": dataset_json,
                      "unpack_dataset": True, "device": torch.device("cuda")},
        "trainer_name": "nnUNetTrainerSwinUMambaD",
        "inference_allowed_mirroring_axes": (0, 1),
    }


def _weights(seed: int) -> dict:
    torch.manual_seed(seed)
    net = SwinUMambaD(3, len(LABELS))
    with torch.no_grad():  # make the untrained heads decisive so the argmax is stable
        for p in net.decoder.seg_layers.parameters():
            p.mul_(20)
    return net.state_dict()


def _reference_prediction(weights: dict, image: np.ndarray) -> np.ndarray:
    """What the published model predicts for one patch-sized image: z-score per channel, forward, argmax."""
    x = image.astype(np.float64).transpose(2, 0, 1)
    x = (x - x.mean(axis=(1, 2), keepdims=True)) / np.maximum(x.std(axis=(1, 2), keepdims=True), 1e-8)
    net = SwinUMambaD(3, len(LABELS)).eval()
    net.load_state_dict(weights)
    with torch.no_grad():
        logits = net(torch.from_numpy(x).float()[None])[0]
    return logits.argmax(0).numpy()


@pytest.mark.slow
def test_authors_model_folder_predicts_with_stock_cli(tmp_path):
    results = tmp_path / "results"
    model = results / "Dataset704_Endovis17" / "nnUNetTrainerSwinUMambaD__nnUNetPlans__2d"
    (model / "fold_all").mkdir(parents=True)
    plans = old_format_plans()
    dataset_json = {"channel_names": {"0": "R", "1": "G", "2": "B"}, "labels": LABELS, "numTraining": 1800,
                    "file_ending": ".png"}
    (model / "plans.json").write_text(json.dumps(plans, indent=1))
    (model / "dataset.json").write_text(json.dumps(dataset_json, indent=1))
    published = _weights(99)
    torch.save(authors_checkpoint(published, plans, dataset_json, 99), model / "fold_all" / "checkpoint_99.pth")
    torch.save(authors_checkpoint(_weights(999), plans, dataset_json, 999), model / "fold_all" / "checkpoint_final.pth")

    images = tmp_path / "imagesTs"
    images.mkdir()
    rng = np.random.default_rng(0)
    frames = {}
    for i in range(2):
        yy, xx = np.mgrid[: PATCH[0], : PATCH[1]]
        frame = np.stack([(xx * 2 + 40 * i) % 256, (yy * 3) % 256, rng.integers(1, 256, PATCH)], axis=-1)
        frames[f"frame{i:03d}"] = frame.astype(np.uint8)
        Image.fromarray(frames[f"frame{i:03d}"]).save(images / f"frame{i:03d}_0000.png")

    env = {**os.environ, "nnUNet_results": str(results), "nnUNet_raw": str(tmp_path / "raw"),
           "nnUNet_preprocessed": str(tmp_path / "pre"), "nnUNet_extTrainer": str(trainers_dir()),
           "nnUNet_def_n_proc": "1"}
    env.pop("SWIN_UMAMBA_PRETRAINED", None)
    out = tmp_path / "pred"
    proc = subprocess.run(
        [str(BIN / "nnUNetv2_predict"), "-i", str(images), "-o", str(out), "-d", "704", "-c", "2d",
         "-tr", "nnUNetTrainerSwinUMambaD", "-f", "all", "-chk", "checkpoint_99.pth", "--disable_tta",
         "-device", "cpu", "-npp", "0", "-nps", "0"],
        env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]

    for name, frame in frames.items():
        predicted = np.array(Image.open(out / f"{name}.png"))
        expected = _reference_prediction(published, frame)
        assert predicted.shape == expected.shape
        assert (predicted == expected).mean() > 0.999
        assert len(np.unique(expected)) > 1, "test image should produce more than one class"
