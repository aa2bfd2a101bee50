"""Starting a 3D Swin-UMamba network from 2D weights: `inflate_weights` (docs/weights.md, "Inflation to 3D").

The source is the ImageNet VMamba-Tiny v0 file (the encoder only, the tensors `load_vmamba_weights`
loads in 2D, through the same key mapping), a 2D SwinUMamba / SwinUMambaD state_dict, or a 2D nnU-Net
checkpoint file (the whole network). Each 2D tensor becomes its 3D counterpart by the rule for its kind
(`swin_umamba/nets/inflation.py`); the report counts the tensors per rule and names what was left at
its initialisation, and why. For other labels or input channels, `checkpoint_transfer.transfer_weights`
inflates a 2D checkpoint with the heads and input layers left fresh.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from swin_umamba.checkpoint_transfer import (
    NETWORKS_3D,
    CheckpointTransferError,
    compact_prefixes,
    identify_network,
    load_weights_file,
    source_checkpoint,
    strip_wrappers,
)
from swin_umamba.nets import SwinUMamba3D
from swin_umamba.nets.inflation import inflate_state_dict
from swin_umamba.pretrained import (
    MIN_MATCHED_FRACTION,
    PretrainedWeightsError,
    _encoder_and_patch_rule,
    extract_v0_state_dict,
    map_v0_key,
)

ENCODER = "vssm_encoder."
IMAGENET = "ImageNet VMamba-Tiny v0 weights"


@dataclass
class InflationReport:
    """What `inflate_weights` did: per 3D key the rule it was inflated by; the keys left at their
    initialisation and the source keys not used, each grouped by reason."""

    source: str
    kind: str  # IMAGENET, or "2D <network> weights"
    target: str
    target_keys: list[str]
    rules: dict[str, str] = field(default_factory=dict)
    fresh: dict[str, list[str]] = field(default_factory=dict)
    unused: dict[str, list[str]] = field(default_factory=dict)

    @property
    def inflated(self) -> list[str]:
        return list(self.rules)

    def count(self, rule: str) -> int:
        return sum(r == rule for r in self.rules.values())

    def summary_lines(self) -> list[str]:
        lines = [f"Inflated {self.kind} from {self.source} into {self.target}: {len(self.rules)} of "
                 f"{len(self.target_keys)} tensors"]
        rules = list(self.rules.values())
        lines += [f"  {rules.count(rule):4d} by rule: {rule}" for rule in dict.fromkeys(rules)]
        for reason, keys in self.fresh.items():
            if keys:
                lines.append(f"  left fresh: {len(keys)} tensors ({compact_prefixes(keys, self.target_keys)}): {reason}")
        for reason, keys in self.unused.items():
            if keys:
                lines.append(f"  not used: {len(keys)} source tensors ({compact_prefixes(keys, keys)}): {reason}")
        return lines

    def summary(self) -> str:
        return "\n".join(self.summary_lines())


def _describe_target(network_3d: nn.Module) -> str:
    return f"{type(network_3d).__name__} (depth strides {network_3d.depth_strides})"


def _looks_like_imagenet(obj: object) -> bool:
    """A VMamba classification file (`model` entry, or its bare state_dict with `layers.*` keys); never one
    of our networks, whose keys start with their module names."""
    if not isinstance(obj, dict) or "network_weights" in obj:
        return False
    return isinstance(obj.get("model"), dict) or any(str(k).startswith("layers.") for k in obj)


def inflate_weights(network_3d: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor]) -> InflationReport:
    """Inflate 2D weights into `network_3d` (a SwinUMamba3D or SwinUMambaD3D, in place).

    `source`: the ImageNet VMamba-Tiny v0 file (encoder only), a 2D state_dict of the network this one
    inflates from, or a 2D nnU-Net checkpoint file of it (whole network). Refuses any other network's
    weights, and 2D weights with other labels or input channels, with nothing loaded."""
    if not isinstance(network_3d, NETWORKS_3D):
        raise TypeError(f"{type(network_3d).__name__} is not one of {[n.__name__ for n in NETWORKS_3D]}")
    if isinstance(source, Mapping):
        weights = {strip_wrappers(k): v for k, v in source.items()}
        return _from_2d_network(network_3d, weights, f"a state_dict of {len(weights)} tensors")
    path, obj = load_weights_file(source)
    if _looks_like_imagenet(obj):
        return _from_imagenet(network_3d, path, extract_v0_state_dict(obj, path))
    checkpoint = source_checkpoint(path, obj)
    trainer = f" (trainer {checkpoint.trainer_name})" if checkpoint.trainer_name else ""
    return _from_2d_network(network_3d, checkpoint.weights, f"{path}{trainer}")


def _from_2d_network(network_3d: nn.Module, weights: dict[str, torch.Tensor], origin: str) -> InflationReport:
    planar = type(network_3d).INFLATED_FROM
    name = type(network_3d).__name__
    shape = identify_network(weights)
    if shape is None:
        raise CheckpointTransferError(
            f"{origin} holds tensors such as {list(weights)[:3]}, not the weights of a 2D SwinUMamba or "
            f"SwinUMambaD; {name} inflates from {planar.__name__} weights or the ImageNet VMamba file.")
    if shape.network is not planar:
        raise CheckpointTransferError(
            f"{origin} holds a {shape.describe()}; {name} inflates from 2D {planar.__name__} weights only (the same "
            f"stem and decoder) or from the ImageNet VMamba file.")
    inflation = inflate_state_dict(network_3d, weights)
    problems = [f"{k} missing" for k in inflation.missing] + [f"{k}: {why}" for k, why in inflation.failed.items()]
    if problems:
        raise CheckpointTransferError(
            f"{origin} ({shape.describe()}) does not inflate into {_describe_target(network_3d)} with "
            f"{network_3d.num_classes} classes and {network_3d.in_channels} input channel(s): {len(problems)} tensors "
            f"missing or of other shapes, e.g. {problems[:3]}. Nothing was loaded. For other labels or input "
            f"channels use checkpoint_transfer.transfer_weights (nnUNetv2_train -pretrained_weights), which "
            f"inflates the rest and leaves the heads and input layers fresh.")
    network_3d.load_state_dict(inflation.tensors)
    target_keys = list(network_3d.state_dict())
    return InflationReport(source=origin, kind=f"2D {planar.__name__} weights", target=_describe_target(network_3d),
                           target_keys=target_keys, rules=inflation.rules,
                           unused={"no place in the 3D network": inflation.unused})


def _from_imagenet(network_3d: nn.Module, path: Path, state: dict[str, torch.Tensor]) -> InflationReport:
    _, load_patch_embed = _encoder_and_patch_rule(network_3d)
    source, skipped = {}, []
    for key, tensor in state.items():
        mapped = map_v0_key(key, load_patch_embed)
        if mapped is None:
            skipped.append(key)
        else:
            source[ENCODER + mapped] = tensor
    target_keys = list(network_3d.state_dict())
    encoder_keys = [k for k in target_keys if k.startswith(ENCODER)]
    inflation = inflate_state_dict(network_3d, source, encoder_keys)
    left_out = [k for k in encoder_keys if k.startswith(ENCODER + "patch_embed.") and not load_patch_embed]
    missing = [k for k in inflation.missing if k not in left_out]
    failed = [f"{k}: {why}" for k, why in inflation.failed.items()]
    expected = len(inflation.tensors) + len(missing) + len(failed)
    if len(inflation.tensors) < MIN_MATCHED_FRACTION * expected:
        raise PretrainedWeightsError(
            f"Only {len(inflation.tensors)} of {expected} encoder tensors of {type(network_3d).__name__} inflate from "
            f"{path}; first problems: {(failed + missing)[:5]}. The file does not fit a VMamba-Tiny encoder.")
    network_3d.load_state_dict(inflation.tensors, strict=False)
    patch_reason = ("the patch embedding sees the stem's 48 channels, not RGB" if isinstance(network_3d, SwinUMamba3D)
                    else "the image does not have 3 channels")
    return InflationReport(
        source=str(path), kind=IMAGENET, target=_describe_target(network_3d), target_keys=target_keys,
        rules=inflation.rules,
        fresh={
            f"left out by the ImageNet mapping ({patch_reason})": left_out,
            "not in the ImageNet file (it holds the encoder only)": [k for k in target_keys if k not in encoder_keys],
            "encoder tensors the file does not provide": missing,
            "file tensors of another shape": list(inflation.failed),
        },
        unused={"left out on purpose (ImageNet classifier head, final norm, patch embedding)": skipped,
                "no such encoder tensor": inflation.unused},
    )
