"""Key layout, parameter counts and forward behaviour of both networks (docs/architecture.md)."""
import functools

import pytest
import torch

from swin_umamba import SwinUMamba, SwinUMambaD
from swin_umamba.nets.swin_umamba_d import PatchExpand
from swin_umamba.nets.vmamba import PatchMerging2D, SS2D
from swin_umamba.ops import selective_scan_ref
from tests.published_layouts import load_layout

NETWORKS = {"swinumamba": SwinUMamba, "swinumambaD": SwinUMambaD}


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("cin,cout", [(1, 14), (3, 8)])
def test_state_dict_matches_the_published_layout(name, cin, cout):
    expected = load_layout(f"{name}_keys_in{cin}_out{cout}.json")
    net = NETWORKS[name](cin, cout)
    actual = [(k, list(v.shape)) for k, v in net.state_dict().items()]
    assert actual == [(k, v) for k, v in expected["state_dict"].items()]
    assert sum(p.numel() for p in net.parameters()) == expected["n_params"]


def test_parameter_counts_of_the_published_networks():
    assert sum(p.numel() for p in SwinUMamba(1, 14).parameters()) == 59_889_368
    assert sum(p.numel() for p in SwinUMambaD(1, 14).parameters()) == 27_497_720


@functools.lru_cache(maxsize=None)
def _network(name: str, cin: int):
    """One network per kind and channel count for the forward checks (building one takes seconds)."""
    torch.manual_seed(0)
    return NETWORKS[name](cin, 5, deep_supervision=True).eval()


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("cin, size", [(1, (64, 64)), (3, (96, 160)), (1, (70, 45))])
def test_forward_shapes_with_and_without_deep_supervision(name, cin, size):
    net = _network(name, cin)
    net.deep_supervision = True
    x = torch.randn(1, cin, *size)
    with torch.no_grad():
        outs = net(x)
        net.deep_supervision = False
        single = net(x)
    h, w = size
    expected = [(-(-h // s), -(-w // s)) for s in net.OUTPUT_SCALES]
    assert [tuple(o.shape[-2:]) for o in outs] == expected
    assert all(o.shape[:2] == (1, 5) for o in outs)
    assert single.shape == (1, 5, h, w)
    torch.testing.assert_close(single, outs[0])
    assert torch.isfinite(single).all()


def test_padding_crops_back_to_the_unpadded_result():
    """A 64x64 image padded by the caller gives the same top-left output as the network's own padding."""
    torch.manual_seed(0)
    net = SwinUMambaD(1, 3).eval()
    x = torch.randn(1, 1, 50, 40)
    padded = torch.nn.functional.pad(x, (0, 24, 0, 14))
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(padded)[..., :50, :40])


def test_pad_to_stride_pads_each_axis_to_its_own_stride_and_crops_back():
    from swin_umamba.nets.padding import crop_to_input, pad_to_stride

    x = torch.randn(1, 2, 5, 33, 64)
    padded, size = pad_to_stride(x, (4, 32, 32))
    assert size == (5, 33, 64) and padded.shape == (1, 2, 8, 64, 64)
    torch.testing.assert_close(padded[..., :5, :33, :64], x)
    assert padded[..., 5:, :, :].abs().sum() == 0 and padded[..., 33:, :].abs().sum() == 0
    half = torch.randn(1, 2, 4, 32, 32)
    cropped = crop_to_input([padded, half], size, [1, (2, 2, 2)])
    assert cropped[0].shape[-3:] == (5, 33, 64) and cropped[1].shape[-3:] == (3, 17, 32)


def test_backward_reaches_every_parameter():
    torch.manual_seed(0)
    net = SwinUMamba(1, 3, deep_supervision=True)
    outs = net(torch.randn(1, 1, 64, 64))
    sum(o.square().mean() for o in outs).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


def test_patch_merging_takes_the_four_subgrids_in_spec_order():
    merge = PatchMerging2D(1)
    x = torch.arange(16.0).view(1, 4, 4, 1)
    gathered = []
    with torch.no_grad():
        merge.norm = torch.nn.Identity()
        merge.reduction = torch.nn.Identity()
        y = merge(x)
    for r0, c0 in [(0, 0), (1, 0), (0, 1), (1, 1)]:
        gathered.append(x[0, r0::2, c0::2, 0])
    assert torch.equal(y[0], torch.stack(gathered, dim=-1))


@pytest.mark.parametrize("scale", [2, 4])
def test_patch_expand_places_channels_as_spec_says(scale):
    c_out = 3
    expand = PatchExpand(c_out, c_out, scale)
    expand.expand = torch.nn.Identity()  # feed the already expanded channels directly
    expand.norm = torch.nn.Identity()
    x = torch.randn(1, 2, 3, scale * scale * c_out)
    y = expand(x)
    for h in range(2):
        for w in range(3):
            for p1 in range(scale):
                for p2 in range(scale):
                    for c in range(c_out):
                        assert y[0, scale * h + p1, scale * w + p2, c] == x[0, h, w, (p1 * scale + p2) * c_out + c]


def test_ss2d_follows_the_documented_order_of_operations():
    """SS2D against a literal, index-by-index reading of docs/architecture.md with the reference scan."""
    torch.manual_seed(0)
    m = SS2D(8)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    H, W = 5, 3
    x = torch.randn(2, H, W, 8)
    with torch.no_grad():
        actual = m(x)

        xi, z = m.in_proj(x).chunk(2, dim=-1)
        xi = torch.nn.functional.silu(m.conv2d(xi.permute(0, 3, 1, 2)))  # (B, D, H, W)
        D, N, R = m.d_inner, m.d_state, m.dt_rank
        # position sequences as (row, col) lists
        rows = [(i, j) for i in range(H) for j in range(W)]
        cols = [(i, j) for j in range(W) for i in range(H)]
        orders = [rows, cols, rows[::-1], cols[::-1]]
        total = torch.zeros(2, D, H, W)
        A = -torch.exp(m.A_logs)
        for k, order in enumerate(orders):
            seq = torch.stack([xi[:, :, i, j] for i, j in order], dim=-1)  # (B, D, L)
            proj = torch.einsum("cd,bdl->bcl", m.x_proj_weight[k], seq)
            dt, Bk, Ck = proj[:, :R], proj[:, R : R + N], proj[:, R + N :]
            delta = torch.einsum("dr,brl->bdl", m.dt_projs_weight[k], dt)
            rows_k = slice(k * D, (k + 1) * D)
            y = selective_scan_ref(
                seq, delta, A[rows_k], Bk[:, None], Ck[:, None], m.Ds[rows_k], m.dt_projs_bias[k], delta_softplus=True
            )
            for t, (i, j) in enumerate(order):
                total[:, :, i, j] += y[:, :, t]
        y = m.out_norm(total.permute(0, 2, 3, 1)) * torch.nn.functional.silu(z)
        expected = m.out_proj(y)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
