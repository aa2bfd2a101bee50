"""The Triton selective scan, run by Triton's interpreter on CPU tensors, against the reference.

The interpreter needs ``TRITON_INTERPRET=1`` when the kernels are defined, so the fixture
loads a private copy of ``scan_triton.py`` with the variable set (its torch.library ops get
names of their own). The interpreter's generic ``associative_scan`` and ``reduce`` call the
combine function once per element in Python; the fixture swaps in the versions of
``swin_umamba/ops/triton_interpreter.py``, which call it once per step along the axis on whole
slices (the same sequential order of combines, see ``test_fast_interpreter_scan_is_exact``), which
makes these tests about 100x faster.

Every case compares the output, the last state and all seven gradients (the loss reads the
last state too) with the float64 sequential reference. Small chunk lengths make short
sequences span several chunks; one case uses the module's own chunk length.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from swin_umamba.ops import random_scan_grads, random_scan_inputs, scan_triton, selective_scan_ref
from swin_umamba.ops.triton_interpreter import vectorised_generic_reduce, vectorised_generic_scan
from tests.triton_interpreter import load_interpreted_copy

SOURCE = Path(scan_triton.__file__)
PRIVATE_NAME = "swin_umamba_scan_triton_interpreted"
NAMES = ("u", "delta", "A", "B", "C", "D", "delta_bias")
TRITON_OWN: dict = {}  # the interpreter's own generic scan and reduce, kept by the fixture


def _load_interpreted_module():
    return load_interpreted_copy(SOURCE, PRIVATE_NAME)


@pytest.fixture(scope="module")
def tri():
    if scan_triton.triton is None:
        pytest.skip(f"triton does not import: {scan_triton._IMPORT_ERROR}")
    module = _load_interpreted_module()
    from triton.runtime import interpreter

    TRITON_OWN.setdefault("scan", interpreter.ScanOps.generic_scan)
    TRITON_OWN.setdefault("reduce", interpreter.ReduceOps.generic_reduce)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(interpreter.ScanOps, "generic_scan", vectorised_generic_scan)
        mp.setattr(interpreter.ReduceOps, "generic_reduce", vectorised_generic_reduce)
        yield module


class Impl:
    """The module whose kernels run and the device of their tensors."""

    def __init__(self, module, device):
        self.module, self.device = module, device


@pytest.fixture(params=["interpreter", "cuda"])
def impl(request):
    """The interpreter copy on CPU tensors; the module as installed on CUDA where it can run."""
    if request.param == "interpreter":
        return Impl(request.getfixturevalue("tri"), "cpu")
    ok, reason = scan_triton.triton_available("cuda")
    if not ok:
        pytest.skip(reason)
    return Impl(scan_triton, "cuda")


@pytest.fixture
def chunk(impl, monkeypatch):
    """Set the kernels' chunk length for one test."""
    def set_chunk(value):
        monkeypatch.setattr(impl.module, "CHUNK", value)
    return set_chunk


def scan_inputs(batch, kd, L, groups, N, *, softplus=True, D=True, bias=True, seed=0):
    """float64 inputs shaped like SS2D's, as a list (some tests replace one)."""
    return list(random_scan_inputs(batch, kd, L, groups, N, dtype=torch.float64, seed=seed, delta_softplus=softplus,
                                   with_D=D, with_delta_bias=bias))


def forward_backward(fn, inputs, gout, glast, dtype, device="cpu", **kw):
    """(out, last, grads) of sum(out * gout) + sum(last * glast) through ``fn``, on the CPU."""
    xs = [None if x is None else x.to(device=device, dtype=dtype).detach().requires_grad_() for x in inputs]
    out, last = fn(*xs, return_last_state=True, **kw)
    ((out * gout.to(out)).sum() + (last * glast.to(last)).sum()).backward()
    return (out.detach().cpu(), last.detach().cpu(),
            {n: None if x is None else x.grad.cpu() for n, x in zip(NAMES, xs)})


def assert_close(actual, expected, rtol, what):
    """max |actual - expected| <= rtol * max |expected|, and finite."""
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    err = (actual.double() - expected.double()).abs().max().item()
    scale = expected.double().abs().max().item()
    assert err <= rtol * scale + 1e-300, f"{what}: max abs error {err:.3g}, scale {scale:.3g}"


