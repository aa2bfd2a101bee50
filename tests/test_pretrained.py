"""The ImageNet VMamba-Tiny v0 loader on synthetic checkpoints built from the released key list (tests/fixtures/)."""
import collections
import functools
import pickle
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from swin_umamba import PretrainedWeightsError, SwinUMamba, SwinUMambaD, load_vmamba_weights
from swin_umamba.cli import main
from swin_umamba.environment import CACHE_DIR_VAR, cache_dir
from swin_umamba.pretrained import (
    DOWNLOAD_COMMAND,
    RELEASE_FILE,
    RELEASE_URL,
    WEIGHTS_ENV_VAR,
    resolve_weights_path,
)
from tests.published_layouts import load_layout
from tests.synthetic_weights import v0_state_dict, write_model_only_checkpoint


@functools.lru_cache(maxsize=None)
def shared_network(cls, in_channels: int):
    """One network per class and channel count for the tests that check what the loader says about a
    file, not what it loads (building a network takes seconds)."""
    return cls(in_channels, 2)


@pytest.fixture(scope="module")
def v0_state():
    return v0_state_dict()


def _yacs_config():
    yacs = pytest.importorskip("yacs.config")
    cfg = yacs.CfgNode()
    cfg.MODEL = yacs.CfgNode({"TYPE": "vssm", "NAME": "vssm_tiny", "DROP_PATH_RATE": 0.1})
    cfg.TRAIN = yacs.CfgNode({"EPOCHS": 300, "BASE_LR": 1e-3})
    return cfg


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, v0_state):
    d = tmp_path_factory.mktemp("ckpt")
    model_only = d / "vmamba_tiny_e292.pth"
    write_model_only_checkpoint(model_only)
    param = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.AdamW([param])
    param.grad = torch.ones(3)
    opt.step()
    legacy = d / "vssmtiny_dp01_ckpt_epoch_292.pth"
    torch.save(
        {
            "model": v0_state,
            "optimizer": opt.state_dict(),
            "lr_scheduler": {"last_epoch": 292},
            "max_accuracy": np.float64(82.2),
            "scaler": {"scale": 65536.0, "growth_tracker": 3},
            "epoch": 292,
            "config": _yacs_config(),
        },
        legacy,
    )
    return {"model_only": model_only, "legacy": legacy}


def _mapped(key):
    return re.sub(r"^layers\.(\d+)\.downsample\.", r"downsamples.\1.", key)


@pytest.mark.parametrize("form", ["model_only", "legacy"])
@pytest.mark.parametrize("net,cin,patch_loaded", [(SwinUMamba, 1, False), (SwinUMambaD, 3, True), (SwinUMambaD, 1, False)])
def test_every_mapped_tensor_arrives_unchanged(checkpoints, v0_state, form, net, cin, patch_loaded):
    model = net(cin, 4)
    before = {k: v.clone() for k, v in model.vssm_encoder.state_dict().items()}
    report = load_vmamba_weights(model, checkpoints[form])
    after = model.vssm_encoder.state_dict()
    for key, tensor in v0_state.items():
        if key.startswith(("head.", "norm.")) or (key.startswith("patch_embed.") and not patch_loaded):
            assert key in report.skipped
            continue
        assert torch.equal(after[_mapped(key)], tensor), key
    if not patch_loaded:  # the stem-facing patch embedding keeps its own initialisation
        assert torch.equal(after["patch_embed.proj.weight"], before["patch_embed.proj.weight"])
    assert report.unexpected == [] and report.mismatched == [] and report.missing == []
    assert len(report.loaded) == (208 if patch_loaded else 204)


def test_loading_leaves_the_decoder_alone(checkpoints):
    torch.manual_seed(0)
    model = SwinUMamba(1, 4)
    decoder_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("vssm_encoder.")}
    load_vmamba_weights(model, checkpoints["model_only"])
    for k, v in decoder_before.items():
        assert torch.equal(model.state_dict()[k], v), k


