"""The trainers on 3D configurations without a training run: network choice, depth strides, patch, cascade."""
from __future__ import annotations

import copy

import pytest
import torch

from swin_umamba import SwinUMamba3D, SwinUMambaD3D
from swin_umamba.nnunet_layout import DEPTH_STRIDES_KEY
from swin_umamba.trainers import (
    nnUNetTrainerSwinUMamba,
    nnUNetTrainerSwinUMambaD,
    nnUNetTrainerSwinUMambaDScratch,
    nnUNetTrainerSwinUMambaScratch,
)
from swin_umamba.trainers.base import plans_with_trainable_patch
from swin_umamba.trainers.common import ConfigurationError
from swin_umamba.trainers.configuration import depth_strides_for, memory_verdict, network_choice, nnunet_pooling

# nnU-Net 2.8's 3d_fullres of the embedded 3D demo (Dataset992: 6 x 3 x 3 mm, median 8 x 72 x 104)
DEMO_POOLING = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [1, 2, 2], [1, 2, 2]]


def plans_3d(patch=(8, 80, 112), pooling=DEMO_POOLING, spacing=(6.0, 3.0, 3.0)) -> dict:
    """nnU-Net plans with 2d, 3d_fullres, 3d_lowres and 3d_cascade_fullres (the parts the trainers read)."""
    fullres = {
        "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": list(patch), "spacing": list(spacing), "median_image_size_in_voxels": [8.0, 72.0, 104.0],
        "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False], "batch_dice": False,
        "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                         "arch_kwargs": {"n_stages": len(pooling), "strides": [list(s) for s in pooling]},
                         "_kw_requires_import": []},
    }
    return {
        "dataset_name": "Dataset992_DemoAbdomenMR3D", "plans_name": "nnUNetPlans", "label_manager": "LabelManager",
        "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2], "continue_training": False,
        "configurations": {
            "2d": {**copy.deepcopy(fullres), "data_identifier": "nnUNetPlans_2d", "patch_size": [80, 112],
                   "spacing": [3.0, 3.0], "architecture": {"network_class_name": "x", "arch_kwargs": {}}},
            "3d_fullres": fullres,
            "3d_lowres": {"inherits_from": "3d_fullres", "data_identifier": "nnUNetPlans_3d_lowres",
                          "next_stage": "3d_cascade_fullres"},
            "3d_cascade_fullres": {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"},
        },
    }


DATASET_JSON = {"channel_names": {"0": "MR"}, "labels": {"background": 0, "liver": 1, "spleen": 2, "kidneys": 3,
                                                         "stomach": 4}, "file_ending": ".nii.gz"}


@pytest.fixture
def results(tmp_path, monkeypatch):
    """nnU-Net's folders; the preprocessed ones hold one empty case file, from which nnU-Net's initialize()
    infers the dataset format (no data is read)."""
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(name, str(tmp_path / name))
    for identifier in ("nnUNetPlans_3d_fullres", "nnUNetPlans_3d_lowres"):
        folder = tmp_path / "nnUNet_preprocessed" / "Dataset992_DemoAbdomenMR3D" / identifier
        folder.mkdir(parents=True)
        (folder / "case.b2nd").touch()
    return tmp_path / "nnUNet_results"


def test_demo_plans_give_the_anisotropic_depth_strides_and_a_rounded_patch():
    plans = plans_3d()
    trained = plans_with_trainable_patch(plans, "3d_fullres", nnUNetTrainerSwinUMamba.network_class,
                                         nnUNetTrainerSwinUMamba.network_class_3d)
    configuration = trained["configurations"]["3d_fullres"]
    assert configuration[DEPTH_STRIDES_KEY] == [1, 2, 1, 1, 1]
    assert configuration["patch_size"] == [8, 96, 128]  # depth stride 2, in-plane 32
    assert plans["configurations"]["3d_fullres"]["patch_size"] == [8, 80, 112]  # the input is untouched
    assert DEPTH_STRIDES_KEY not in plans["configurations"]["3d_fullres"]

    choice = network_choice(plans, "3d_fullres", nnUNetTrainerSwinUMambaD.network_class,
                            nnUNetTrainerSwinUMambaD.network_class_3d)
    assert choice.network_class is SwinUMambaD3D and choice.depth_strides == (2, 1, 1, 1)
    assert choice.stride == (2, 32, 32)


def test_patch_depth_rounds_up_to_the_total_depth_stride():
    plans = plans_3d(patch=(20, 64, 64), pooling=[[1, 1, 1]] + [[2, 2, 2]] * 4)
    trained = plans_with_trainable_patch(plans, "3d_fullres")
    # depth 20 allows a total depth stride of 16: (2, 2, 2, 2, 1)
    assert trained["configurations"]["3d_fullres"][DEPTH_STRIDES_KEY] == [2, 2, 2, 2, 1]
    assert trained["configurations"]["3d_fullres"]["patch_size"] == [32, 64, 64]


def test_recorded_depth_strides_win_and_bad_ones_are_refused():
    plans = plans_3d()
    plans["configurations"]["3d_fullres"][DEPTH_STRIDES_KEY] = [1, 1, 1, 1, 2]
    assert network_choice(plans, "3d_fullres", nnUNetTrainerSwinUMamba.network_class,
                          SwinUMamba3D).depth_strides == (1, 1, 1, 1, 2)
    plans["configurations"]["3d_fullres"][DEPTH_STRIDES_KEY] = [4, 1, 1, 1, 1]
    with pytest.raises(ConfigurationError, match=f"{DEPTH_STRIDES_KEY}=\\[4, 1, 1, 1, 1\\].*SwinUMamba3D"):
        network_choice(plans, "3d_fullres", nnUNetTrainerSwinUMamba.network_class, SwinUMamba3D)


def test_plans_without_pooling_use_nnunets_topology_rule_on_the_spacing():
    configuration = plans_3d()["configurations"]["3d_fullres"]
    assert nnunet_pooling(configuration["spacing"], configuration["patch_size"]) == DEMO_POOLING
    without = copy.deepcopy(configuration)
    without["architecture"] = {"network_class_name": "swin_umamba.nets.SwinUMamba3D", "arch_kwargs": {}}
    assert depth_strides_for(without, SwinUMamba3D, "3d_fullres") == depth_strides_for(
        configuration, SwinUMamba3D, "3d_fullres") == (1, 2, 1, 1, 1)


@pytest.mark.parametrize("patch", [[128], [4, 8, 64, 64]])
def test_patches_neither_2d_nor_3d_are_refused(patch):
    plans = plans_3d()
    plans["configurations"]["3d_fullres"]["patch_size"] = patch
    with pytest.raises(ConfigurationError, match="3d_fullres.*patch size"):
        plans_with_trainable_patch(plans, "3d_fullres")


def test_the_scratch_trainers_build_the_same_3d_networks():
    assert nnUNetTrainerSwinUMambaScratch.network_class_3d is SwinUMamba3D
    assert nnUNetTrainerSwinUMambaDScratch.network_class_3d is SwinUMambaD3D


@pytest.mark.parametrize("trainer_class,network_3d", [(nnUNetTrainerSwinUMamba, SwinUMamba3D),
                                                      (nnUNetTrainerSwinUMambaD, SwinUMambaD3D)])
def test_both_trainers_builds_its_3d_network_with_deep_supervision_scales_per_axis(results, trainer_class,
                                                                                    network_3d):
    # a small patch keeps the forward pass cheap on the CPU; demo pooling, so the same depth strides
    trainer = trainer_class(plans_3d(patch=(6, 30, 40)), "3d_fullres", 0, DATASET_JSON, torch.device("cpu"))
    trainer.initialize()
    network = trainer.network
    assert type(network) is network_3d
    scales = trainer._get_deep_supervision_scales()
    patch = trainer.configuration_manager.patch_size
    with torch.no_grad():
        outputs = network(torch.zeros(1, 1, *patch))
    assert [list(o.shape[2:]) for o in outputs] == [[round(n * s) for n, s in zip(patch, scale)] for scale in scales]
    assert scales[1] == [1.0, 0.5, 0.5] if network_3d is SwinUMamba3D else scales[1] == [0.5, 0.25, 0.25]
    # prediction rebuilds the network from the model folder's plans, which record the depth strides
    saved = trainer.plans_manager.plans["configurations"]["3d_fullres"]
    assert saved[DEPTH_STRIDES_KEY] == list(network.depth_strides)
    log = trainer.log_file.read_text() if hasattr(trainer.log_file, "read_text") else open(trainer.log_file).read()
    assert f"depth strides {list(network.depth_strides)}" in log and "rounded up to [6, 32, 64]" in log


def test_the_cascade_adds_the_low_resolution_segmentation_as_input_channels(results):
    trainer = nnUNetTrainerSwinUMambaScratch(plans_3d(patch=(4, 32, 32)), "3d_cascade_fullres", 0, DATASET_JSON,
                                             torch.device("cpu"))
    trainer.initialize()
    # one image channel plus one channel per foreground label of the 3d_lowres prediction
    assert trainer.num_input_channels == 1 + 4
    assert trainer.network.in_channels == 5
    with torch.no_grad():
        assert trainer.network(torch.zeros(1, 5, 4, 32, 32))[0].shape == (1, 5, 4, 32, 32)


def test_memory_verdict_names_the_estimate_and_the_plan_command():
    plans = plans_3d(patch=(128, 256, 256), pooling=[[1, 1, 1]] + [[2, 2, 2]] * 5)
    plans["configurations"]["3d_fullres"]["batch_size"] = 8
    choice = network_choice(plans, "3d_fullres", nnUNetTrainerSwinUMamba.network_class, SwinUMamba3D)
    verdict = memory_verdict(plans, "3d_fullres", choice, 8, 5)
    assert verdict is not None
    assert "GiB" in verdict and "8 GiB" in verdict
    assert "swin-umamba plan -d Dataset992_DemoAbdomenMR3D --network swinumamba" in verdict
    small = network_choice(plans_3d(), "3d_fullres", nnUNetTrainerSwinUMamba.network_class, SwinUMamba3D)
    assert memory_verdict(plans_3d(), "3d_fullres", small, 2, 5) is None


def test_pretrained_weights_of_a_2d_checkpoint_are_inflated_into_the_3d_training(results, tmp_path):
    """nnUNetv2_train -pretrained_weights routes to the trainer's loader: a 2D SwinUMambaD checkpoint with
    other labels starts the 3D network, inflated, with fresh heads, and the log lists what was done."""
    from swin_umamba import SwinUMambaD

    source = SwinUMambaD(1, 3)
    path = tmp_path / "checkpoint_2d.pth"
    torch.save({"network_weights": source.state_dict(), "trainer_name": "nnUNetTrainerSwinUMambaD"}, path)
    trainer = nnUNetTrainerSwinUMambaD(plans_3d(patch=(4, 32, 32)), "3d_fullres", 0, DATASET_JSON,
                                       torch.device("cpu"))
    trainer.initialize()
    report = trainer.load_pretrained_weights(path)
    network = trainer.network
    assert report.inflation_rules and report.loaded
    # an inflated patch embedding: its 2D kernel spread over the depth stride (2) of SwinUMambaD3D's first stage
    embed_2d = source.state_dict()["vssm_encoder.patch_embed.proj.weight"]
    embed_3d = network.state_dict()["vssm_encoder.patch_embed.proj.weight"]
    assert embed_3d.shape[2] == 2
    torch.testing.assert_close(embed_3d.sum(2), embed_2d)
    log = open(trainer.log_file).read()
    assert "inflated from 2D" in log and trainer._weights_restored