def check_against_reference(impl, inputs, *, softplus, dtype=torch.float32, rtol=1e-5, grad_rtol=2e-5, seed=1):
    """Triton (inputs in ``dtype``) against the reference on the same values in float64."""
    batch, kd, L = inputs[0].shape
    N = inputs[2].shape[1]
    gout, glast = (t.double() for t in random_scan_grads(inputs, seed))
    rounded = [None if x is None else x.to(dtype).double() for x in inputs]
    rounded[3:5] = [x if x.dim() == 4 else x.unsqueeze(1) for x in rounded[3:5]]  # the reference wants G
    ref, ref_last, ref_g = forward_backward(selective_scan_ref, rounded, gout, glast, torch.float64,
                                            delta_softplus=softplus)
    out, last, grads = forward_backward(impl.module.selective_scan_triton, inputs, gout, glast, dtype,
                                        impl.device, delta_softplus=softplus)
    assert out.dtype == torch.float32 and out.shape == (batch, kd, L)
    assert last.dtype == torch.float32 and last.shape == (batch, kd, N)
    assert_close(out, ref, rtol, "out")
    assert_close(last, ref_last, rtol, "last_state")
    for name in NAMES:
        if ref_g[name] is None:
            assert grads[name] is None, name
            continue
        assert grads[name].dtype == dtype and grads[name].shape == inputs[NAMES.index(name)].shape, name
        assert_close(grads[name], ref_g[name].reshape(grads[name].shape), grad_rtol, f"grad {name}")
    return out


# batch, kd, L, groups, N, softplus, D, bias, chunk
CASES = {
    "G4_ragged_tail": (2, 8, 37, 4, 16, True, True, True, 16),
    "G1_L_is_chunk_no_extras": (1, 3, 16, 1, 5, False, False, False, 16),
    "L1_N1": (2, 6, 1, 2, 1, True, True, False, 16),
    "L_below_chunk_N24": (1, 2, 11, 1, 24, True, False, True, 16),
    "partial_channel_blocks": (1, 6, 20, 2, 3, True, True, True, 8),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference(impl, chunk, case):
    batch, kd, L, groups, N, softplus, D, bias, chunk_len = CASES[case]
    chunk(chunk_len)
    inputs = scan_inputs(batch, kd, L, groups, N, softplus=softplus, D=D, bias=bias, seed=L)
    check_against_reference(impl, inputs, softplus=softplus)


def test_module_chunk_length_and_strided_inputs(impl):
    """The chunk length the module ships with (L spans two chunks, ragged), strided
    u / B views and B, C given as (batch, N, L)."""
    L = impl.module.CHUNK + 9
    u, delta, A, B, C, D, bias = scan_inputs(1, 2, L, 1, 4, seed=3)
    u = torch.cat([u, u], dim=1)[:, ::2]  # channel stride 2
    B = B.transpose(-1, -2).contiguous().transpose(-1, -2)  # time stride N
    check_against_reference(impl, [u, delta, A, B[:, 0], C[:, 0], D, bias], softplus=True)


def test_several_programs_per_group_add_their_dB_dC(impl, chunk, monkeypatch):
    """Four channel blocks per group in the backward: dB and dC are sums of atomic adds."""
    chunk(8)
    monkeypatch.setitem(impl.module.BWD_CONFIG, "block_d", 1)  # 3 channels per group
    check_against_reference(impl, scan_inputs(1, 6, 13, 2, 4, seed=5), softplus=True)


# gradients are rounded to the input dtype once; the interpreter rounds float32 to bfloat16
# towards zero (up to one unit in the last place, 2^-7 relative), GPUs to nearest
@pytest.mark.parametrize("dtype,grad_rtol", [(torch.float16, 1e-3), (torch.bfloat16, 1e-2)])
def test_half_precision_inputs(impl, chunk, dtype, grad_rtol):
    """Inputs read as they are (the reference sees the same rounded values): outputs in float32
    match to float32 accuracy; gradients come back in the input dtype."""
    chunk(16)
    check_against_reference(impl, scan_inputs(1, 8, 21, 4, 16, seed=7), softplus=True, dtype=dtype,
                         grad_rtol=grad_rtol)


def test_long_strongly_decaying_sequence(impl):
    """delta * A down to -1000 per step with near-zero steps mixed in: everything finite and
    equal to the reference (nothing is divided by a product of decays)."""
    L, kd, N = 1000, 2, 16
    g = torch.Generator().manual_seed(7)
    u = torch.randn(1, kd, L, generator=g, dtype=torch.float64)
    delta = 10.0 * torch.rand(1, kd, L, generator=g, dtype=torch.float64)
    delta[:, :, ::7] = 1e-4
    A = -torch.logspace(-2, 2, N, dtype=torch.float64).repeat(kd, 1)
    B = torch.randn(1, 1, N, L, generator=g, dtype=torch.float64)
    C = torch.randn(1, 1, N, L, generator=g, dtype=torch.float64)
    D = torch.randn(kd, generator=g, dtype=torch.float64)
    check_against_reference(impl, [u, delta, A, B, C, D, None], softplus=False)


def test_backward_keeps_no_per_state_tensor(impl, chunk):
    """What autograd keeps: the inputs and the chunk-start states, nothing of size
    batch * KD * N * L; a forward without autograd keeps no chunk states and agrees."""
    chunk(8)
    batch, kd, L, groups, N = 1, 4, 24, 2, 4
    inputs = [x.to(impl.device) for x in scan_inputs(batch, kd, L, groups, N, seed=2)]
    xs = [x.clone().requires_grad_() for x in inputs]
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(tuple(t.shape)) or t, lambda t: t):
        out = impl.module.selective_scan_triton(*[x.float() for x in xs], delta_softplus=True)
    sizes = [int(np.prod(s)) for s in saved]
    assert (batch, kd, 3, N) in saved  # one state per chunk
    assert max(sizes) <= max(x.numel() for x in inputs) < batch * kd * N * L
    out.sum().backward()
    assert all(torch.isfinite(x.grad).all() for x in xs)
    with torch.no_grad():
        again = impl.module.selective_scan_triton(*[x.float() for x in inputs], delta_softplus=True)
    torch.testing.assert_close(again, out.detach(), rtol=0, atol=0)


