"""Loading the ImageNet VMamba-Tiny (v0) checkpoint into a Swin-UMamba encoder (docs/weights.md).

The checkpoint is read with `torch.load(weights_only=True)`: no pickled code
runs. The legacy full training file also holds a yacs `CfgNode` (and numpy
scalars); those globals are mapped onto plain data classes so that the file
still loads without trusting its pickle.
"""
from __future__ import annotations

import collections
import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from swin_umamba.environment import PRETRAINED_WEIGHTS_VAR as WEIGHTS_ENV_VAR
from swin_umamba.environment import cache_dir

RELEASE_FILE = "vssmtiny_dp01_ckpt_epoch_292.pth"
# a release asset of VMamba's repository, tag "#20240218" (the address Swin-UMamba's authors give)
RELEASE_URL = f"https://github.com/MzeroMiko/VMamba/releases/download/%2320240218/{RELEASE_FILE}"
# the SHA-256 one public project records for that file; the structural check, not this, decides
RECORDED_SHA256 = "dbc0cc4f5ec0e45db5fba7c939d2c7d9b617e891ac10766912a8d604c37c5e47"
DOWNLOAD_COMMAND = "swin-umamba weights download"


def cached_weights_path() -> Path:
    """Where `swin-umamba weights download` puts the file by default, and where the trainers look for it
    when $SWIN_UMAMBA_PRETRAINED is unset."""
    return cache_dir() / RELEASE_FILE


def how_to_get() -> str:
    """The advice every refusal ends with: the command that fetches the file, or where to get it by hand."""
    return (
        f"Run `{DOWNLOAD_COMMAND}` (it fetches {RELEASE_FILE}, VMamba-Tiny v0 of the VMamba release of "
        f"2024-02-18, into {cached_weights_path()}, where training finds it), or download {RELEASE_URL} "
        f"yourself and point {WEIGHTS_ENV_VAR} at it, e.g. export {WEIGHTS_ENV_VAR}=/data/weights/{RELEASE_FILE}"
    )


# a v0 file holds 212 keys; this many must land in the encoder
MIN_MATCHED_FRACTION = 0.95


