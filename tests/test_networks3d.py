"""The 3D networks (docs/architecture.md, "3D networks"): scan orders, shapes, depth strides, and the
inflation identity (docs/weights.md): a 2D network's weights inflated into the 3D network give, on a
volume of depth 1, the 2D network's output on the slice."""
import math

import pytest
import torch

from swin_umamba import SwinUMamba, SwinUMamba3D, SwinUMambaD, SwinUMambaD3D
from swin_umamba.nets.inflation import CENTRE, DEPTH_ONE, I3D, MERGE_2X2X2, UNCHANGED, UPSAMPLE, inflate_state_dict
from swin_umamba.nets.swin_umamba_d import PatchExpand
from swin_umamba.nets.swin_umamba_d3d import PatchExpand3D
from swin_umamba.nets.unetr_blocks import UpBlock
from swin_umamba.nets.vmamba import SS2D, PatchEmbed2D, PatchMerging2D
from swin_umamba.nets.vmamba3d import SS3D, PatchEmbed3D, PatchMerging3D
from swin_umamba.ops.cross_scan import cross_merge_3d, cross_scan_3d, cross_scan_torch

PAIRS = {"SwinUMamba3D": (SwinUMamba, SwinUMamba3D), "SwinUMambaD3D": (SwinUMambaD, SwinUMambaD3D)}


