"""Which depth strides a 3D network takes for an nnU-Net configuration (docs/architecture.md, "3D networks").

nnU-Net plans a 3D U-Net's pooling per stage and axis, and does not pool an axis until its spacing
is within 2x of the finest (an anisotropic volume keeps its slices through the first stages); it
also stops pooling an axis whose feature map would fall below 4 voxels. The 3D networks keep their
in-plane strides (total 32) and take one depth stride per downsampling stage. This module maps the
first-axis pooling of nnU-Net's plan onto those stages by in-plane resolution: once a network stage
has reduced height and width by P, the depth has been reduced as much as nnU-Net's plan had reduced
it when its in-plane reduction reached P.

Past nnU-Net's deepest stage (its plan may stop at an in-plane reduction of 16), depth keeps pace
with height and width if nnU-Net's last stage pooled all three axes, and stays otherwise. The
total never exceeds the patch depth (the deepest feature map keeps at least one slice), and a stage
that may not take the whole step (SwinUMamba3D's stages stride by 1 or 2) takes what it may and
the next stages catch up.
"""
from __future__ import annotations

import math
from typing import Sequence


def _levels(pool_strides: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """(cumulative in-plane reduction, cumulative depth reduction) before and after each stage of the plan.

    In-plane is the more-pooled of the two in-plane axes (the finer one, when they differ)."""
    levels = [(1, 1)]
    in_plane = depth = 1
    for stage in pool_strides:
        if len(stage) != 3:
            raise ValueError(f"expected 3D pooling strides [depth, height, width] per stage, got {list(stage)}")
        depth *= int(stage[0])
        in_plane *= max(int(stage[1]), int(stage[2]))
        levels.append((in_plane, depth))
    return levels


def planned_depth_at(pool_strides: Sequence[Sequence[int]], in_plane: int) -> int:
    """nnU-Net's cumulative depth reduction by the time its in-plane reduction reached `in_plane`."""
    levels = _levels(pool_strides)
    depth = max(d for q, d in levels if q <= in_plane)
    deepest_in_plane, deepest_depth = levels[-1]
    if in_plane > deepest_in_plane and pool_strides:
        last = pool_strides[-1]
        if int(last[0]) > 1 and max(int(last[1]), int(last[2])) > 1:
            depth = deepest_depth * in_plane // deepest_in_plane
    return depth


def derive_depth_strides(pool_strides: Sequence[Sequence[int]], patch_depth: int,
                         in_plane_strides: Sequence[int], depth_choices: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """One depth stride per network stage.

    pool_strides: nnU-Net's per-stage strides [depth, height, width] (the plans' arch_kwargs 'strides',
    first stage included). patch_depth: the patch's extent along depth. in_plane_strides,
    depth_choices: the network's stages (the class's IN_PLANE_STRIDES and DEPTH_STRIDE_CHOICES).
    """
    if patch_depth < 1:
        raise ValueError(f"patch depth must be at least 1, got {patch_depth}")
    if len(in_plane_strides) != len(depth_choices):
        raise ValueError("one in-plane stride and one set of depth choices per stage")
    cap = 2 ** int(math.floor(math.log2(patch_depth)))
    strides = []
    reached = 1
    in_plane = 1
    for stage_in_plane, choices in zip(in_plane_strides, depth_choices):
        in_plane *= int(stage_in_plane)
        wanted = min(planned_depth_at(pool_strides, in_plane), cap)
        step = max(c for c in choices if reached * c <= max(wanted, reached))
        strides.append(int(step))
        reached *= step
    return tuple(strides)