def test_legacy_file_needs_no_unsafe_unpickling(checkpoints, monkeypatch):
    """The loader must never fall back to weights_only=False."""
    real_load = torch.load

    def guarded(*args, **kwargs):
        assert kwargs.get("weights_only") is True
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", guarded)
    load_vmamba_weights(shared_network(SwinUMambaD, 3), checkpoints["legacy"])


def test_pickled_code_is_not_executed(tmp_path, v0_state):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pth"
    torch.save({"model": v0_state, "payload": Evil()}, path, pickle_module=pickle)
    with pytest.raises(PretrainedWeightsError, match="would run code stored in the file") as err:
        load_vmamba_weights(shared_network(SwinUMamba, 1), path)
    assert not marker.exists()
    assert "weights_only" not in str(err.value)


def test_missing_file_says_where_and_how(tmp_path):
    missing = tmp_path / "nowhere" / "vmamba_tiny_e292.pth"
    with pytest.raises(PretrainedWeightsError) as err:
        load_vmamba_weights(shared_network(SwinUMamba, 1), missing)
    msg = str(err.value)
    assert str(missing) in msg and "vssmtiny_dp01_ckpt_epoch_292.pth" in msg and WEIGHTS_ENV_VAR in msg


def test_path_comes_from_the_environment(monkeypatch, checkpoints, tmp_path):
    monkeypatch.setenv(CACHE_DIR_VAR, str(tmp_path / "empty-cache"))
    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(checkpoints["model_only"]))
    assert resolve_weights_path() == checkpoints["model_only"]
    monkeypatch.delenv(WEIGHTS_ENV_VAR)
    with pytest.raises(PretrainedWeightsError, match=f"{WEIGHTS_ENV_VAR} is not set"):
        resolve_weights_path()


def test_the_downloaded_file_is_found_when_the_variable_is_unset(monkeypatch, checkpoints, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    cached = cache / RELEASE_FILE
    cached.write_bytes(checkpoints["model_only"].read_bytes())
    monkeypatch.setenv(CACHE_DIR_VAR, str(cache))
    monkeypatch.delenv(WEIGHTS_ENV_VAR, raising=False)
    assert resolve_weights_path() == cached
    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(checkpoints["legacy"]))  # the variable wins over the cache
    assert resolve_weights_path() == checkpoints["legacy"]


def test_missing_file_names_the_download_command_and_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_DIR_VAR, str(tmp_path / "cache"))
    monkeypatch.delenv(WEIGHTS_ENV_VAR, raising=False)
    with pytest.raises(PretrainedWeightsError) as err:
        resolve_weights_path()
    msg = str(err.value)
    assert DOWNLOAD_COMMAND in msg and str(tmp_path / "cache" / RELEASE_FILE) in msg and RELEASE_URL in msg
    with pytest.raises(SystemExit) as stop:  # the command named is the real one
        main(DOWNLOAD_COMMAND.split()[1:] + ["--help"])
    assert stop.value.code == 0


@pytest.mark.parametrize("platform,env,expected", [
    ("linux", {}, "home/.cache/swin-umamba"),
    ("linux", {"XDG_CACHE_HOME": "/xdg"}, "/xdg/swin-umamba"),
    ("linux", {"XDG_CACHE_HOME": "relative"}, "home/.cache/swin-umamba"),  # relative: ignored, as XDG says
    ("darwin", {}, "home/Library/Caches/swin-umamba"),
    ("win32", {"LOCALAPPDATA": "/appdata"}, "/appdata/swin-umamba"),
    ("linux", {CACHE_DIR_VAR: "/mine", "XDG_CACHE_HOME": "/xdg"}, "/mine"),
])
def test_cache_folder_per_platform(monkeypatch, tmp_path, platform, env, expected):
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path / "home"))
    for var in (CACHE_DIR_VAR, "XDG_CACHE_HOME", "LOCALAPPDATA"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    want = tmp_path / expected if expected.startswith("home") else Path(expected)
    assert cache_dir() == want


def test_v2_checkpoint_is_recognised(tmp_path):
    state = {k: torch.zeros(shape) for k, shape in load_layout("vmamba_tiny_v2_keys.json")["state_dict"].items()}
    path = tmp_path / "vssm1_tiny_0230s_ckpt_epoch_264.pth"
    torch.save({"model": state}, path)
    with pytest.raises(PretrainedWeightsError, match="VMamba v2"):
        load_vmamba_weights(shared_network(SwinUMambaD, 3), path)


def test_nnunet_checkpoint_is_recognised(tmp_path):
    path = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": {"stem.0.weight": torch.zeros(1)}, "trainer_name": "nnUNetTrainerSwinUMamba",
                "init_args": {}}, path)
    with pytest.raises(PretrainedWeightsError, match="nnU-Net training checkpoint.*nnUNetTrainerSwinUMamba"):
        load_vmamba_weights(shared_network(SwinUMamba, 1), path)