class PretrainedWeightsError(RuntimeError):
    """The ImageNet checkpoint is missing, unreadable or not a VMamba-Tiny v0 file. `reason` says what is
    wrong; the message adds how to get the right file."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"{reason} {how_to_get()}")


def _metadata_globals() -> list:
    """Globals a training checkpoint's metadata needs, each mapped to a class that only holds data.

    yacs' CfgNode becomes an OrderedDict (its items survive, no yacs code runs); numpy scalars and
    dtypes are rebuilt by numpy's own data constructors (also under their numpy-1.x names).
    """
    import numpy as np

    scalar = np._core.multiarray.scalar
    dtype_classes = [getattr(np.dtypes, name) for name in np.dtypes.__all__]
    return [
        (collections.OrderedDict, "yacs.config.CfgNode"),
        scalar,
        (scalar, "numpy.core.multiarray.scalar"),
        np.dtype,
        *dtype_classes,
    ]


@dataclass
class LoadReport:
    """What happened to each key: the lists hold encoder-side key names (without `vssm_encoder.`)."""

    path: str
    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # in the file, left out on purpose (head, norm, ...)
    unexpected: list[str] = field(default_factory=list)  # in the file, no such encoder key
    mismatched: list[str] = field(default_factory=list)  # same name, other shape
    missing: list[str] = field(default_factory=list)  # encoder keys the file did not provide

    def summary(self) -> str:
        return (
            f"ImageNet weights from {self.path}: {len(self.loaded)} tensors loaded, {len(self.skipped)} skipped "
            f"on purpose, {len(self.unexpected)} unexpected, {len(self.mismatched)} shape mismatches, "
            f"{len(self.missing)} encoder tensors left at their initialisation"
        )


def resolve_weights_path(path: str | os.PathLike | None = None) -> Path:
    """The checkpoint path: the argument, else $SWIN_UMAMBA_PRETRAINED, else the downloaded file in the
    cache folder. Raises if it does not exist; never downloads."""
    if path is None:
        env = os.environ.get(WEIGHTS_ENV_VAR)
        if not env:
            cached = cached_weights_path()
            if cached.is_file():
                return cached
            raise PretrainedWeightsError(
                f"No ImageNet checkpoint: {WEIGHTS_ENV_VAR} is not set and {cached} does not exist."
            )
        path = env
    p = Path(path).expanduser()
    if p.is_dir():
        raise PretrainedWeightsError(
            f"{p.resolve()} is a folder; the ImageNet checkpoint is a single file. Put {RELEASE_FILE} in it and "
            f"name the file itself, e.g. {p.resolve() / RELEASE_FILE}."
        )
    if not p.is_file():
        raise PretrainedWeightsError(f"ImageNet checkpoint not found: looked for {p.resolve()}.")
    return p


# first bytes of the two formats torch.save writes: a zip archive, or (before torch 1.6) a pickle
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL_OPCODE = 0x80


def _first_sentence(message: str) -> str:
    """The first sentence of an exception's text (torch's run over several lines), or a placeholder."""
    text = " ".join(message.split())
    return text.split(". ")[0][:200] or "no details given"


def _unreadable(path: Path, exc: Exception) -> PretrainedWeightsError:
    """The reason a file torch.load refused, in terms of this file (never torch's weights_only advice,
    which would mean running the file's pickled code)."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not head.startswith(_ZIP_MAGIC) and (not head or head[0] != _PICKLE_PROTOCOL_OPCODE):
        return PretrainedWeightsError(
            f"{path} is not a PyTorch checkpoint (its first bytes {head!r} are neither a zip archive nor a "
            f"pickle)."
        )
    message = str(exc)
    unsupported = re.search(r"Unsupported global: GLOBAL (\S+)", message)
    if unsupported:
        return PretrainedWeightsError(
            f"{path} is a PyTorch file that holds Python objects ({unsupported.group(1)}) besides tensors and "
            f"plain data; it is not loaded, because loading it would run code stored in the file. The VMamba "
            f"file holds no such objects."
        )
    return PretrainedWeightsError(
        f"{path} is a damaged or incomplete PyTorch checkpoint ({type(exc).__name__}: {_first_sentence(message)}); "
        f"download it again."
    )


def read_checkpoint(path: Path) -> object:
    if path.stat().st_size == 0:
        raise PretrainedWeightsError(
            f"{path} is empty (0 bytes): the download or copy did not complete."
        )
    try:
        with torch.serialization.safe_globals(_metadata_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for non-checkpoints
        raise _unreadable(path, exc) from exc


def _describe(obj: object) -> str:
    if isinstance(obj, dict):
        keys = sorted(map(str, obj))[:6]
        return f"a dict with keys {keys}{' ...' if len(obj) > 6 else ''}"
    return f"a {type(obj).__name__}"


def extract_v0_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """The `model` state_dict of a VMamba v0 file, or a clear error saying what the file is instead."""
    if isinstance(obj, dict) and "network_weights" in obj:
        raise PretrainedWeightsError(
            f"{path} is an nnU-Net training checkpoint (trainer {obj.get('trainer_name', '?')}), not the ImageNet "
            "VMamba file. To start from it use nnUNetv2_train ... -pretrained_weights."
        )
    state = obj.get("model", obj) if isinstance(obj, dict) else obj
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise PretrainedWeightsError(f"{path} holds {_describe(obj)}, not a VMamba state_dict.")
    keys = list(state)
    if any(".op." in k or k.startswith("classifier.") for k in keys):
        raise PretrainedWeightsError(
            f"{path} looks like a VMamba v2 checkpoint (keys such as 'layers.0.blocks.0.op.*', 'classifier.*'): its "
            f"blocks have another layout and cannot be mapped onto Swin-UMamba."
        )
    if not any(re.match(r"layers\.\d+\.blocks\.\d+\.self_attention\.A_logs$", k) for k in keys):
        raise PretrainedWeightsError(
            f"{path} holds {len(keys)} tensors (e.g. {keys[:3]}) but none of a VMamba v0 encoder "
            f"('layers.N.blocks.M.self_attention.*')."
        )
    return state


def map_v0_key(key: str, load_patch_embed: bool) -> str | None:
    """File key -> encoder key, or None for keys left out on purpose (docs/weights.md)."""
    if key.startswith(("head.", "norm.")):
        return None
    if key.startswith("patch_embed.") and not load_patch_embed:
        return None
    return re.sub(r"^layers\.(\d+)\.downsample\.", r"downsamples.\1.", key)


def _encoder_and_patch_rule(model: nn.Module) -> tuple[nn.Module, bool]:
    encoder = getattr(model, "vssm_encoder", None)
    if encoder is None:
        raise TypeError(f"{type(model).__name__} has no `vssm_encoder`; expected SwinUMamba or SwinUMambaD")
    # SwinUMamba's patch embedding sees 48 stem channels, SwinUMambaD's sees the image itself (in 3D, the
    # in-plane kernel decides; the file's 4x4 kernel is inflated along depth)
    proj = encoder.patch_embed.proj
    load_patch_embed = proj.in_channels == 3 and tuple(proj.kernel_size[-2:]) == (4, 4)
    return encoder, load_patch_embed


def _match_v0_state(state: dict[str, torch.Tensor], target_shapes: dict[str, tuple[int, ...]],
                    load_patch_embed: bool, path: Path) -> tuple[LoadReport, dict[str, torch.Tensor]]:
    """Which file tensors land on which encoder keys (by name and shape); raises when too few do."""
    report = LoadReport(path=str(path))
    to_load = {}
    for key, tensor in state.items():
        mapped = map_v0_key(key, load_patch_embed)
        if mapped is None:
            report.skipped.append(key)
        elif mapped not in target_shapes:
            report.unexpected.append(key)
        elif target_shapes[mapped] != tuple(tensor.shape):
            report.mismatched.append(f"{key}: file {tuple(tensor.shape)} vs encoder {target_shapes[mapped]}")
        else:
            to_load[mapped] = tensor
    report.loaded = sorted(to_load)
    report.missing = sorted(k for k in target_shapes
                            if k not in to_load and not (k.startswith("patch_embed.") and not load_patch_embed))
    if len(to_load) < MIN_MATCHED_FRACTION * (len(to_load) + len(report.missing)):
        details = (report.mismatched + report.missing)[:5]
        raise PretrainedWeightsError(
            f"Only {len(to_load)} of {len(to_load) + len(report.missing)} encoder tensors match {path}; first problems: "
            f"{details}. The file does not fit a VMamba-Tiny encoder."
        )
    return report, to_load


def load_vmamba_weights(model: nn.Module, path: str | os.PathLike | None = None) -> LoadReport:
    """Copy the ImageNet VMamba-Tiny v0 weights into `model.vssm_encoder`; returns what was loaded."""
    p = resolve_weights_path(path)
    state = extract_v0_state_dict(read_checkpoint(p), p)
    encoder, load_patch_embed = _encoder_and_patch_rule(model)
    shapes = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    report, to_load = _match_v0_state(state, shapes, load_patch_embed, p)
    encoder.load_state_dict(to_load, strict=False)
    return report


@functools.lru_cache(maxsize=1)
def _rgb_encoder_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of the VMamba-Tiny encoder for RGB input, the layout of the ImageNet file (built once:
    its initialisation takes seconds)."""
    from swin_umamba.nets.vmamba import VSSMEncoder

    return {k: tuple(v.shape) for k, v in VSSMEncoder(in_chans=3).state_dict().items()}


def verify_v0_file(path: str | os.PathLike) -> LoadReport:
    """The loader's checks without a network: the file reads safely, holds a VMamba v0 state_dict, and its
    tensors fit the RGB VMamba-Tiny encoder (patch embedding included) as they would in training.
    Returns what would load; raises PretrainedWeightsError otherwise."""
    p = resolve_weights_path(path)
    state = extract_v0_state_dict(read_checkpoint(p), p)
    report, _ = _match_v0_state(state, _rgb_encoder_shapes(), load_patch_embed=True, path=p)
    return report
