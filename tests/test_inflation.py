"""inflate_weights and the 2D -> 3D checkpoint transfer (docs/weights.md, "Inflation to 3D"): the sources
(ImageNet file, 2D state_dict, 2D nnU-Net checkpoint), the report's counts, the refusals. The inflation
identity itself is in tests/test_networks3d.py."""
from __future__ import annotations

import pytest
import torch

from swin_umamba import SwinUMamba3D, SwinUMambaD, SwinUMambaD3D, inflate_weights, load_vmamba_weights
from swin_umamba.checkpoint_transfer import CheckpointTransferError, transfer_weights
from swin_umamba.nets.inflation import CENTRE, DEPTH_ONE, I3D, MERGE_2X2X2, UNCHANGED, UPSAMPLE, source_key
from tests.synthetic_weights import write_model_only_checkpoint


@pytest.fixture(scope="module")
def imagenet_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("imagenet") / "vmamba_tiny_e292.pth"
    write_model_only_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def dagger_2d():
    """A 2D SwinUMambaD (1 channel, 3 classes) off its initialisation, and its nnU-Net checkpoint file."""
    torch.manual_seed(0)
    net = SwinUMambaD(1, 3)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net.state_dict()


def write_checkpoint(path, state, trainer="nnUNetTrainerSwinUMambaD"):
    torch.save({"network_weights": {f"_orig_mod.{k}": v for k, v in state.items()}, "trainer_name": trainer,
                "current_epoch": 3}, path)
    return path


def test_imagenet_file_inflates_the_keys_the_2d_loader_loads(imagenet_file):
    """SwinUMambaD3D with RGB input takes exactly the tensors load_vmamba_weights gives SwinUMambaD."""
    report_2d = load_vmamba_weights(SwinUMambaD(3, 2), imagenet_file)
    net = SwinUMambaD3D(3, 2, (2, 2, 1, 1))
    report = inflate_weights(net, imagenet_file)
    assert sorted(source_key(k) for k in report.inflated) == sorted(f"vssm_encoder.{k}" for k in report_2d.loaded)
    assert len(report.inflated) == 208
    assert report.count(I3D) == 1  # the RGB patch embedding with depth patch 2
    assert report.count(MERGE_2X2X2) == 3  # merging 1 (depth stride 2): norm weight, norm bias, reduction
    assert report.count(CENTRE) == 15  # the depthwise convolution of each of the 15 VSS blocks
    assert report.count(UNCHANGED) == 208 - 1 - 3 - 15
    state = net.state_dict()
    file = torch.load(imagenet_file)["model"]
    conv = state["vssm_encoder.layers.2.blocks.4.self_attention.conv3d.weight"]
    assert torch.equal(conv[:, :, 1], file["layers.2.blocks.4.self_attention.conv2d.weight"])
    assert not conv[:, :, 0].any() and not conv[:, :, 2].any()
    reduction = file["layers.0.downsample.reduction.weight"]
    assert torch.equal(state["vssm_encoder.downsamples.0.reduction.weight"], torch.cat([reduction, reduction], 1) / 2)
    assert torch.equal(state["vssm_encoder.layers.3.blocks.1.self_attention.A_logs"],
                       file["layers.3.blocks.1.self_attention.A_logs"])
    assert len(report.fresh["not in the ImageNet file (it holds the encoder only)"]) == 104
    text = report.summary()
    assert "208 of 312 tensors" in text and "decoder.*" in text and "head.*" in text


def test_imagenet_file_leaves_swinumamba3d_patch_embedding_fresh(imagenet_file):
    net = SwinUMamba3D(1, 2, (1, 1, 2, 1, 1))
    before = net.state_dict()["vssm_encoder.patch_embed.proj.weight"].clone()
    report = inflate_weights(net, imagenet_file)
    assert len(report.inflated) == 204
    assert torch.equal(net.state_dict()["vssm_encoder.patch_embed.proj.weight"], before)
    (reason,) = [r for r in report.fresh if r.startswith("left out by the ImageNet mapping")]
    assert "48 channels" in reason and len(report.fresh[reason]) == 4
    assert "vssm_encoder.patch_embed.*" in report.summary()


def test_2d_checkpoint_file_inflates_the_whole_network(tmp_path, dagger_2d):
    path = write_checkpoint(tmp_path / "checkpoint_final.pth", dagger_2d)
    net = SwinUMambaD3D(1, 3, (4, 2, 1, 1))
    report = inflate_weights(net, path)
    state = net.state_dict()
    assert len(report.inflated) == len(state) and not any(report.fresh.values())
    # patch embedding (depth patch 4), expand_layers.3 and .2 (depth 4 and 2), merging 1 (depth stride 2)
    assert report.count(I3D) == 1 and report.count(UPSAMPLE) == 2 and report.count(MERGE_2X2X2) == 3
    assert report.count(DEPTH_ONE) == 4  # the four heads' 1x1x1 convolutions
    embed = dagger_2d["vssm_encoder.patch_embed.proj.weight"]
    torch.testing.assert_close(state["vssm_encoder.patch_embed.proj.weight"], embed[:, :, None].repeat(1, 1, 4, 1, 1) / 4)
    expand = dagger_2d["decoder.expand_layers.0.expand.weight"]  # undoes merging 3: depth stride 1
    assert torch.equal(state["decoder.expand_layers.0.expand.weight"], expand)
    expand = dagger_2d["decoder.expand_layers.2.expand.weight"]  # undoes merging 1: depth stride 2
    assert torch.equal(state["decoder.expand_layers.2.expand.weight"], torch.cat([expand, expand]))
    assert "nnUNetTrainerSwinUMambaD" in report.summary()


