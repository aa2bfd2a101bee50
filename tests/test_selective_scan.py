"""Selective scan: every backend available here against the sequential oracle.

Backends tested: the pure-PyTorch chunked scan and the compiled CPU kernel (its tests are skipped
with the build error where it cannot be built, and fail where $CI is set: tests/cpu_kernel.py).
The mamba-ssm CUDA kernel is tested only where CUDA and mamba-ssm exist.

Gradients at the four SS2D shapes of a 256x256 input would take the oracle's autograd (a
Python loop over L, one graph node per op and step) far too long at full width, so there the
upstream gradient is non-zero only on a few channels per group: the backends run at full size,
the oracle only on those channels, and every gradient (dB and dC included, which sum over the
channels of a group) must agree; gradients of the other channels must be exactly zero.
"""
from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import warnings

import pytest
import torch

from swin_umamba.ops import dispatch, scan_cpu, scan_torch as scan_torch_mod
from swin_umamba.ops import random_scan_grads, random_scan_inputs, selective_scan, selective_scan_backend
from swin_umamba.ops import selective_scan_ref
from swin_umamba.ops.scan_cpu import scan_cpu_kernel
from swin_umamba.ops.scan_torch import scan_torch
from tests.cpu_kernel import CI_ENV_VAR, build_error, require_cpu_kernel

NAMES = ("u", "delta", "A", "B", "C", "D", "delta_bias")


@contextlib.contextmanager
def one_thread():
    """The oracle issues thousands of tiny ops; on a busy machine a 2-thread pool makes every
    one of them wait for a descheduled thread, so it runs on one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def reference_scan(*args, **kwargs):
    """The package's reference scan, on one thread."""
    with one_thread():
        return selective_scan_ref(*args, **kwargs)


# every backend is a parametrisation whether or not it can run here: one that cannot is a skip
# with its reason (or a failure under $CI), never a test that silently disappears
BACKEND_IDS = ["torch", "cpu_kernel"]


def backend_fn(name: str):
    """The scan function of backend ``name``; skips (or fails under $CI) when the kernel cannot be built."""
    if name == "cpu_kernel":
        require_cpu_kernel()
        return scan_cpu_kernel
    return scan_torch


def run_with_grads(fn, inputs, grad_out, dtype=None, **kw):
    xs = [None if x is None else (x if dtype is None else x.to(dtype)).detach().clone().requires_grad_()
          for x in inputs]
    with one_thread() if fn is reference_scan else contextlib.nullcontext():
        res = fn(*xs, **kw)
        out = res[0] if isinstance(res, tuple) else res
        (out * grad_out.to(out.dtype)).sum().backward()
    grads = {n: (None if x is None else x.grad) for n, x in zip(NAMES, xs)}
    return res, grads


def assert_close_rel(actual, expected, rtol, name):
    """max |actual - expected| <= rtol * max |expected| (plus a tiny floor)."""
    err = (actual.double() - expected.double()).abs().max().item()
    scale = expected.double().abs().max().item()
    assert err <= rtol * scale + 1e-30, f"{name}: max abs error {err:.3g} vs scale {scale:.3g}"
    assert torch.isfinite(actual).all(), f"{name}: non-finite values"


# ------------------------------------------------------------------ small exact checks
def test_gradcheck_torch_path(monkeypatch):
    # small chunk so that the hierarchical scan recurses three times (L=9 -> 5 -> 3 -> 2 chunks, padded);
    # few elements: gradcheck differentiates each one numerically
    monkeypatch.setattr(scan_torch_mod, "CHUNK", 2)
    xs = [x.requires_grad_() for x in random_scan_inputs(1, 4, 9, 2, 2, dtype=torch.float64, seed=1)]

    def f(*args):
        return scan_torch(*args, delta_softplus=True)

    assert torch.autograd.gradcheck(f, tuple(xs), eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKEND_IDS)
