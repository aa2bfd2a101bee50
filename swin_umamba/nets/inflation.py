"""How each tensor of a 3D network derives from its 2D counterpart (docs/weights.md, "Inflation to 3D").

The 3D networks keep the 2D networks' module names (only SS2D's `conv2d` is SS3D's `conv3d`), so
every 3D key has one 2D key. `inflate_tensor` gives the 3D tensor and the rule it used, chosen by the
kind of module the tensor belongs to. All rules together keep the inflation identity: with every depth
stride 1, a volume of depth 1 gives the 2D network's output on its one slice; where a rule is I3D's
(repeat along depth, divided by the depth stride) a depth-constant volume gives the 2D output too.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from swin_umamba.nets.swin_umamba_d3d import PatchExpand3D
from swin_umamba.nets.vmamba import DirectionalScan
from swin_umamba.nets.vmamba3d import SS2D_DIRECTIONS, PatchMerging3D

# rule names, as the report lists them
UNCHANGED = "unchanged (norms, linears, biases, the four 2D scan directions)"
DEPTH_ONE = "depth-1 kernel: the 2D kernel (1x1x1 convolutions, patch embedding with depth patch 1)"
CENTRE = "centre slot of a zero depth kernel (stem, depthwise and residual 3x3x3 convolutions)"
I3D = "I3D: repeated along depth, divided by the depth patch (patch embedding with depth patch > 1)"
UPSAMPLE = "repeated along depth (transposed convolutions, patch expanding)"
MERGE_2X2X2 = "2x2x2 merging: norm repeated over the two depth offsets, reduction repeated and halved"
EXTRA_DIRECTIONS = "scan parameters: the four 2D directions copied, the extra directions at zero contribution"

# 3D module name -> 2D module name, where they differ
RENAMES_2D = {"conv3d": "conv2d"}


def source_key(target_key: str) -> str:
    """The 2D key a 3D key inflates from."""
    return ".".join(RENAMES_2D.get(part, part) for part in target_key.split("."))


class InflationError(ValueError):
    """A 2D tensor that no rule turns into the 3D tensor's shape."""


def _conv3d(conv: nn.Conv3d, weight: torch.Tensor) -> tuple[torch.Tensor, str]:
    depth, stride, pad = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    if depth == 1:
        return weight.unsqueeze(2), DEPTH_ONE
    if pad > 0 and depth == 2 * pad + 1:  # centred kernel: the 2D one in the middle, zero elsewhere
        out = weight.new_zeros(weight.shape[:2] + (depth,) + weight.shape[2:])
        out[:, :, pad] = weight
        return out, CENTRE
    if pad == 0 and depth == stride:  # non-overlapping patches along depth
        return weight.unsqueeze(2).repeat(1, 1, depth, 1, 1) / depth, I3D
    raise InflationError(f"no inflation rule for a Conv3d with depth kernel {depth}, stride {stride}, padding {pad}")


def inflate_tensor(module: nn.Module, parent: nn.Module | None, name: str, source: torch.Tensor,
                   target: torch.Tensor) -> tuple[torch.Tensor, str]:
    """The 3D tensor `name` of `module` (inside `parent`; shaped like `target`) from the 2D tensor `source`,
    and the rule used."""
    if isinstance(module, DirectionalScan) and module.K > SS2D_DIRECTIONS and source.shape != target.shape:
        # direction k owns index k of the first axis (x_proj_weight, dt_projs_*) or rows k*D..(k+1)*D (A_logs, Ds)
        out = target.clone()
        out[: source.shape[0]] = source
        return out, EXTRA_DIRECTIONS
    if source.shape == target.shape:
        return source, UNCHANGED
    if name == "weight" and isinstance(module, nn.Conv3d):
        out, rule = _conv3d(module, source)
    elif name == "weight" and isinstance(module, nn.ConvTranspose3d):
        # kernel = stride: each output voxel receives exactly one input voxel, so no division
        out, rule = source.unsqueeze(2).repeat(1, 1, module.kernel_size[0], 1, 1), UPSAMPLE
    elif isinstance(module, nn.Linear) and name == "weight" and isinstance(parent, PatchExpand3D):
        # output channels of depth offset pz are the block pz * (2D rows) .. : the 2D rows for each offset
        out, rule = source.repeat(target.shape[0] // source.shape[0], 1), UPSAMPLE
    elif isinstance(parent, PatchMerging3D):
        # the 8C concatenation of a depth-constant volume is the 4C one twice
        if isinstance(module, nn.LayerNorm):
            out = source.repeat(2)
        else:
            out = torch.cat([source, source], dim=1) / 2
        rule = MERGE_2X2X2
    else:
        raise InflationError(f"no inflation rule for {type(module).__name__}.{name} from {tuple(source.shape)} "
                             f"to {tuple(target.shape)}")
    if out.shape != target.shape:
        raise InflationError(f"{type(module).__name__}.{name}: the 2D tensor {tuple(source.shape)} inflates to "
                             f"{tuple(out.shape)}, the network has {tuple(target.shape)}")
    return out, rule


@dataclass
class Inflation:
    """A 3D network's tensors by what happened to them: `tensors[key]` with `rules[key]` from the source,
    `missing` not in the source, `unused` source keys with no place in the network, `failed` keys with
    their reason (no rule fits)."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def inflate_state_dict(network_3d: nn.Module, source: dict[str, torch.Tensor], keys: list[str] | None = None) -> Inflation:
    """Inflate the 2D tensors of `source` (2D key names) for the 3D keys `keys` (default: all of the network's)."""
    target = network_3d.state_dict()
    modules = dict(network_3d.named_modules())
    result = Inflation()
    wanted = list(target) if keys is None else keys
    used = set()
    for key in wanted:
        src = source_key(key)
        if src not in source:
            result.missing.append(key)
            continue
        used.add(src)
        module_name, _, param = key.rpartition(".")
        try:
            parent = modules[module_name.rpartition(".")[0]]
            tensor, rule = inflate_tensor(modules[module_name], parent, param, source[src], target[key])
        except InflationError as exc:
            result.failed[key] = str(exc)
            continue
        result.tensors[key] = tensor.to(target[key].dtype)
        result.rules[key] = rule
    targets_2d = {source_key(k) for k in target}
    result.unused = [k for k in source if k not in targets_2d]
    return result