def test_one_graph_under_torch_compile(impl, chunk):
    """Forward and backward trace as one graph through the ops' fake implementations and
    do not recompile for new values; compiled results equal eager ones."""
    from torch._dynamo.utils import counters

    chunk(8)
    torch._dynamo.reset()
    counters.clear()

    def step(u, delta, A, B, C, D, bias):
        out, last = impl.module.selective_scan_triton(u, delta, A, B, C, D, bias, delta_softplus=True,
                                                      return_last_state=True)
        return out.sum() + last.square().sum()

    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    try:
        for seed in (1, 2):
            inputs = [x.to(impl.device, torch.float32) for x in scan_inputs(1, 4, 10, 2, 4, seed=seed)]
            grads = []
            for fn in (compiled, step):
                xs = [x.clone().requires_grad_() for x in inputs]
                fn(*xs).backward()
                grads.append([x.grad for x in xs])
            for name, got, want in zip(NAMES, *grads):  # atomics add in any order on a GPU
                torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6, msg=name)
        assert counters["stats"]["unique_graphs"] == 1
        assert not counters["graph_break"] and not counters["recompiles"]
    finally:
        torch._dynamo.reset()


def test_deterministic_mode_matches_the_reference(impl, chunk, monkeypatch, deterministic):
    """Gradients reduced through per-program slots: three channel blocks per group, three batch elements."""
    chunk(8)
    monkeypatch.setitem(impl.module.BWD_CONFIG, "block_d", 1)
    check_against_reference(impl, scan_inputs(3, 6, 13, 2, 4, seed=6), softplus=True)