@pytest.mark.parametrize(
    "batch,kd,L,groups,N,softplus,D,bias",
    [
        (2, 8, 200, 2, 16, True, True, True),     # L not a multiple of any chunk
        (1, 6, 77, 3, 5, True, True, True),       # N not 16 (generic kernel path)
        (2, 4, 130, 1, 16, False, False, False),  # no softplus, no D, no bias
        (1, 8, 1, 4, 16, True, True, False),      # L = 1
        (3, 4, 64, 4, 16, False, True, True),     # L = kernel chunk exactly
    ],
)
def test_forward_and_grads_vs_oracle(backend, batch, kd, L, groups, N, softplus, D, bias):
    fn = backend_fn(backend)
    inputs = random_scan_inputs(batch, kd, L, groups, N, dtype=torch.float64, seed=L, delta_softplus=softplus,
                                with_D=D, with_delta_bias=bias)
    gout, _ = random_scan_grads(inputs)
    (ref, ref_last), ref_g = run_with_grads(reference_scan, inputs, gout,
                                            delta_softplus=softplus, return_last_state=True)
    (out, last), g = run_with_grads(fn, inputs, gout, dtype=torch.float32,
                                    delta_softplus=softplus, return_last_state=True)
    assert out.dtype == torch.float32 and out.shape == (batch, kd, L)
    assert last.shape == (batch, kd, N)
    assert_close_rel(out, ref, 1e-5, "out")
    assert_close_rel(last, ref_last, 1e-5, "last_state")
    for name in NAMES:
        if ref_g[name] is None:
            assert g[name] is None
        else:
            assert_close_rel(g[name], ref_g[name], 2e-5, f"grad {name}")


# ------------------------------------------------------------- SS2D shapes (256x256 input)
SS2D_SHAPES = [(768, 4096), (1536, 1024), (3072, 256), (6144, 64)]


@functools.lru_cache(maxsize=4)
def _ss2d_case(kd, L):
    """Full-width inputs, a sparse upstream gradient and the oracle's results on its support
    (cached: shared by all backends)."""
    groups, per_group = 4, kd // 4
    inputs = random_scan_inputs(1, kd, L, groups, 16, dtype=torch.float32, seed=kd)
    # upstream gradient only on 2 channels per group (first and last of the group)
    chans = torch.tensor([g * per_group + o for g in range(groups) for o in (0, per_group - 1)])
    gout = torch.zeros(1, kd, L)
    gout[:, chans] = torch.randn(1, len(chans), L, generator=torch.Generator().manual_seed(3))
    sub = [inputs[0][:, chans], inputs[1][:, chans], inputs[2][chans], inputs[3], inputs[4],
           inputs[5][chans], inputs[6][chans]]
    ref, ref_g = run_with_grads(reference_scan, sub, gout[:, chans], dtype=torch.float64,
                                delta_softplus=True)
    return inputs, chans, gout, sub, ref, ref_g


@pytest.mark.parametrize("kd,L", SS2D_SHAPES)
@pytest.mark.parametrize("backend", BACKEND_IDS)
def test_ss2d_shapes(backend, kd, L):
    fn = backend_fn(backend)
    inputs, chans, gout, sub, ref, ref_g = _ss2d_case(kd, L)
    if backend == "torch":
        # the torch path is slow at full width: run it on the oracle's channels only (full L)
        out, g = run_with_grads(fn, sub, gout[:, chans], delta_softplus=True)
        assert_close_rel(out, ref, 1e-5, "out")
        for name in NAMES:
            assert_close_rel(g[name], ref_g[name], 5e-5, f"grad {name}")
        return
    out, g = run_with_grads(fn, inputs, gout, delta_softplus=True)
    assert_close_rel(out[:, chans], ref, 1e-5, "out")
    sel = {"u": (slice(None), chans), "delta": (slice(None), chans), "A": (chans,), "D": (chans,),
           "delta_bias": (chans,)}
    for name in NAMES:
        actual = g[name][sel[name]] if name in sel else g[name]
        assert_close_rel(actual, ref_g[name], 5e-5, f"grad {name}")
    # channels without upstream gradient get exactly zero gradient
    mask = torch.ones(kd, dtype=torch.bool)
    mask[chans] = False
    assert (g["u"][:, mask] == 0).all() and (g["A"][mask] == 0).all() and (g["D"][mask] == 0).all()


def test_ss2d_forward_full_width_vs_oracle():
    """One full-width forward (all 768 channels, L=4096) against the oracle, float32."""
    inputs = random_scan_inputs(1, 768, 4096, 4, 16, seed=5)
    ref = reference_scan(*inputs, delta_softplus=True)
    require_cpu_kernel()  # the torch path is covered at smaller sizes
    out = scan_cpu_kernel(*inputs, delta_softplus=True)
    assert_close_rel(out, ref, 2e-5, "cpu_kernel out")