def perturbed(module: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> torch.nn.Module:
    """Every parameter moved off its initialisation (norm weights off 1, biases off 0), so each one matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return module


def inflated(module_3d: torch.nn.Module, module_2d: torch.nn.Module) -> dict[str, str]:
    """Load the inflated weights of `module_2d` into `module_3d`; the rule of every key."""
    result = inflate_state_dict(module_3d, module_2d.state_dict())
    assert not result.missing and not result.failed and not result.unused
    module_3d.load_state_dict(result.tensors)
    return result.rules


# ------------------------------------------------------------------------------------------ cross-scan
def test_3d_cross_scan_reads_slices_in_ss2d_orders_depth_outermost():
    x = torch.arange(12.0).reshape(1, 1, 2, 2, 3)  # (B, C, Z, H, W), row-major numbering
    xs = cross_scan_3d(x)[0, :, 0]
    transposed = [0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11]
    assert xs.tolist() == [list(range(12)), transposed, list(range(11, -1, -1)), transposed[::-1]]
    depth_inner = cross_scan_3d(x, 8)[0, 4:, 0]
    assert depth_inner[0].tolist() == [0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11]  # (h, w, z) order
    assert depth_inner[1].tolist() == depth_inner[0].flip(0).tolist()
    assert depth_inner[2].tolist() == [0, 6, 3, 9, 1, 7, 4, 10, 2, 8, 5, 11]  # (w, h, z) order


def test_3d_cross_scan_of_one_slice_is_the_2d_one():
    x = torch.randn(2, 3, 5, 7)
    assert torch.equal(cross_scan_3d(x[:, :, None]), cross_scan_torch(x))


@pytest.mark.parametrize("directions", [4, 6, 8])
def test_3d_cross_merge_undoes_every_direction(directions):
    x = torch.randn(2, 3, 3, 4, 5)
    merged = cross_merge_3d(cross_scan_3d(x, directions), 3, 4, 5)
    torch.testing.assert_close(merged, directions * x.reshape(2, 3, -1))


# ------------------------------------------------------------------------------------- shapes, strides
@pytest.mark.parametrize("name,depth_strides,size", [
    ("SwinUMamba3D", (1, 2, 1, 2, 1), (3, 40, 33)),
    ("SwinUMambaD3D", (4, 1, 2, 1), (5, 32, 50)),
])
def test_forward_shapes_follow_the_per_axis_scales(name, depth_strides, size):
    torch.manual_seed(0)
    net = PAIRS[name][1](2, 3, depth_strides, deep_supervision=True).eval()
    assert net.STRIDE == (math.prod(depth_strides), 32, 32)
    x = torch.randn(1, 2, *size)
    with torch.no_grad():
        outs = net(x)
        net.deep_supervision = False
        single = net(x)
    assert [tuple(o.shape[2:]) for o in outs] == [
        tuple(-(-n // s) for n, s in zip(size, scale)) for scale in net.OUTPUT_SCALES]
    assert all(o.shape[:2] == (1, 3) for o in outs)
    torch.testing.assert_close(single, outs[0])
    assert torch.isfinite(single).all()


def test_output_scales_per_axis():
    stride, scales = SwinUMamba3D.strides_of((2, 1, 2, 1, 1))
    assert stride == (4, 32, 32)
    assert scales == ((1, 1, 1), (2, 2, 2), (2, 4, 4), (4, 8, 8))
    stride, scales = SwinUMambaD3D.strides_of((2, 2, 1, 1))
    assert stride == (4, 32, 32)
    assert scales == ((1, 1, 1), (2, 4, 4), (4, 8, 8), (4, 16, 16))


@pytest.mark.parametrize("network,depth_strides", [
    (SwinUMamba3D, (1, 1, 1, 1)),  # one stage short
    (SwinUMamba3D, (1, 1, 4, 1, 1)),  # only the patch embedding of SwinUMambaD3D takes 4
    (SwinUMambaD3D, (3, 1, 1, 1)),
    (SwinUMambaD3D, (1, 4, 1, 1)),
    (SwinUMambaD3D, 2),
    (SwinUMambaD3D, (1.5, 1, 1, 1)),
])
def test_invalid_depth_strides_are_refused(network, depth_strides):
    with pytest.raises(ValueError, match="depth_strides") as info:
        network.strides_of(depth_strides)
    assert "merging 3" in str(info.value)  # names the stages


def test_2d_input_is_refused():
    net = SwinUMambaD3D(1, 2, (1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"\(B, C, D, H, W\)"):
        net(torch.zeros(1, 1, 32, 32))


def test_backward_reaches_every_parameter():
    torch.manual_seed(0)
    net = SwinUMambaD3D(1, 2, (2, 1, 1, 1), deep_supervision=True, scan_directions=6)
    outs = net(torch.randn(1, 1, 2, 32, 32))
    sum(o.square().mean() for o in outs).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []
    # the extra directions start at zero contribution, but their C projection learns
    x_proj = net.vssm_encoder.layers[0].blocks[0].self_attention.x_proj_weight
    assert x_proj.grad[4:].abs().sum() > 0


# ---------------------------------------------------------------------------------- inflation identity
@pytest.mark.parametrize("name", PAIRS)
def test_inflation_identity_on_a_volume_of_depth_one(name):
    """Random 2D weights, every depth stride 1: the 3D network on a one-slice volume gives the 2D output
    on that slice at every deep-supervision head."""
    net_2d_class, net_3d_class = PAIRS[name]
    torch.manual_seed(0)
    net_2d = perturbed(net_2d_class(2, 3, deep_supervision=True)).eval()
    net_3d = net_3d_class(2, 3, (1,) * len(net_3d_class.DEPTH_STAGES), deep_supervision=True).eval()
    rules = inflated(net_3d, net_2d)
    assert set(rules.values()) >= {UNCHANGED, CENTRE, DEPTH_ONE}
    x = torch.randn(1, 2, 64, 64)
    with torch.no_grad():
        outs_2d = net_2d(x)
        outs_3d = net_3d(x[:, :, None])
    assert len(outs_3d) == len(outs_2d) == 4
    for out_2d, out_3d in zip(outs_2d, outs_3d):
        assert out_3d.shape[2] == 1
        torch.testing.assert_close(out_3d[:, :, 0], out_2d, rtol=1e-4, atol=5e-5)


def test_extra_scan_directions_keep_the_identity():
    torch.manual_seed(0)
    ss2d = perturbed(SS2D(16, d_state=4)).eval()
    ss3d = SS3D(16, d_state=4, directions=8).eval()
    inflated(ss3d, ss2d)
    x = torch.randn(2, 5, 6, 16)
    with torch.no_grad():
        torch.testing.assert_close(ss3d(x[:, None]), ss2d(x)[:, None], rtol=1e-4, atol=1e-5)


# ------------------------------------------- depth stride > 1: exact on depth-constant volumes (I3D rules)
def depth_constant(x: torch.Tensor, depth: int, axis: int) -> torch.Tensor:
    return x.unsqueeze(axis).repeat_interleave(depth, dim=axis)


@pytest.mark.parametrize("depth_patch", [2, 4])
def test_patch_embedding_with_depth_patch(depth_patch):
    torch.manual_seed(0)
    embed_2d = perturbed(PatchEmbed2D(4, 2, 8))
    embed_3d = PatchEmbed3D(4, depth_patch, 2, 8)
    assert set(inflated(embed_3d, embed_2d).values()) == {I3D, UNCHANGED}
    x = torch.randn(1, 2, 8, 12)
    with torch.no_grad():
        out = embed_3d(depth_constant(x, 2 * depth_patch, axis=2))  # (B, Z, H, W, C)
        want = embed_2d(x)
    assert out.shape[1] == 2
    torch.testing.assert_close(out, depth_constant(want, 2, axis=1), rtol=1e-5, atol=1e-5)


def test_2x2x2_merging():
    torch.manual_seed(0)
    merge_2d = perturbed(PatchMerging2D(3))
    merge_3d = PatchMerging3D(3, depth_stride=2)
    assert set(inflated(merge_3d, merge_2d).values()) == {MERGE_2X2X2}
    x = torch.randn(1, 4, 6, 3)
    with torch.no_grad():
        out = merge_3d(depth_constant(x, 4, axis=1))
        want = merge_2d(x)
    torch.testing.assert_close(out, depth_constant(want, 2, axis=1), rtol=1e-5, atol=1e-5)


def test_transposed_convolution_with_depth_stride():
    torch.manual_seed(0)
    up_2d = perturbed(UpBlock(4, 2))
    up_3d = UpBlock(4, 2, spatial_dims=3, stride=(2, 2, 2))
    assert set(inflated(up_3d, up_2d).values()) == {UPSAMPLE, CENTRE, DEPTH_ONE}
    x, skip = torch.randn(1, 4, 3, 5), torch.randn(1, 2, 6, 10)
    with torch.no_grad():
        out = up_3d(depth_constant(x, 3, axis=2), depth_constant(skip, 6, axis=2))
        want = up_2d(x, skip)
    torch.testing.assert_close(out, depth_constant(want, 6, axis=2), rtol=1e-5, atol=1e-5)


def test_patch_expanding_with_depth_scale():
    torch.manual_seed(0)
    expand_2d = perturbed(PatchExpand(6, 3, scale=2))
    expand_3d = PatchExpand3D(6, 3, scale=2, depth_scale=2)
    assert set(inflated(expand_3d, expand_2d).values()) == {UPSAMPLE, UNCHANGED}
    x = torch.randn(1, 3, 4, 6)
    with torch.no_grad():
        out = expand_3d(depth_constant(x, 2, axis=1))
        want = expand_2d(x)
    torch.testing.assert_close(out, depth_constant(want, 4, axis=1), rtol=1e-5, atol=1e-5)


def test_strided_stem_on_a_depth_constant_volume():
    """The stem's centre-slot kernel with depth stride 2 gives the 2D stem's output on every slice."""
    torch.manual_seed(0)
    net_2d = perturbed(SwinUMamba(1, 2))
    net_3d = SwinUMamba3D(1, 2, (2, 1, 1, 1, 1))
    rules = inflated(net_3d.stem, net_2d.stem)
    assert rules["0.weight"] == CENTRE
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        out = net_3d.stem(depth_constant(x, 4, axis=2))
        want = net_2d.stem(x)
    torch.testing.assert_close(out, depth_constant(want, 2, axis=2), rtol=1e-4, atol=1e-5)