def test_2d_state_dict_source_matches_the_file_source(tmp_path, dagger_2d):
    a, b = SwinUMambaD3D(1, 3, (1, 1, 1, 1)), SwinUMambaD3D(1, 3, (1, 1, 1, 1))
    inflate_weights(a, dagger_2d)
    inflate_weights(b, write_checkpoint(tmp_path / "c.pth", dagger_2d))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_the_other_networks_weights_are_refused(tmp_path, dagger_2d):
    net = SwinUMamba3D(1, 3, (1, 1, 1, 1, 1))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(CheckpointTransferError, match="inflates from 2D SwinUMamba weights only"):
        inflate_weights(net, write_checkpoint(tmp_path / "d.pth", dagger_2d))
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_other_labels_are_refused_with_the_way_to_fine_tune(dagger_2d):
    with pytest.raises(CheckpointTransferError, match="transfer_weights") as info:
        inflate_weights(SwinUMambaD3D(1, 4, (1, 1, 1, 1)), dagger_2d)
    assert "decoder.seg_layers" in str(info.value)


def test_a_3d_state_dict_is_not_inflated_again():
    source = SwinUMambaD3D(1, 3, (1, 1, 1, 1)).state_dict()
    with pytest.raises(CheckpointTransferError, match="SwinUMambaD3D with 3 classes"):
        inflate_weights(SwinUMambaD3D(1, 3, (1, 1, 1, 1)), source)


# ------------------------------------------------------------------- -pretrained_weights: 2D into 3D
def test_transfer_inflates_a_2d_checkpoint_with_fresh_heads_and_input_layers(tmp_path, dagger_2d):
    path = write_checkpoint(tmp_path / "checkpoint_final.pth", dagger_2d)
    target = SwinUMambaD3D(2, 5, (2, 1, 1, 2))
    before = {k: v.clone() for k, v in target.state_dict().items()}
    report = transfer_weights(target, path)
    after = target.state_dict()
    assert report.fresh_heads == [k for k in after if k.startswith("decoder.seg_layers.")] != []
    assert report.fresh_inputs == ["vssm_encoder.patch_embed.proj.weight", "vssm_encoder.patch_embed.proj.bias"]
    for key in report.fresh_heads + report.fresh_inputs:
        assert torch.equal(after[key], before[key])
    assert sorted(report.loaded + report.fresh_heads + report.fresh_inputs) == sorted(after)
    merge = dagger_2d["vssm_encoder.downsamples.2.norm.weight"]  # merging 3, depth stride 2
    assert torch.equal(after["vssm_encoder.downsamples.2.norm.weight"], torch.cat([merge, merge]))
    assert report.inflation_rules["vssm_encoder.downsamples.2.norm.weight"] == MERGE_2X2X2
    text = "\n".join(report.summary_lines())
    assert "inflated from 2D" in text and "input channels differ (source 1, target 2)" in text


def test_transfer_refuses_the_other_network_and_3d_into_2d(tmp_path, dagger_2d):
    path = write_checkpoint(tmp_path / "checkpoint_final.pth", dagger_2d)
    with pytest.raises(CheckpointTransferError, match="starts from SwinUMamba checkpoints"):
        transfer_weights(SwinUMamba3D(1, 3, (1, 1, 1, 1, 1)), path)
    path_3d = tmp_path / "three.pth"
    torch.save({"network_weights": SwinUMambaD3D(1, 3, (1, 1, 1, 1)).state_dict()}, path_3d)
    with pytest.raises(CheckpointTransferError, match="3D checkpoint starts 3D trainings only"):
        transfer_weights(SwinUMambaD(1, 3), path_3d)


def test_transfer_loads_a_3d_checkpoint_of_the_same_network_unchanged(tmp_path):
    torch.manual_seed(0)
    source = SwinUMambaD3D(1, 3, (2, 1, 1, 1)).state_dict()
    path = tmp_path / "three.pth"
    torch.save({"network_weights": source}, path)
    target = SwinUMambaD3D(2, 4, (2, 1, 1, 1))
    report = transfer_weights(target, path)
    assert not report.inflation_rules and report.fresh_inputs and report.fresh_heads
    after = target.state_dict()
    assert all(torch.equal(after[k], source[k]) for k in report.loaded)
    assert sorted(report.loaded + report.fresh_heads + report.fresh_inputs) == sorted(after)
