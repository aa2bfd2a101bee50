"""Starting a Swin-UMamba network from a trained checkpoint with other labels or input channels.

Tensors are matched by name and shape. A 3D network (SwinUMamba3D, SwinUMambaD3D) also starts from a
checkpoint of its 2D counterpart: each 2D tensor is first inflated to 3D (`swin_umamba/nets/inflation.py`,
docs/weights.md) and then matched the same way. The segmentation heads always start fresh (as nnU-Net does for
`-pretrained_weights`: the source's labels need not mean the target's). The layers that see the image
(`INPUT_LAYER_PREFIXES` of each network) start fresh when the channel count differs. Every other tensor
of the target must be in the file with the same shape; otherwise the file is of another architecture
and nothing is loaded.

Files are read with `torch.load(weights_only=True)`: nnU-Net checkpoints of the current release and of
the authors' (nnU-Net 2.1.1 era) release hold only tensors, plain data, numpy values and
`torch.device`, so no pickled code runs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from swin_umamba.environment import PRETRAINED_WEIGHTS_VAR
from swin_umamba.network_registry import NETWORKS as REGISTERED, network_of_class
from swin_umamba.nets import SwinUMamba3D, SwinUMambaD3D
from swin_umamba.nets.inflation import inflate_state_dict
from swin_umamba.nnunet_layout import CHECKPOINT_FINAL, fold_folder
from swin_umamba.pretrained import _metadata_globals

NETWORKS: tuple[type[nn.Module], ...] = tuple(n.network_class() for n in REGISTERED.values())
# each 3D network's state_dict has the prefixes of its 2D counterpart; the tensors' rank tells them apart
NETWORKS_3D: tuple[type[nn.Module], ...] = (SwinUMamba3D, SwinUMambaD3D)
# prefixes that nnU-Net's DDP and torch.compile wrappers put before every key
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


class CheckpointTransferError(ValueError):
    """The file cannot start the target network: not a checkpoint, or one of another network."""


@dataclass
class SourceCheckpoint:
    path: Path
    weights: dict[str, torch.Tensor]
    trainer_name: str | None = None


@dataclass(frozen=True)
class NetworkShape:
    """Which network a state_dict belongs to, with its class and input channel counts."""

    network: type[nn.Module]
    num_classes: int
    in_channels: int

    def describe(self) -> str:
        return (f"{self.network.__name__} with {self.num_classes} classes and {self.in_channels} input "
                f"channel{'s' if self.in_channels != 1 else ''}")


@dataclass
class TransferReport:
    """Target keys by what happened to them, and the source keys the target has no place for."""

    source: SourceCheckpoint
    source_shape: NetworkShape
    target_shape: NetworkShape
    loaded: list[str] = field(default_factory=list)
    fresh_heads: list[str] = field(default_factory=list)
    fresh_inputs: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    target_keys: list[str] = field(default_factory=list)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)  # what `loaded` receives
    inflation_rules: dict[str, str] = field(default_factory=dict)  # per loaded key, 2D source into 3D only

    def summary_lines(self) -> list[str]:
        src, tgt = self.source_shape, self.target_shape
        trainer = f", trainer {self.source.trainer_name}" if self.source.trainer_name else ""
        lines = [f"Pretrained weights from {self.source.path} ({src.describe()}{trainer}) into {tgt.describe()}:"]
        if self.inflation_rules:
            lines.append(f"  inflated from 2D: {len(self.loaded)} of {len(self.target_keys)} tensors "
                         f"({compact_prefixes(self.loaded, self.target_keys)}), by rule:")
            rules = list(self.inflation_rules.values())
            lines += [f"    {rules.count(rule)} {rule}" for rule in dict.fromkeys(rules)]
        else:
            lines.append(f"  loaded unchanged: {len(self.loaded)} of {len(self.target_keys)} tensors "
                         f"({compact_prefixes(self.loaded, self.target_keys)})")
        lines += [
            f"  start fresh: {len(self.fresh_heads)} head tensors ({compact_prefixes(self.fresh_heads, self.target_keys)}): "
            f"segmentation heads are never transferred (source {src.num_classes} classes, target {tgt.num_classes})",
        ]
        if self.fresh_inputs:
            lines.append(
                f"  start fresh: {len(self.fresh_inputs)} input-layer tensors "
                f"({compact_prefixes(self.fresh_inputs, self.target_keys)}): input channels differ "
                f"(source {src.in_channels}, target {tgt.in_channels})")
        if self.unused:
            lines.append(f"  not used: {len(self.unused)} source tensors ({compact_prefixes(self.unused, self.unused)})")
        return lines


def compact_prefixes(keys: list[str], universe: list[str]) -> str:
    """The fewest module prefixes ('a.b.*', or a whole key when alone) covering exactly `keys` among `universe`."""
    chosen = set(keys)
    out: list[str] = []

    def visit(prefix: tuple[str, ...], names: list[tuple[str, ...]]) -> None:
        inside = [n for n in names if n[: len(prefix)] == prefix]
        picked = [n for n in inside if ".".join(n) in chosen]
        if not picked:
            return
        if len(picked) == len(inside) and prefix:
            out.append(".".join(inside[0]) if len(inside) == 1 else ".".join(prefix) + ".*")
            return
        for child in dict.fromkeys(n[len(prefix)] for n in inside if len(n) > len(prefix)):
            visit(prefix + (child,), inside)

    visit((), [tuple(k.split(".")) for k in universe])
    return ", ".join(out) if out else "none"


# reading --------------------------------------------------------------------------------------------------

def _checkpoint_globals() -> list:
    """What an nnU-Net checkpoint's metadata needs beyond tensors: numpy values (the logged Dice curves)."""
    reconstruct = np._core.multiarray._reconstruct
    return _metadata_globals() + [np.ndarray, reconstruct, (reconstruct, "numpy.core.multiarray._reconstruct")]


