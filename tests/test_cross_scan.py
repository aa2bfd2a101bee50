"""SS2D's fused cross-scan and cross-merge (Triton) against the PyTorch reference.

The kernels run under Triton's interpreter on CPU tensors: the fixture loads a private copy of
``cross_scan_triton.py`` with ``TRITON_INTERPRET=1`` set (its ops get names of their own). Values
and gradients for odd H and W, H != W, batch > 1, float16 and float32; the ops' schemas, fake
implementations and autograd (opcheck); one graph under torch.compile; and SS2D giving the same
output and gradients with the fused kernels as with the reference.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch._dynamo.utils import counters

from swin_umamba.ops import cross_scan as cross_scan_mod
from swin_umamba.ops.cross_scan import cross_merge_torch, cross_scan_torch
from tests.triton_interpreter import load_interpreted_copy

PRIVATE_NAME = "swin_umamba_cross_scan_triton_interpreted"
SHAPES = [(2, 3, 5, 7), (1, 4, 9, 9), (3, 2, 33, 17), (2, 1, 1, 6), (1, 2, 40, 1)]  # B, D, H, W


@pytest.fixture(scope="module")
def interpreted():
    try:
        import triton  # noqa: F401
    except Exception as exc:
        pytest.skip(f"Triton does not import here ({type(exc).__name__}: {exc})")
    return load_interpreted_copy(Path(cross_scan_mod.__file__).with_name("cross_scan_triton.py"), PRIVATE_NAME)


def values_and_grad(fn, arg, gout):
    arg = arg.detach().clone().requires_grad_()
    out = fn(arg)
    (grad,) = torch.autograd.grad(out, arg, gout)
    return out.detach(), grad


def test_reference_orders():
    """The reference's four orders on a 2x3 map with entries 0..5 (row-major numbering)."""
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    xs = cross_scan_torch(x)[0, :, 0]
    assert xs.tolist() == [[0, 1, 2, 3, 4, 5], [0, 3, 1, 4, 2, 5], [5, 4, 3, 2, 1, 0], [5, 2, 4, 1, 3, 0]]
    # merging the four orders of a map gives four times the map
    torch.testing.assert_close(cross_merge_torch(cross_scan_torch(x), 2, 3), 4 * x.reshape(1, 1, 6))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cross_scan_vs_reference(interpreted, shape, dtype):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(*shape, generator=g).to(dtype)
    B, D, H, W = shape
    gout = torch.randn(B, 4, D, H * W, generator=g).to(dtype)
    out, grad = values_and_grad(interpreted.cross_scan_triton, x, gout)
    want, want_grad = values_and_grad(cross_scan_torch, x.float(), gout.float())
    assert out.dtype == dtype and grad.dtype == dtype
    assert torch.equal(out.float(), want)  # a permutation: exact
    # the gradient is a cross-merge: summed in float32 by the kernel, compared with a float32 sum
    torch.testing.assert_close(grad.float(), want_grad, rtol=1e-3 if dtype == torch.float16 else 1e-6, atol=1e-3)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cross_merge_vs_reference(interpreted, shape, dtype):
    g = torch.Generator().manual_seed(sum(shape) + 1)
    B, D, H, W = shape
    y = torch.randn(B, 4, D, H * W, generator=g).to(dtype)
    gout = torch.randn(B, D, H * W, generator=g).to(dtype)
    out, grad = values_and_grad(lambda t: interpreted.cross_merge_triton(t, H, W), y, gout)
    want, want_grad = values_and_grad(lambda t: cross_merge_torch(t, H, W), y.float(), gout.float())
    assert out.dtype == dtype and grad.dtype == dtype
    # float32 accumulation inside the kernel; the reference is summed in float32 here
    torch.testing.assert_close(out.float(), want, rtol=1e-3 if dtype == torch.float16 else 1e-6, atol=1e-3)
    assert torch.equal(grad.float(), want_grad)


def test_non_contiguous_input(interpreted):
    x = torch.randn(2, 5, 3, 6).transpose(2, 3)  # (2, 5, 6, 3), strided
    assert torch.equal(interpreted.cross_scan_triton(x), cross_scan_torch(x))


def test_bad_shapes_raise(interpreted):
    with pytest.raises(ValueError):
        interpreted.cross_scan_triton(torch.randn(2, 3, 4))
    with pytest.raises(ValueError):
        interpreted.cross_merge_triton(torch.randn(1, 4, 2, 12), 3, 5)


def test_ops_pass_opcheck(interpreted):
    scan = getattr(torch.ops.swin_umamba, interpreted._OP_PREFIX.split("::")[1] + "cross_scan")
    merge = getattr(torch.ops.swin_umamba, interpreted._OP_PREFIX.split("::")[1] + "cross_merge")
    torch.library.opcheck(scan, (torch.randn(2, 3, 5, 7, requires_grad=True),))
    torch.library.opcheck(merge, (torch.randn(2, 4, 3, 35, requires_grad=True), 5, 7))


def test_compiled_is_one_graph(interpreted):
    torch._dynamo.reset()
    counters.clear()

    def step(x):
        B, D, H, W = x.shape
        xs = interpreted.cross_scan_triton(torch.sin(x))
        return (interpreted.cross_merge_triton(xs * xs, H, W) ** 2).sum()

    x = torch.randn(2, 3, 5, 7)
    a = x.clone().requires_grad_()
    torch.compile(step, backend="aot_eager", fullgraph=True)(a).backward()
    assert not counters["graph_break"] and counters["stats"]["unique_graphs"] == 1
    b = x.clone().requires_grad_()
    step(b).backward()
    torch.testing.assert_close(a.grad, b.grad)
    torch._dynamo.reset()


def test_ss2d_with_the_fused_kernels_matches_the_reference(interpreted, monkeypatch):
    """SS2D with ``fused=True`` (the CUDA Triton path, here through the interpreted kernels) gives the
    reference path's output and parameter gradients; on the CPU it uses the reference."""
    from swin_umamba.nets.vmamba import SS2D
    from swin_umamba.ops import dispatch

    monkeypatch.setenv(dispatch.ENV_VAR, "torch")  # the scan itself is not under test (no kernel build)
    torch.manual_seed(0)
    block = SS2D(8, d_state=4)
    x = torch.randn(2, 5, 7, 8)  # B, H, W, C: odd H != W

    def run():
        block.zero_grad(set_to_none=True)
        out = block(x)
        out.square().sum().backward()
        return out.detach(), {n: p.grad.clone() for n, p in block.named_parameters()}

    calls = []
    real_scan, real_merge = cross_scan_mod.cross_scan, cross_scan_mod.cross_merge

    def recording(real):
        def call(*args):
            calls.append(args[-1])
            return real(*args)
        return call

    import swin_umamba.nets.vmamba as vmamba

    monkeypatch.setattr(vmamba, "cross_scan", recording(real_scan))
    monkeypatch.setattr(vmamba, "cross_merge", recording(real_merge))
    want, want_grads = run()
    assert calls == [False, False]  # CPU tensors: the reference path

    monkeypatch.setattr(vmamba, "cross_scan", lambda t, fused: interpreted.cross_scan_triton(t))
    monkeypatch.setattr(vmamba, "cross_merge", lambda t, H, W, fused: interpreted.cross_merge_triton(t, H, W))
    got, got_grads = run()
    torch.testing.assert_close(got, want)
    for name in want_grads:
        torch.testing.assert_close(got_grads[name], want_grads[name], msg=name)
