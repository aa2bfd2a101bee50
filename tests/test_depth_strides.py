"""The depth strides a 3D network takes for nnU-Net's pooling plan (swin_umamba/nets/depth_strides.py)."""
from __future__ import annotations

import pytest

from swin_umamba.nets.depth_strides import derive_depth_strides, planned_depth_at

# the stages of the two 3D networks: in-plane stride and allowed depth strides per downsampling stage
PLAIN = ((2, 2, 2, 2, 2), ((1, 2),) * 5)  # stem, patch embedding, three mergings
DAGGER = ((4, 2, 2, 2), ((1, 2, 4), (1, 2), (1, 2), (1, 2)))  # patch embedding, three mergings

# nnU-Net 2.8's 3d_fullres plan of the embedded 3D demo (spacing 6 x 3 x 3 mm, patch 8 x 80 x 112)
DEMO_POOLING = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [1, 2, 2], [1, 2, 2]]
ISOTROPIC_POOLING = [[1, 1, 1]] + [[2, 2, 2]] * 5


def strides(pooling, patch_depth, network):
    return derive_depth_strides(pooling, patch_depth, *network)


def test_demo_plan_pools_depth_where_nnunet_does():
    # nnU-Net pools depth once, when in-plane goes from 2 to 4: SwinUMamba3D's patch embedding
    assert strides(DEMO_POOLING, 8, PLAIN) == (1, 2, 1, 1, 1)
    # SwinUMambaD3D's patch embedding reduces in-plane by 4 at once
    assert strides(DEMO_POOLING, 8, DAGGER) == (2, 1, 1, 1)


def test_isotropic_plan_pools_depth_at_every_stage():
    assert strides(ISOTROPIC_POOLING, 128, PLAIN) == (2, 2, 2, 2, 2)
    assert strides(ISOTROPIC_POOLING, 128, DAGGER) == (4, 2, 2, 2)


def test_depth_never_pooled_when_nnunet_never_pools_it():
    pooling = [[1, 1, 1]] + [[1, 2, 2]] * 5
    assert strides(pooling, 4, PLAIN) == (1, 1, 1, 1, 1)
    assert strides(pooling, 4, DAGGER) == (1, 1, 1, 1)


def test_total_depth_stride_capped_by_the_patch_depth():
    assert strides(ISOTROPIC_POOLING, 8, PLAIN) == (2, 2, 2, 1, 1)
    assert strides(ISOTROPIC_POOLING, 12, DAGGER) == (4, 2, 1, 1)
    assert strides(ISOTROPIC_POOLING, 1, PLAIN) == (1, 1, 1, 1, 1)


def test_past_nnunets_deepest_stage_depth_keeps_pace_only_if_it_did():
    four_isotropic = [[1, 1, 1]] + [[2, 2, 2]] * 4  # in-plane reduction 16
    assert planned_depth_at(four_isotropic, 32) == 32
    assert strides(four_isotropic, 64, PLAIN) == (2, 2, 2, 2, 2)
    last_in_plane_only = [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]]
    assert planned_depth_at(last_in_plane_only, 32) == 8
    assert strides(last_in_plane_only, 64, PLAIN) == (2, 2, 2, 1, 1)


def test_a_stage_that_cannot_take_the_whole_step_is_caught_up_later():
    # nnU-Net reduces depth by 4 in one stage; SwinUMamba3D's stages stride by at most 2
    pooling = [[1, 1, 1], [4, 2, 2], [1, 2, 2], [1, 2, 2], [1, 2, 2], [1, 2, 2]]
    assert strides(pooling, 16, PLAIN) == (2, 2, 1, 1, 1)
    assert strides(pooling, 16, DAGGER) == (4, 1, 1, 1)


def test_in_plane_anisotropy_follows_the_finer_axis():
    # height pooled first (finer), width one stage later
    pooling = [[1, 2, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]]
    assert planned_depth_at(pooling, 2) == 1
    assert planned_depth_at(pooling, 4) == 2


@pytest.mark.parametrize("bad", [[[2, 2]], [[1, 1, 1, 1]]])
def test_pooling_that_is_not_3d_is_refused(bad):
    with pytest.raises(ValueError, match="3D pooling strides"):
        strides(bad, 8, PLAIN)


def test_zero_patch_depth_is_refused():
    with pytest.raises(ValueError, match="patch depth"):
        strides(DEMO_POOLING, 0, PLAIN)