@pytest.mark.parametrize("content", [b"this is not a checkpoint at all\n" * 10, bytes(range(256)) * 4])
def test_random_file_is_recognised(tmp_path, content):
    """Not torch's advice to set weights_only=False (that would run the file's code): what the file is
    and where the right one comes from."""
    path = tmp_path / "notes.pth"
    path.write_bytes(content)
    with pytest.raises(PretrainedWeightsError) as err:
        load_vmamba_weights(shared_network(SwinUMamba, 1), path)
    msg = str(err.value)
    assert str(path) in msg and "not a PyTorch checkpoint" in msg
    assert "weights_only" not in msg
    assert "vssmtiny_dp01_ckpt_epoch_292.pth" in msg and "swin-umamba weights download" in msg


def test_truncated_checkpoint_is_called_damaged(tmp_path):
    whole = tmp_path / "whole.pth"
    torch.save({"model": {"x": torch.zeros(4096)}}, whole)
    path = tmp_path / "vmamba_tiny_e292.pth"
    path.write_bytes(whole.read_bytes()[:1000])
    with pytest.raises(PretrainedWeightsError, match="damaged or incomplete PyTorch checkpoint.*download it again"):
        load_vmamba_weights(shared_network(SwinUMamba, 1), path)


def test_folder_is_called_a_folder(tmp_path):
    with pytest.raises(PretrainedWeightsError) as err:
        resolve_weights_path(tmp_path)
    msg = str(err.value)
    assert f"{tmp_path} is a folder" in msg and "not found" not in msg
    assert str(tmp_path / "vssmtiny_dp01_ckpt_epoch_292.pth") in msg


def test_unrelated_state_dict_is_recognised(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(collections.OrderedDict({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.bias": torch.zeros(10)}), path)
    with pytest.raises(PretrainedWeightsError, match="none of a VMamba v0 encoder"):
        load_vmamba_weights(shared_network(SwinUMamba, 1), path)


def test_too_few_matching_keys_fails(tmp_path, v0_state):
    partial = {k: v for i, (k, v) in enumerate(v0_state.items()) if not k.startswith("layers.2.") or i % 3}
    path = tmp_path / "partial.pth"
    torch.save({"model": partial}, path)
    with pytest.raises(PretrainedWeightsError, match=r"Only \d+ of 204 encoder tensors match"):
        load_vmamba_weights(shared_network(SwinUMamba, 1), path)


def test_wrong_shapes_are_reported(tmp_path, v0_state):
    wide = {k: (torch.zeros(v.shape[0] * 2, *v.shape[1:]) if "layers.2" in k else v) for k, v in v0_state.items()}
    path = tmp_path / "wide.pth"
    torch.save({"model": wide}, path)
    with pytest.raises(PretrainedWeightsError, match="file .* vs encoder"):
        load_vmamba_weights(shared_network(SwinUMamba, 1), path)


def test_empty_file_is_named_with_the_fix(tmp_path):
    path = tmp_path / "vmamba_tiny_e292.pth"
    path.write_bytes(b"")
    with pytest.raises(PretrainedWeightsError) as err:
        load_vmamba_weights(shared_network(SwinUMamba, 1), path)
    msg = str(err.value)
    assert str(path) in msg and "empty (0 bytes)" in msg and "vssmtiny_dp01_ckpt_epoch_292.pth" in msg