def _load(path: Path) -> object:
    try:
        with torch.serialization.safe_globals(_checkpoint_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for files that are not checkpoints
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:
            unsafe = []
        if unsafe:
            raise CheckpointTransferError(
                f"{path} needs the Python objects {unsafe[:5]} to be loaded, which an nnU-Net checkpoint does not "
                f"hold; it was not read (loading it would run its pickled code). If you trust the file, save its "
                f"network state_dict alone and give that file instead.") from exc
        reason = "the file is empty" if path.stat().st_size == 0 else \
            f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
        raise CheckpointTransferError(
            f"{path} is not a readable PyTorch checkpoint ({reason}). Give an nnU-Net checkpoint such as "
            f"{fold_folder(Path(), 0) / CHECKPOINT_FINAL} of a Swin-UMamba training.") from exc


def _describe(obj: object) -> str:
    if isinstance(obj, dict):
        keys = sorted(map(str, obj))
        return f"a dict with keys {keys[:6]}{' ...' if len(keys) > 6 else ''}"
    return f"a {type(obj).__name__}"


def strip_wrappers(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def load_weights_file(path: str | os.PathLike) -> tuple[Path, object]:
    """The file's path and its contents, read without running pickled code; clear errors for what is not a file."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise CheckpointTransferError(f"{p} is a folder; give the checkpoint file inside it, e.g. "
                                      f"{fold_folder(p, 0) / CHECKPOINT_FINAL}")
    if not p.is_file():
        raise CheckpointTransferError(f"Pretrained weights file not found: {p.resolve()}")
    return p, _load(p)


def read_source_checkpoint(path: str | os.PathLike) -> SourceCheckpoint:
    """The network weights of an nnU-Net checkpoint (ours or the authors' release) or of a bare state_dict."""
    return source_checkpoint(*load_weights_file(path))


def source_checkpoint(p: Path, obj: object) -> SourceCheckpoint:
    """The network weights in `obj`, the contents of file `p` (see read_source_checkpoint)."""
    trainer = None
    if isinstance(obj, dict) and "network_weights" in obj:
        trainer = obj.get("trainer_name") if isinstance(obj.get("trainer_name"), str) else None
        obj = obj["network_weights"]
    elif isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        raise CheckpointTransferError(
            f"{p} holds {_describe(obj)}: a classification checkpoint such as the ImageNet VMamba file, not a "
            f"Swin-UMamba segmentation checkpoint. ImageNet weights are read from ${PRETRAINED_WEIGHTS_VAR} when "
            f"training starts without -pretrained_weights.")
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointTransferError(
            f"{p} holds {_describe(obj)}, not network weights: expected an nnU-Net checkpoint "
            f"(a dict with 'network_weights') or a state_dict of tensors.")
    return SourceCheckpoint(p, {strip_wrappers(k): v for k, v in obj.items()}, trainer)


# matching -------------------------------------------------------------------------------------------------

def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return key.startswith(prefixes)


def _first_weight(weights: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    return next(v for k, v in weights.items() if k.startswith(prefix) and k.endswith("weight"))


def identify_network(weights: dict[str, torch.Tensor]) -> NetworkShape | None:
    """The Swin-UMamba network (2D or 3D) whose heads and first input layer are in `weights`, or None."""
    for network in NETWORKS:
        markers = network.HEAD_PREFIXES + network.INPUT_LAYER_PREFIXES[:1]
        if all(any(k.startswith(m) and k.endswith("weight") for k in weights) for m in markers):
            input_weight = _first_weight(weights, network.INPUT_LAYER_PREFIXES[0])
            if input_weight.ndim == 5:  # Conv3d: the 3D network of the same layout
                network = next(n for n in NETWORKS_3D if n.INFLATED_FROM is network)
            return NetworkShape(network,
                                num_classes=int(_first_weight(weights, network.HEAD_PREFIXES[0]).shape[0]),
                                in_channels=int(input_weight.shape[1]))
    return None


def _target_network(model: nn.Module) -> type[nn.Module]:
    for network in NETWORKS + NETWORKS_3D:
        if isinstance(model, network):
            return network
    raise TypeError(f"{type(model).__name__} is not one of {[n.__name__ for n in NETWORKS + NETWORKS_3D]}")


def plan_transfer(source: SourceCheckpoint, model: nn.Module) -> TransferReport:
    """Decide for every tensor of `model` whether it is loaded from `source` or starts fresh."""
    network = _target_network(model)
    source_shape = identify_network(source.weights)
    if network in NETWORKS_3D and source_shape is not None and source_shape.network is network.INFLATED_FROM:
        return _plan_inflation(source, source_shape, model, network)
    if source_shape is None:
        example = list(source.weights)[:3]
        trainer = f" (trainer {source.trainer_name})" if source.trainer_name else ""
        raise CheckpointTransferError(
            f"{source.path} holds the weights of another network{trainer}: {len(source.weights)} tensors such as "
            f"{example}, not those of SwinUMamba or SwinUMambaD. It cannot start {network.__name__}.")
    if source_shape.network in NETWORKS_3D and network not in NETWORKS_3D:
        raise CheckpointTransferError(
            f"{source.path} holds a {source_shape.describe()}, a 3D network; this training builds the 2D "
            f"{network.__name__}. A 3D checkpoint starts 3D trainings only (a 2D one starts both).")
    if source_shape.network is not network and network in NETWORKS_3D:
        raise CheckpointTransferError(
            f"{source.path} holds a {source_shape.describe()}, but this training builds {network.__name__}, "
            f"which starts from {network.INFLATED_FROM.__name__} checkpoints (2D, inflated) or its own; the "
            f"networks have different decoders and stems.")
    if source_shape.network is not network:
        registered = network_of_class(source_shape.network.__name__)
        trainer = source.trainer_name or (registered.trainer if registered else f"a {source_shape.network.__name__} trainer")
        raise CheckpointTransferError(
            f"{source.path} holds a {source_shape.describe()} (trained with {trainer}), but this training builds "
            f"{network.__name__}; the two networks have different decoders and stems. Fine-tune from it with "
            f"{trainer} (or another trainer of {source_shape.network.__name__}).")

    target = model.state_dict()
    target_shape = identify_network(target)
    report = TransferReport(source, source_shape, target_shape, target_keys=list(target))
    problems = []
    # an input layer starts fresh as a whole (weight and bias) when any of its tensors does not fit
    fresh_input_layers = tuple(
        p for p in network.INPUT_LAYER_PREFIXES
        if any(k.startswith(p) and (k not in source.weights or source.weights[k].shape != v.shape)
               for k, v in target.items()))
    for key, tensor in target.items():
        if _under(key, network.HEAD_PREFIXES):
            report.fresh_heads.append(key)
        elif _under(key, fresh_input_layers):
            report.fresh_inputs.append(key)
        elif key not in source.weights:
            problems.append(f"{key} missing")
        elif source.weights[key].shape != tensor.shape:
            problems.append(f"{key}: file {tuple(source.weights[key].shape)} vs network {tuple(tensor.shape)}")
        else:
            report.loaded.append(key)
            report.tensors[key] = source.weights[key]
    if problems:
        raise CheckpointTransferError(
            f"{source.path} ({source_shape.describe()}) does not fit this {target_shape.describe()}: {len(problems)} "
            f"tensors outside the heads and input layers are missing or have other shapes, e.g. {problems[:3]}. "
            f"Nothing was loaded.")
    report.unused = [k for k in source.weights if k not in target]
    return report


def _plan_inflation(source: SourceCheckpoint, source_shape: NetworkShape, model: nn.Module,
                    network: type[nn.Module]) -> TransferReport:
    """plan_transfer for a 2D checkpoint into its 3D network: each tensor inflated, then matched by shape."""
    target = model.state_dict()
    report = TransferReport(source, source_shape, identify_network(target), target_keys=list(target))
    report.fresh_heads = [k for k in target if _under(k, network.HEAD_PREFIXES)]
    inflation = inflate_state_dict(model, source.weights, [k for k in target if k not in report.fresh_heads])
    # an input layer starts fresh as a whole when any of its tensors does not fit (other channel count)
    fresh_input_layers = tuple(p for p in network.INPUT_LAYER_PREFIXES
                               if any(k.startswith(p) for k in list(inflation.failed) + inflation.missing))
    report.fresh_inputs = [k for k in target if _under(k, fresh_input_layers)]
    problems = [f"{k} missing" for k in inflation.missing if not _under(k, fresh_input_layers)]
    problems += [f"{k}: {why}" for k, why in inflation.failed.items() if not _under(k, fresh_input_layers)]
    if problems:
        raise CheckpointTransferError(
            f"{source.path} ({source_shape.describe()}) does not inflate into this {report.target_shape.describe()}: "
            f"{len(problems)} tensors outside the heads and input layers are missing or do not fit, e.g. "
            f"{problems[:3]}. Nothing was loaded.")
    report.loaded = [k for k in target if k in inflation.tensors and k not in report.fresh_inputs]
    report.tensors = {k: inflation.tensors[k] for k in report.loaded}
    report.inflation_rules = {k: inflation.rules[k] for k in report.loaded}
    report.unused = inflation.unused
    return report


def transfer_weights(model: nn.Module, path: str | os.PathLike) -> TransferReport:
    """Load the matching tensors of checkpoint `path` into `model` (in place); returns what happened."""
    report = plan_transfer(read_source_checkpoint(path), model)
    state = model.state_dict()
    state.update(report.tensors)
    model.load_state_dict(state)
    return report