def test_deterministic_gradients_do_not_depend_on_the_order_programs_run(tri, monkeypatch, deterministic):
    """A GPU runs the backward's programs in any order. The interpreter runs them first to last; run
    once more last to first: under deterministic algorithms every gradient is the same bit for bit."""
    from triton.runtime import interpreter

    monkeypatch.setattr(tri, "CHUNK", 8)
    inputs = [x.float() for x in scan_inputs(3, 6, 16, 1, 4, seed=8)]  # 3 channel blocks, 3 batch elements
    gout, glast = random_scan_grads(inputs, 0)
    first_to_last = forward_backward(tri.selective_scan_triton, inputs, gout, glast, torch.float32,
                                     delta_softplus=True)[2]
    builder = interpreter.interpreter_builder
    in_order = builder.set_grid_idx
    monkeypatch.setattr(builder, "set_grid_idx", lambda x, y, z: in_order(
        *(n - 1 - i for n, i in zip(builder.grid_dim, (x, y, z)))))
    last_to_first = forward_backward(tri.selective_scan_triton, inputs, gout, glast, torch.float32,
                                     delta_softplus=True)[2]
    for name in NAMES:
        assert torch.equal(first_to_last[name], last_to_first[name]), name


def test_fast_interpreter_scan_is_exact(tri, monkeypatch):
    """The per-slice interpreter scan and reduction give bit for bit what Triton's
    per-element ones give."""
    from triton.runtime import interpreter

    monkeypatch.setattr(tri, "CHUNK", 8)
    inputs = [x.float() for x in scan_inputs(1, 2, 9, 1, 2, seed=4)]
    fast = forward_backward(tri.selective_scan_triton, inputs, torch.ones(1, 2, 9), torch.ones(1, 2, 2),
                            torch.float32, delta_softplus=True)
    monkeypatch.setattr(interpreter.ScanOps, "generic_scan", TRITON_OWN["scan"])
    monkeypatch.setattr(interpreter.ReduceOps, "generic_reduce", TRITON_OWN["reduce"])
    slow = forward_backward(tri.selective_scan_triton, inputs, torch.ones(1, 2, 9), torch.ones(1, 2, 2),
                            torch.float32, delta_softplus=True)
    torch.testing.assert_close(fast[0], slow[0], rtol=0, atol=0)
    torch.testing.assert_close(fast[1], slow[1], rtol=0, atol=0)
    for name in NAMES:
        torch.testing.assert_close(fast[2][name], slow[2][name], rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("dtype,grad_rtol", [(torch.float32, 2e-5), (torch.bfloat16, 1e-2)])
def test_wider_shape_on_cuda(dtype, grad_rtol):
    """SS2D-like widths (four groups of 24 channels, N = 16) over 11 chunks, compiled."""
    ok, reason = scan_triton.triton_available("cuda")
    if not ok:
        pytest.skip(reason)
    check_against_reference(Impl(scan_triton, "cuda"), scan_inputs(2, 96, 700, 4, 16, seed=9),
                         softplus=True, dtype=dtype, grad_rtol=grad_rtol)


def test_triton_available_reports_without_raising(tri):
    assert tri.triton_available("cpu") == (True, "")
    ok, reason = tri.triton_available("cuda")
    assert not ok and "CPU tensors only" in reason
    assert scan_triton.triton_available("meta")[0] is False
    if scan_triton._interpreted():  # TRITON_INTERPRET=1 was set for the whole process
        return
    # the module as installed (kernels compiled for GPUs) refuses CPU tensors with a reason
    ok, reason = scan_triton.triton_available("cpu")
    assert not ok and "TRITON_INTERPRET" in reason
    with pytest.raises(RuntimeError, match="cannot run here"):
        scan_triton.selective_scan_triton(*scan_inputs(1, 2, 4, 1, 2))


def test_bad_shapes_raise(tri):
    u, delta, A, B, C, D, bias = scan_inputs(1, 6, 10, 3, 4)
    with pytest.raises(ValueError, match="not divisible"):
        tri.selective_scan_triton(u, delta, A, B[:, :1].expand(1, 4, 4, 10), C[:, :1].expand(1, 4, 4, 10))
    with pytest.raises(ValueError, match="B and C"):
        tri.selective_scan_triton(u, delta, A, B, C[:, :1])
    with pytest.raises(ValueError, match="u and delta"):
        tri.selective_scan_triton(u, delta[..., :5], A, B, C)
    with pytest.raises(ValueError, match="D must be"):
        tri.selective_scan_triton(u, delta, A, B, C, D[:3])

