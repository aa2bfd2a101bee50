"""Starting SwinUMamba / SwinUMambaD from a checkpoint with other labels or channels, in-process."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from nnunetv2.run.load_pretrained_weights import load_pretrained_weights
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch import nn

from swin_umamba import SwinUMamba, SwinUMambaD
from swin_umamba.checkpoint_transfer import (
    CheckpointTransferError,
    SourceCheckpoint,
    compact_prefixes,
    identify_network,
    plan_transfer,
    read_source_checkpoint,
    transfer_weights,
)
from swin_umamba.trainers.finetune import PretrainedWeightsMixin, route_pretrained_weights
from tests.test_published_checkpoint import authors_checkpoint, old_format_plans

NETWORKS = [SwinUMamba, SwinUMambaD]


@pytest.fixture(scope="module", params=NETWORKS, ids=lambda n: n.__name__)
def pair(request, tmp_path_factory):
    """(network class, source state_dict 1 channel / 5 classes, its nnU-Net checkpoint file, target 2 ch / 3 classes)."""
    network = request.param
    torch.manual_seed(0)
    source = network(1, 5).state_dict()
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint_final.pth"
    logging = {"mean_fg_dice": [np.float64(0.5)], "dice_per_class_or_region": [np.array([0.1, 0.2])]}
    torch.save({"network_weights": source, "trainer_name": f"nnUNetTrainer{network.__name__}", "logging": logging,
                "_best_ema": np.float64(0.5), "current_epoch": 1, "init_args": {"device": torch.device("cpu")},
                "inference_allowed_mirroring_axes": (0, 1)}, path)
    return network, source, path, network(2, 3)


def _fresh(network, key: str, fresh_inputs: bool) -> bool:
    return key.startswith(network.HEAD_PREFIXES) or (fresh_inputs and key.startswith(network.INPUT_LAYER_PREFIXES))


def test_other_labels_and_channels_load_everything_else_unchanged(pair):
    network, source, path, target = pair
    before = {k: v.clone() for k, v in target.state_dict().items()}
    report = transfer_weights(target, path)
    after = target.state_dict()
    for key, value in after.items():
        if _fresh(network, key, fresh_inputs=True):
            assert torch.equal(value, before[key]), f"{key} must keep its initialisation"
        else:
            assert torch.equal(value, source[key]), f"{key} must come from the file"
    assert sorted(report.loaded + report.fresh_heads + report.fresh_inputs) == sorted(after)
    assert report.fresh_heads == [k for k in after if k.startswith(network.HEAD_PREFIXES)] != []
    assert report.fresh_inputs == [k for k in after if k.startswith(network.INPUT_LAYER_PREFIXES)] != []
    assert (report.source_shape.num_classes, report.source_shape.in_channels) == (5, 1)
    assert (report.target_shape.num_classes, report.target_shape.in_channels) == (3, 2)
    text = "\n".join(report.summary_lines())
    assert str(path) in text and f"trainer nnUNetTrainer{network.__name__}" in text
    assert f"loaded unchanged: {len(report.loaded)} of {len(after)} tensors" in text
    assert "source 5 classes, target 3" in text and "input channels differ (source 1, target 2)" in text
    assert f"{network.HEAD_PREFIXES[0]}*" in text and f"{network.INPUT_LAYER_PREFIXES[0]}*" in text


def test_same_labels_and_channels_load_all_but_the_heads(pair):
    network, _, _, target = pair
    own = SourceCheckpoint(path="own.pth", weights={k: v.clone() for k, v in target.state_dict().items()})
    report = plan_transfer(own, target)
    assert report.fresh_inputs == [] and report.unused == []
    assert report.loaded == [k for k in own.weights if not k.startswith(network.HEAD_PREFIXES)]
    assert "input-layer" not in "\n".join(report.summary_lines())


def test_other_channels_only_renews_just_the_input_layers(pair):
    network, _, _, target = pair
    weights = dict(target.state_dict())
    first = next(k for k in weights if k.startswith(network.INPUT_LAYER_PREFIXES[0]) and k.endswith("weight"))
    weights[first] = torch.zeros(weights[first].shape[0], 3, *weights[first].shape[2:])
    report = plan_transfer(SourceCheckpoint(path="x.pth", weights=weights), target)
    # a whole layer starts fresh (its bias too), the other input layers still load
    assert report.fresh_inputs == [k for k in weights if k.startswith(network.INPUT_LAYER_PREFIXES[0])]
    assert all(not k.startswith(network.INPUT_LAYER_PREFIXES[0]) for k in report.loaded)


def test_wrapper_prefixes_are_removed_and_extra_keys_reported(pair, tmp_path):
    network, source, _, target = pair
    wrapped = {"_orig_mod." + k: v for k, v in source.items()}
    wrapped["_orig_mod.auxiliary.weight"] = torch.ones(1)
    path = tmp_path / "compiled.pth"
    torch.save(wrapped, path)  # a bare state_dict, as torch.compile's module would save it
    report = transfer_weights(target, path)
    assert report.unused == ["auxiliary.weight"] and report.source.trainer_name is None
    assert "not used: 1 source tensors (auxiliary.weight)" in report.summary_lines()[-1]


def test_architecture_mismatch_loads_nothing(pair, tmp_path):
    network, source, _, target = pair
    broken = dict(source)
    key = next(k for k in broken if "layers.1.blocks.0" in k and k.endswith("in_proj.weight"))
    broken[key] = torch.zeros(3, 3)
    del broken[next(k for k in broken if k.endswith("downsamples.0.reduction.weight"))]
    path = tmp_path / "other_arch.pth"
    torch.save({"network_weights": broken}, path)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointTransferError) as err:
        transfer_weights(target, path)
    assert str(path) in str(err.value) and "2 tensors outside the heads and input layers" in str(err.value)
    assert key in str(err.value) and "Nothing was loaded" in str(err.value)
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())


def test_checkpoint_of_the_other_network_is_refused(pair, tmp_path):
    network, source, path, _ = pair
    other = SwinUMambaD if network is SwinUMamba else SwinUMamba
    with pytest.raises(CheckpointTransferError) as err:
        plan_transfer(read_source_checkpoint(path), other.__new__(other))  # unbuilt: refused before it is used
    message = str(err.value)
    assert str(path) in message and f"{network.__name__} with 5 classes and 1 input channel" in message
    assert f"builds {other.__name__}" in message and f"nnUNetTrainer{network.__name__}" in message


def test_authors_release_checkpoint_is_read(tmp_path):
    weights = {"decoder.seg_layers.0.weight": torch.zeros(8, 384, 1, 1),
               "vssm_encoder.patch_embed.proj.weight": torch.zeros(96, 3, 4, 4)}
    labels = {str(i): i for i in range(8)}
    path = tmp_path / "checkpoint_99.pth"
    torch.save(authors_checkpoint(weights, old_format_plans(), {"labels": labels}, 99), path)
    source = read_source_checkpoint(path)
    assert source.trainer_name == "nnUNetTrainerSwinUMambaD"
    shape = identify_network(source.weights)
    assert (shape.network, shape.num_classes, shape.in_channels) == (SwinUMambaD, 8, 3)


def _missing(d):
    return d / "missing.pth"


def _folder(d):
    return d


def _empty(d):
    (d / "empty.pth").write_bytes(b"")
    return d / "empty.pth"


def _random_bytes(d):
    (d / "random.pth").write_bytes(b"\x00junk" * 50)
    return d / "random.pth"


def _saved(name, obj):
    def make(d):
        torch.save(obj, d / name)
        return d / name
    return make


NOT_CHECKPOINTS = {
    "missing": (_missing, "Pretrained weights file not found"),
    "folder": (_folder, "is a folder; give the checkpoint file inside it"),
    "empty": (_empty, "is not a readable PyTorch checkpoint (the file is empty)"),
    "random-bytes": (_random_bytes, "is not a readable PyTorch checkpoint"),
    "imagenet": (_saved("imagenet.pth", {"model": {"layers.0.blocks.0.ln_1.weight": torch.ones(96)}}),
                 "classification checkpoint such as the ImageNet VMamba file"),
    "no-tensors": (_saved("meta.pth", {"epoch": 3, "note": "x"}), "not network weights"),
    "plain-unet": (_saved("unet.pth", {"network_weights": {"encoder.stages.0.0.convs.0.conv.weight": torch.ones(1)},
                                       "trainer_name": "nnUNetTrainer"}),
                   "holds the weights of another network (trainer nnUNetTrainer)"),
    "pickled-code": (_saved("code.pth", {"network_weights": {"a": torch.ones(1)}, "x": io.StringIO}),
                     "was not read (loading it would run its pickled code)"),
}


@pytest.mark.parametrize("case", list(NOT_CHECKPOINTS))
def test_files_that_are_not_swin_umamba_checkpoints_are_named(case, tmp_path):
    make, expected = NOT_CHECKPOINTS[case]
    path = make(tmp_path)
    with pytest.raises(CheckpointTransferError) as err:
        # an unbuilt network: the file is refused before the target's tensors are looked at
        plan_transfer(read_source_checkpoint(path), SwinUMambaD.__new__(SwinUMambaD))
    assert expected in str(err.value) and path.name in str(err.value)


def test_compact_prefixes_cover_exactly_the_chosen_keys():
    universe = ["a.x.w", "a.x.b", "a.y.w", "b.w", "c.0.w", "c.1.w"]
    assert compact_prefixes(["a.x.w", "a.x.b", "b.w"], universe) == "a.x.*, b.w"
    assert compact_prefixes(["a.x.w", "a.x.b", "a.y.w", "c.0.w", "c.1.w"], universe) == "a.*, c.*"
    assert compact_prefixes([], universe) == "none"


def test_non_swin_umamba_target_is_a_type_error():
    with pytest.raises(TypeError, match="Linear is not one of"):
        plan_transfer(SourceCheckpoint(path="x", weights={"w": torch.ones(1)}), nn.Linear(1, 1))


class _FineTuningTrainer(PretrainedWeightsMixin, nnUNetTrainer):
    pass


def test_stock_pretrained_weights_call_reaches_the_trainer_and_logs(pair, tmp_path, monkeypatch):
    """nnUNetv2_train calls nnunetv2.run.run_training.load_pretrained_weights(trainer.network, FILE)."""
    import nnunetv2.run.run_training as run_training

    monkeypatch.setattr(run_training, "load_pretrained_weights", run_training.load_pretrained_weights)  # restored after
    network, source, path, target = pair
    trainer = _FineTuningTrainer.__new__(_FineTuningTrainer)
    trainer.network, trainer.was_initialized, trainer._weights_restored = target, True, False
    trainer.local_rank, trainer.log_file = 0, str(tmp_path / "training_log.txt")
    route_pretrained_weights(trainer)
    route_pretrained_weights(trainer)  # a second trainer start in one process keeps one router
    assert run_training.load_pretrained_weights.__wrapped__ is load_pretrained_weights

    run_training.load_pretrained_weights(trainer.network, str(path), verbose=True)
    assert trainer._weights_restored
    key = next(k for k in source if "layers.3.blocks.1" in k)
    assert torch.equal(target.state_dict()[key], source[key])
    log = (tmp_path / "training_log.txt").read_text()
    assert str(path) in log and f"{network.__name__} with 5 classes and 1 input channel" in log
    assert "loaded unchanged:" in log and "start fresh:" in log

    # any other network still goes to nnU-Net's own loader
    mine, theirs = nn.Linear(2, 2), nn.Linear(2, 2)
    torch.save({"network_weights": theirs.state_dict()}, tmp_path / "linear.pth")
    run_training.load_pretrained_weights(mine, str(tmp_path / "linear.pth"))
    assert torch.equal(mine.weight, theirs.weight)
