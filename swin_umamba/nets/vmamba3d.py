"""VMamba-Tiny building blocks over volumes, for SwinUMamba3D and SwinUMambaD3D.

Everything inside is channel-last (B, Z, H, W, C), Z the depth (nnU-Net's first spatial axis). The
names of every module and parameter are those of the 2D blocks in `vmamba.py` (except `conv3d` for
SS2D's `conv2d`), so that a 2D state_dict maps onto a 3D one key by key (`swin_umamba/inflation.py`).
In-plane, every block downsamples exactly as its 2D counterpart; along depth by its own stride.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import torch
from torch import nn

from swin_umamba.nets.vmamba import LN_EPS, DirectionalScan, VSSLayer, VSSMEncoder, _init_linear_and_norm
from swin_umamba.ops.cross_scan import cross_merge_3d, cross_scan_3d

# SS2D's four orders with depth outermost (what inflation from 2D reproduces); 6 and 8 add orders with
# depth innermost, which start at zero contribution (docs/architecture.md)
SCAN_DIRECTION_CHOICES = (4, 6, 8)
SS2D_DIRECTIONS = 4


def validate_depth_strides(network: str, depth_strides: Sequence[int], stages: Sequence[str],
                           choices: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """`depth_strides` as a tuple, or a ValueError naming the stages and the values each may take."""
    allowed = ", ".join(f"{stage} {'/'.join(map(str, c))}" for stage, c in zip(stages, choices))
    try:
        values = tuple(int(s) for s in depth_strides)
        valid = len(values) == len(stages) and all(
            v == s and v in c for v, s, c in zip(values, depth_strides, choices))
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(
            f"{network}: depth_strides={depth_strides!r} is not valid; give {len(stages)} depth strides, one per "
            f"downsampling stage, each one of the listed values ({allowed}), e.g. {tuple(c[0] for c in choices)} "
            f"for no downsampling along depth.")
    return values


def strides_of(network: type, depth_strides: Sequence[int]) -> tuple[tuple[int, int, int],
                                                                   tuple[tuple[int, int, int], ...]]:
    """(STRIDE, OUTPUT_SCALES) of a 3D network class with these depth strides, without building it: the total
    downsampling per axis (depth, height, width), and that of each of its four heads, full resolution first.

    Both 3D networks put their heads at full resolution and after their first, second and third
    downsampling stage; `network` gives DEPTH_STAGES, DEPTH_STRIDE_CHOICES and IN_PLANE_STRIDES."""
    s = validate_depth_strides(network.__name__, depth_strides, network.DEPTH_STAGES, network.DEPTH_STRIDE_CHOICES)
    p = network.IN_PLANE_STRIDES
    stride = (math.prod(s), math.prod(p), math.prod(p))
    scales = tuple((math.prod(s[:i]), math.prod(p[:i]), math.prod(p[:i])) for i in range(4))
    return stride, scales


class PatchEmbed3D(nn.Module):
    """Non-overlapping (depth_patch x patch x patch) blocks -> channel-last embedding."""

    def __init__(self, patch_size: int, depth_patch: int, in_chans: int, embed_dim: int = 96):
        super().__init__()
        kernel = (depth_patch, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel)
        self.norm = nn.LayerNorm(embed_dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).movedim(1, -1))


class PatchMerging3D(nn.Module):
    """2x in-plane (and `depth_stride` along depth) downsampling of a channel-last volume.

    The four in-plane sub-grids in PatchMerging2D's order, for each depth offset in turn (depth offset
    0 first): 4C channels with depth stride 1, 8C with depth stride 2; LayerNorm, then a Linear to 2C."""

    def __init__(self, dim: int, depth_stride: int):
        super().__init__()
        self.depth_stride = depth_stride
        parts = 4 * depth_stride
        self.reduction = nn.Linear(parts * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(parts * dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.depth_stride
        parts = []
        for z in range(s):
            slab = x[:, z::s]
            parts += [slab[:, :, 0::2, 0::2], slab[:, :, 1::2, 0::2], slab[:, :, 0::2, 1::2], slab[:, :, 1::2, 1::2]]
        return self.reduction(self.norm(torch.cat(parts, dim=-1)))


class SS3D(DirectionalScan):
    """3D selective scan: directional Mamba scans over a volume (`DIRECTIONS_3D`), summed.

    The first four read the volume slice after slice, each slice in one of SS2D's four orders; more
    directions (`directions` 6 or 8) read along depth innermost and start at zero contribution: their
    C projections and skip terms are zero, so a new direction adds nothing until training moves them."""

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 3, expand: int = 2,
                 directions: int = SS2D_DIRECTIONS):
        if directions not in SCAN_DIRECTION_CHOICES:
            raise ValueError(f"SS3D: directions={directions!r}; choose one of {SCAN_DIRECTION_CHOICES}")
        super().__init__(d_model, d_state, d_conv, expand, directions)
        with torch.no_grad():
            extra = slice(SS2D_DIRECTIONS, directions)
            self.x_proj_weight[extra, self.dt_rank + d_state:] = 0.0
            self.Ds.view(directions, -1)[extra] = 0.0

    def build_conv(self, channels: int, kernel: int) -> None:
        self.conv3d = nn.Conv3d(channels, channels, kernel_size=kernel, padding=(kernel - 1) // 2, groups=channels)

    @property
    def depthwise(self) -> nn.Module:
        return self.conv3d

    def scan_all_directions(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, D, Z, H, W) channel-first -> summed scan output (B, D, L) in (Z, H, W) row-major order."""
        Z, H, W = x.shape[-3:]
        return cross_merge_3d(self.scan(cross_scan_3d(x, self.K)), Z, H, W)


def ss3d(directions: int):
    """The SS3D constructor a VSSLayer builds its blocks with."""
    return functools.partial(SS3D, directions=directions)


class VSSMEncoder3D(nn.Module):
    """VMamba-Tiny over volumes. Returns channel-first [input, layer0, layer1, layer2, layer3].

    `depth_strides`: the patch embedding's depth patch, then the depth stride of each of the three
    mergings."""

    def __init__(
        self,
        patch_size: int,
        in_chans: int,
        depth_strides: Sequence[int],
        depths: tuple[int, ...] = (2, 2, 9, 2),
        dims: tuple[int, ...] = (96, 192, 384, 768),
        drop_path_rate: float = 0.2,
        scan_directions: int = SS2D_DIRECTIONS,
    ):
        super().__init__()
        self.patch_embed = PatchEmbed3D(patch_size, depth_strides[0], in_chans, dims[0])
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        starts = [sum(depths[:i]) for i in range(len(depths))]
        mixer = ss3d(scan_directions)
        self.layers = nn.ModuleList(
            VSSLayer(dims[i], depths[i], rates[starts[i] : starts[i] + depths[i]], mixer=mixer)
            for i in range(len(depths))
        )
        self.downsamples = nn.ModuleList(
            PatchMerging3D(dims[i], depth_strides[i + 1]) for i in range(len(depths) - 1))
        self.apply(_init_linear_and_norm)

    # the same sequence as in 2D: embed, then each layer, keeping its output, and merge
    forward = VSSMEncoder.forward