# ------------------------------------------------------------------ stability and extras
def test_torch_path_keeps_no_intermediates_for_backward():
    """Under autograd the torch path saves nothing beyond what checkpointing needs; backward
    rebuilds the intermediates (the same scan without recomputation saves over 10x its inputs)."""
    xs = [x.requires_grad_() for x in random_scan_inputs(1, 16, 512, 2)]

    def saved_bytes(fn):
        total = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: total.append(t.nbytes) or t, lambda t: t):
            out = fn(*xs, delta_softplus=True, return_last_state=False)
        return sum(total), out

    input_bytes = sum(x.nbytes for x in xs)
    kept, out = saved_bytes(scan_torch)
    everything, ref = saved_bytes(lambda *a, **kw: scan_torch_mod._scan(*a, kw["delta_softplus"], False))
    assert everything > 10 * input_bytes and kept <= input_bytes
    out.backward(torch.ones_like(out))
    grads = [x.grad.clone() for x in xs]
    for x in xs:
        x.grad = None
    ref.backward(torch.ones_like(ref))
    for name, g, x in zip(NAMES, grads, xs):
        torch.testing.assert_close(g, x.grad, msg=f"grad {name}")


@pytest.mark.parametrize("backend", BACKEND_IDS)
def test_softplus_of_delta_over_its_whole_range(backend):
    """delta + bias from -40 to 40: both branches of softplus and of its derivative, and the
    hand-over between them (the CPU kernel computes them itself)."""
    fn = backend_fn(backend)
    inputs = random_scan_inputs(1, 4, 256, 2, dtype=torch.float64, seed=11)
    inputs = inputs._replace(delta=torch.linspace(-40.0, 40.0, 4 * 256, dtype=torch.float64).reshape(1, 4, 256),
                             A=inputs.A / 16)  # decays that keep some memory even at the larger steps
    gout = torch.randn(1, 4, 256, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    ref, ref_g = run_with_grads(reference_scan, inputs, gout, delta_softplus=True)
    out, g = run_with_grads(fn, inputs, gout, dtype=torch.float32, delta_softplus=True)
    assert_close_rel(out, ref, 1e-5, "out")
    for name in ("delta", "delta_bias", "A", "u"):
        assert_close_rel(g[name], ref_g[name], 2e-5, f"grad {name}")


@pytest.mark.parametrize("backend", BACKEND_IDS)
def test_long_sequence_strong_decay(backend):
    """L = 65536 with delta*A down to -1000 per step, mixed with near-zero steps (long memory)."""
    fn = backend_fn(backend)
    L, kd, N = 65536, 2, 16
    g = torch.Generator().manual_seed(7)
    u = torch.randn(1, kd, L, generator=g)
    delta = torch.rand(1, kd, L, generator=g) * 10.0
    delta[:, :, ::7] = 1e-4  # nearly no decay on some steps
    A = -torch.logspace(-2, 2, N).repeat(kd, 1)  # delta*A in [-1000, 0]
    B = torch.randn(1, 1, N, L, generator=g)
    C = torch.randn(1, 1, N, L, generator=g)
    Dv = torch.randn(kd, generator=g)
    xs = [x.clone().requires_grad_() for x in (u, delta, A, B, C, Dv)]
    out, last = fn(*xs, return_last_state=True)
    assert torch.isfinite(out).all() and torch.isfinite(last).all()
    out.sum().backward()
    for name, x in zip(NAMES, xs):
        assert torch.isfinite(x.grad).all(), name
    ref = reference_scan(u[:, :, :8192], delta[:, :, :8192], A, B[..., :8192], C[..., :8192], Dv)
    assert_close_rel(out[:, :, :8192].detach(), ref, 1e-5, "out (first 8192 steps)")


@pytest.mark.parametrize("backend", ["auto", *BACKEND_IDS])
def test_autocast_bf16(backend, monkeypatch):
    if backend == "cpu_kernel":
        require_cpu_kernel()
    monkeypatch.setenv(dispatch.ENV_VAR, backend)
    inputs = [x.to(torch.bfloat16) for x in random_scan_inputs(2, 8, 100, 2, 16, seed=11)]
    xs = [x.clone().requires_grad_() for x in inputs]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, last = selective_scan(*xs, delta_softplus=True, return_last_state=True)
    assert out.dtype == torch.float32 and last.dtype == torch.float32
    ref = reference_scan(*[x.double() for x in inputs], delta_softplus=True)
    assert_close_rel(out, ref, 1e-5, "out")
    out.sum().backward()
    for name, x in zip(NAMES, xs):
        assert x.grad is not None and x.grad.dtype == torch.bfloat16, name


@pytest.mark.parametrize("backend", BACKEND_IDS)
def test_float64_and_noncontiguous_inputs(backend, monkeypatch):
    """float64 inputs compute in float32 and return float32; strided inputs are fine."""
    backend_fn(backend)
    monkeypatch.setenv(dispatch.ENV_VAR, backend)
    inputs = random_scan_inputs(1, 8, 50, 2, 16, dtype=torch.float64, seed=2)
    B = inputs[3].transpose(-1, -2).contiguous().transpose(-1, -2)  # strided (b, G, N, L) view
    out = selective_scan(inputs[0], inputs[1], inputs[2], B, inputs[4], inputs[5], inputs[6],
                         delta_softplus=True)
    assert out.dtype == torch.float32
    ref = reference_scan(*inputs, delta_softplus=True)
    assert_close_rel(out, ref, 1e-5, "out")


@pytest.mark.parametrize("backend", BACKEND_IDS)
def test_public_api_matches_backends(backend, monkeypatch):
    backend_fn(backend)
    inputs = random_scan_inputs(2, 8, 90, 4, 16, seed=4)
    ref = reference_scan(*inputs, delta_softplus=True)
    monkeypatch.setenv(dispatch.ENV_VAR, backend)
    assert selective_scan_backend("cpu") == backend
    out = selective_scan(*inputs[:5], D=inputs[5], delta_bias=inputs[6], delta_softplus=True)
    assert_close_rel(out, ref, 1e-5, backend)


def test_bad_shapes_raise():
    u, delta, A, B, C, D, bias = random_scan_inputs(1, 6, 10, 3, 4)
    B4, C4 = torch.randn(1, 4, 4, 10), torch.randn(1, 4, 4, 10)
    with pytest.raises(ValueError):
        selective_scan(u, delta, A, B4, C4)  # KD=6 not divisible by G=4
    with pytest.raises(ValueError):
        selective_scan(u, delta, A, B, C[:, :1])  # B and C differ
    with pytest.raises(ValueError):
        selective_scan(u, delta[..., :5], A, B, C)
    with pytest.raises(ValueError):
        selective_scan(u, delta, A[:, :3], B, C)


# -------------------------------------------------------------------------- dispatch
def test_dispatch_env_var(monkeypatch):
    automatic = "cpu_kernel" if build_error() is None else "torch"
    monkeypatch.setenv(dispatch.ENV_VAR, "torch")
    assert selective_scan_backend("cpu") == "torch"
    monkeypatch.setenv(dispatch.ENV_VAR, "auto")
    assert selective_scan_backend("cpu") == automatic
    monkeypatch.delenv(dispatch.ENV_VAR)
    assert selective_scan_backend("cpu") == automatic
    # mamba forced on CPU: not applicable -> automatic choice with a warning
    monkeypatch.setenv(dispatch.ENV_VAR, "mamba")
    dispatch._warned.clear()
    with pytest.warns(RuntimeWarning):
        assert selective_scan_backend("cpu") in ("cpu_kernel", "torch")
    monkeypatch.setenv(dispatch.ENV_VAR, "nonsense")
    dispatch._warned.clear()
    with pytest.warns(RuntimeWarning):
        assert selective_scan_backend("cpu") in ("cpu_kernel", "torch")
    # the kernel is for CPU tensors; CUDA tensors never get it
    monkeypatch.setenv(dispatch.ENV_VAR, "cpu_kernel")
    dispatch._warned.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert selective_scan_backend("cuda") in ("mamba", "torch")


def test_dispatch_kernel_unavailable_falls_back(monkeypatch):
    monkeypatch.setattr(scan_cpu, "load_kernel", lambda verbose=False: None)
    monkeypatch.setenv(dispatch.ENV_VAR, "auto")
    assert selective_scan_backend("cpu") == "torch"
    monkeypatch.setenv(dispatch.ENV_VAR, "cpu_kernel")
    dispatch._warned.clear()
    with pytest.warns(RuntimeWarning):
        assert selective_scan_backend("cpu") == "torch"
    inputs = random_scan_inputs(1, 4, 20, 1, 16)
    out = selective_scan(*inputs, delta_softplus=True)
    assert_close_rel(out, reference_scan(*inputs, delta_softplus=True), 1e-5, "out")


def test_unbuildable_kernel_is_a_skip_with_its_reason_and_a_failure_under_ci(monkeypatch):
    monkeypatch.setattr(scan_cpu, "load_kernel", lambda verbose=False: None)
    monkeypatch.setattr(scan_cpu, "_failed", "RuntimeError: Ninja is required to load C++ extensions")
    monkeypatch.delenv(CI_ENV_VAR, raising=False)
    with pytest.raises(pytest.skip.Exception, match="cannot be built here: RuntimeError: Ninja is required"):
        backend_fn("cpu_kernel")
    assert backend_fn("torch") is scan_torch  # the other backend is unaffected
    monkeypatch.setenv(CI_ENV_VAR, "true")
    with pytest.raises(pytest.fail.Exception, match=f"Ninja is required.*because {CI_ENV_VAR} is set"):
        backend_fn("cpu_kernel")


def test_mamba_import_is_guarded(monkeypatch):
    """Any error raised while importing mamba-ssm (not only ImportError) means 'no mamba'."""
    import builtins

    real_import = builtins.__import__

    def broken_import(name, *args, **kwargs):
        if name.startswith("mamba_ssm"):
            raise OSError("libcudart.so: cannot open shared object file")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", broken_import)
    monkeypatch.setattr(dispatch, "_mamba_tried", False)
    monkeypatch.setattr(dispatch, "_mamba_fn", None)
    assert dispatch.mamba_scan_fn() is None
    assert "OSError" in dispatch.mamba_error()
    assert selective_scan_backend("cuda") == "torch"


def _mamba_on_cuda():
    return torch.cuda.is_available() and dispatch.mamba_scan_fn() is not None


@pytest.mark.skipif(not _mamba_on_cuda(), reason="needs CUDA and mamba-ssm")
def test_mamba_backend_on_cuda(monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "auto")
    assert selective_scan_backend("cuda") == "mamba"
    inputs = [x.cuda() for x in random_scan_inputs(2, 64, 300, 4, 16, seed=9)]
    xs = [x.clone().requires_grad_() for x in inputs]
    out, last = selective_scan(*xs, delta_softplus=True, return_last_state=True)
    ref, ref_last = scan_torch(*inputs, delta_softplus=True, return_last_state=True)
    assert_close_rel(out.detach(), ref, 1e-4, "out")
    assert_close_rel(last.detach(), ref_last, 1e-4, "last_state")
    out.sum().backward()
    ys = [x.clone().requires_grad_() for x in inputs]
    scan_torch(*ys, delta_softplus=True).sum().backward()
    for name, x, y in zip(NAMES, xs, ys):
        assert_close_rel(x.grad, y.grad, 1e-3, f"grad {name}")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_torch_path_on_cuda(monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "torch")
    inputs = random_scan_inputs(2, 16, 300, 4, 16, seed=9)
    out = selective_scan(*[x.cuda() for x in inputs], delta_softplus=True)
    assert_close_rel(out.cpu(), reference_scan(*inputs, delta_softplus=True), 1e-4, "out")


@pytest.mark.slow  # two Python processes that build at once
def test_concurrent_kernel_builds(tmp_path):
    """Two processes building the kernel at the same time into an empty cache both succeed. The source is a
    one-line stand-in: the staging of the source and torch's build lock are what is tested. The real kernel
    is built by the first test that runs it whenever its cache folder is new, which is whenever the source,
    torch, the compiler or the flags changed (its name hashes them all)."""
    stand_in = tmp_path / "stand_in.cpp"
    stand_in.write_text('extern "C" int swin_umamba_stand_in() { return 1; }\n')
    code = ("import warnings; warnings.simplefilter('error', RuntimeWarning);"
            f"from swin_umamba.ops import scan_cpu; scan_cpu._SOURCE = {str(stand_in)!r};"
            "assert scan_cpu.load_kernel() is not None and scan_cpu.kernel_error() is None;"
            "print('ok', scan_cpu.build_seconds)")
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(tmp_path / "extensions"))
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0 and "ok" in out, out
