"""Backend choice for CUDA tensors, the Triton self-check, and mamba-ssm's kernel as custom ops.

Runs on the CPU: mamba-ssm's ``selective_scan_cuda`` and the Triton scan are replaced by stand-ins
made of the PyTorch scan (same calling conventions and output layouts), and CUDA's presence is
monkeypatched. What this checks is the logic around the kernels: which backend a device gets and
why, the fallbacks and their warnings, the one-time self-check and its cache, and that the custom
ops' schemas, fake implementations and registered backward trace (opcheck, FakeTensorMode with
CUDA tensors, torch.compile without graph breaks).
"""
from __future__ import annotations

import os
import sys
import types
import warnings

import pytest
import torch
from torch._dynamo.utils import counters

from swin_umamba.ops import describe_scan_backend, dispatch, random_scan_inputs, scan_mamba, selective_scan, selfcheck
from swin_umamba.ops import selective_scan_ref
from swin_umamba.ops.scan_torch import scan_torch

TRITON_MODULE = "swin_umamba.ops.scan_triton"
SCAN_CHECK_ONLY = [("selective scan", selfcheck.check_scan)]  # the cross-scan check has tests of its own


def scan_inputs(batch=2, kd=8, L=40, groups=2, N=4, seed=0):
    return list(random_scan_inputs(batch, kd, L, groups, N, seed=seed))


# ------------------------------------------------------------------------------------ stand-ins
class StandInMambaKernel:
    """``selective_scan_cuda``'s fwd/bwd made of the PyTorch scan: ``x`` holds the last state at
    ``x[:, :, -1, 1::2]`` as the real kernel's does; bwd recomputes through autograd."""

    def __init__(self):
        self.calls = []

    def fwd(self, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        assert z is None
        self.calls.append("fwd")
        out, last = scan_torch(u, delta, A, B, C, D, delta_bias, delta_softplus, return_last_state=True)
        batch, kd, L = u.shape
        x = torch.zeros(batch, kd, scan_mamba._chunks(L), 2 * A.shape[1], dtype=A.dtype)
        x[:, :, -1, 1::2] = last
        return [out, x]

    def bwd(self, u, delta, A, B, C, D, z, delta_bias, dout, x, out, dz, delta_softplus, recompute_out_z):
        assert z is None and out is None and dz is None and not recompute_out_z
        self.calls.append("bwd")
        # a custom op's implementation runs below autograd: re-include it for the stand-in's own use
        below_autograd = torch._C._ForceDispatchKeyGuard(torch._C._dispatch_tls_local_include_set(),
                                                         torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastCPU))
        with below_autograd, torch.enable_grad():
            xs = [t.detach().requires_grad_() for t in (u, delta, A, B, C, D, delta_bias)]
            y = scan_torch(*xs, delta_softplus=delta_softplus)
            grads = torch.autograd.grad(y, xs, dout)
        return [g.contiguous() for g in grads]  # the kernel's outputs are contiguous


@pytest.fixture
def mamba_kernel(monkeypatch):
    kernel = StandInMambaKernel()
    monkeypatch.setattr(scan_mamba, "_kernel", kernel)
    return kernel


def fake_triton_module(available=(True, "Triton 3.x imports"), scan=None):
    module = types.ModuleType(TRITON_MODULE)
    module.triton_available = lambda device="cuda": available
    module.selective_scan_triton = scan or (lambda *a, **kw: scan_torch(
        *(t if t is None else t.float() for t in a), **kw))
    return module


@pytest.fixture
def env(monkeypatch):
    """A machine whose CUDA and whose mamba-ssm / Triton presence the test sets."""
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    selfcheck.clear()
    dispatch._warned.clear()

    class Env:
        def mamba(self, present: bool):
            monkeypatch.setattr(dispatch, "_mamba_tried", True)
            monkeypatch.setattr(dispatch, "_mamba_fn", object() if present else None)
            monkeypatch.setattr(dispatch, "_mamba_error", None if present else "ImportError: No module named 'mamba_ssm'")

        def triton(self, module):
            monkeypatch.setitem(sys.modules, TRITON_MODULE, module)  # None: the import raises ImportError

        def checks(self, *results):
            """Self-check stand-ins: a list of mismatches, or an exception to raise."""
            def make(result):
                def check(device):
                    if isinstance(result, Exception):
                        raise result
                    return result
                return check
            monkeypatch.setattr(selfcheck, "CHECKS", [(f"check {i}", make(r)) for i, r in enumerate(results)])

        def force(self, value):
            monkeypatch.setenv(dispatch.ENV_VAR, value)

    yield Env()
    selfcheck.clear()


def no_warnings():
    return warnings.catch_warnings(record=True)


# ---------------------------------------------------------------------------- automatic choice
def test_mamba_preferred_where_it_imports(env):
    env.mamba(True)
    env.triton(fake_triton_module())
    env.checks([])
    name, why = describe_scan_backend("cuda:0")
    assert name == "mamba" and "mamba-ssm" in why
    assert selfcheck._results == {}  # Triton is not even checked


def test_deterministic_algorithms_get_triton_over_mamba_said_once(env, deterministic):
    env.mamba(True)
    env.triton(fake_triton_module())
    env.checks([])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        choices = [describe_scan_backend("cuda:0") for _ in range(3)]
    assert {name for name, _ in choices} == {"triton"} and "deterministic" in choices[0][1]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "use_deterministic_algorithms(True)" in messages[0] and "Triton" in messages[0]
    torch.use_deterministic_algorithms(False)
    assert describe_scan_backend("cuda:0")[0] == "mamba"


def test_deterministic_algorithms_without_triton_keep_mamba_and_say_the_gradients_vary(env, deterministic):
    env.mamba(True)
    env.triton(None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = [describe_scan_backend("cuda:0")[0] for _ in range(2)]
    assert names == ["mamba", "mamba"]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "not bit-identical" in messages[0] and "does not import" in messages[0]


def test_triton_without_mamba_after_its_self_check(env):
    env.mamba(False)
    env.triton(fake_triton_module())
    env.checks([])
    name, why = describe_scan_backend("cuda:0")
    assert name == "triton"
    assert "mamba-ssm does not import" in why and "self-check" in why
    assert selfcheck._results["cuda:0"][0] is True


def test_torch_without_mamba_and_triton(env):
    env.mamba(False)
    env.triton(None)
    name, why = describe_scan_backend("cuda:0")
    assert name == "torch" and "Triton scan does not import" in why


def test_triton_reporting_itself_unavailable(env):
    env.mamba(False)
    env.triton(fake_triton_module(available=(False, "triton is not installed")))
    assert describe_scan_backend("cuda:0") == ("torch", "mamba-ssm does not import (ImportError: No module named "
                                                        "'mamba_ssm'); Triton not used: triton is not installed")


def test_no_cuda_means_no_triton(env, monkeypatch):
    env.mamba(False)
    env.triton(fake_triton_module())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    name, why = describe_scan_backend("cuda:0")
    assert name == "torch" and "CUDA is not available" in why


@pytest.mark.parametrize("failure,expected", [
    (["out: max abs error 0.5 against max |reference| 1"], "disagrees with PyTorch"),
    (RuntimeError("PassManager::run failed\nmore lines"), "failed to run"),
])
def test_failing_self_check_warns_once_and_falls_back(env, failure, expected):
    env.mamba(False)
    env.triton(fake_triton_module())
    env.checks([], failure)
    with pytest.warns(RuntimeWarning, match=expected):
        name, why = describe_scan_backend("cuda:0")
    assert name == "torch" and expected in why and "check 1" in why
    with no_warnings() as caught:
        warnings.simplefilter("always")
        assert describe_scan_backend("cuda:0")[0] == "torch"
    assert not caught  # cached: no second check, no second warning
    # another device is checked on its own
    env.checks([])
    assert describe_scan_backend("cuda:1")[0] == "triton"


def test_self_check_runs_once_per_device(env):
    env.mamba(False)
    env.triton(fake_triton_module())
    runs = []
    env.checks([])
    selfcheck.CHECKS[0] = ("counting", lambda device: runs.append(device) or [])
    for _ in range(3):
        describe_scan_backend("cuda:0")
    describe_scan_backend("cuda:1")
    assert runs == ["cuda:0", "cuda:1"]


# ------------------------------------------------------------------------------- forced values
def test_forced_triton_over_mamba(env):
    env.mamba(True)
    env.triton(fake_triton_module())
    env.checks([])
    env.force("triton")
    name, why = describe_scan_backend("cuda:0")
    assert name == "triton" and why.startswith(f"{dispatch.ENV_VAR}=triton")


def test_forced_triton_failing_self_check_falls_back_to_mamba(env):
    env.mamba(True)
    env.triton(fake_triton_module())
    env.checks(["dB: non-finite values"])
    env.force("triton")
    with pytest.warns(RuntimeWarning):
        name, why = describe_scan_backend("cuda:0")
    assert name == "mamba" and "does not apply" in why


def test_forced_triton_on_cpu_tensors_warns(env):
    env.triton(fake_triton_module())
    env.force("triton")
    with pytest.warns(RuntimeWarning, match="triton needs CUDA tensors"):
        name, _ = describe_scan_backend("cpu")
    assert name in ("cpu_kernel", "torch")


def test_forced_mamba_without_mamba_gets_triton(env):
    env.mamba(False)
    env.triton(fake_triton_module())
    env.checks([])
    env.force("mamba")
    with pytest.warns(RuntimeWarning, match="mamba needs CUDA tensors and mamba-ssm"):
        assert describe_scan_backend("cuda:0")[0] == "triton"


def test_forced_torch_and_invalid_values(env):
    env.mamba(True)
    env.force("torch")
    assert describe_scan_backend("cuda:0") == ("torch", f"{dispatch.ENV_VAR}=torch")
    env.force(" Torch ")
    assert describe_scan_backend("cuda:0")[0] == "torch"
    env.force("tritonn")
    with pytest.warns(RuntimeWarning, match="ignoring"):
        assert describe_scan_backend("cuda:0")[0] == "mamba"


# ---------------------------------------------------------------------- the self-check itself
def test_self_check_passes_a_correct_kernel(monkeypatch):
    monkeypatch.setattr(selfcheck, "CHECKS", SCAN_CHECK_ONLY)
    monkeypatch.setitem(sys.modules, TRITON_MODULE, fake_triton_module())
    ok, reason = selfcheck._run("cpu")
    assert ok, reason


@pytest.mark.parametrize("breakage,what", [
    (lambda out, last: (out * 1.01, last), "out:"),
    (lambda out, last: (out, last + 1.0), "last_state:"),
    (lambda out, last: (out + (out - out.detach()) * 0.5, last), "du:"),  # wrong gradients, right values
    (lambda out, last: (out * float("nan"), last), "non-finite"),
])
def test_self_check_catches_a_wrong_kernel(monkeypatch, breakage, what):
    def broken(*args, **kw):
        out, last = scan_torch(*args, **kw)
        return breakage(out, last)

    monkeypatch.setattr(selfcheck, "CHECKS", SCAN_CHECK_ONLY)
    monkeypatch.setitem(sys.modules, TRITON_MODULE, fake_triton_module(scan=broken))
    ok, reason = selfcheck._run("cpu")
    assert not ok and what in reason and "disagrees" in reason


def test_self_check_keeps_grad_mode_and_rng(monkeypatch):
    monkeypatch.setattr(selfcheck, "CHECKS", SCAN_CHECK_ONLY)
    monkeypatch.setitem(sys.modules, TRITON_MODULE, fake_triton_module())
    torch.manual_seed(5)
    want = torch.rand(3)
    torch.manual_seed(5)
    with torch.inference_mode():
        ok, reason = selfcheck._run("cpu")
        assert torch.is_inference_mode_enabled()
    assert ok, reason
    torch.testing.assert_close(torch.rand(3), want)


# --------------------------------------------------------------- what selective_scan passes on
def test_triton_backend_gets_half_inputs_without_copies(monkeypatch):
    seen = {}

    def record(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False, return_last_state=False):
        seen.update(u=u.dtype, delta=delta.dtype, A=A.dtype, B=B.dtype, C=C.dtype, D=D.dtype, bias=delta_bias.dtype)
        return scan_torch(u.float(), delta.float(), A, B.float(), C.float(), D, delta_bias, delta_softplus,
                          return_last_state)

    monkeypatch.setitem(sys.modules, TRITON_MODULE, fake_triton_module(scan=record))
    monkeypatch.setattr(dispatch, "selective_scan_backend", lambda device, n_state=None: "triton")
    inputs = scan_inputs()
    half = [t.half() for t in inputs]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = selective_scan(*half, delta_softplus=True)
    assert out.dtype == torch.float32
    assert seen == dict(u=torch.float16, delta=torch.float16, A=torch.float32, B=torch.float16, C=torch.float16,
                        D=torch.float32, bias=torch.float32)
    # a mix of dtypes, or float64, is cast to float32
    selective_scan(half[0], *inputs[1:], delta_softplus=True)
    assert seen["u"] == seen["B"] == torch.float32
    selective_scan(*[t.double() for t in inputs], delta_softplus=True)
    assert seen["u"] == torch.float32


# ----------------------------------------------------------------- mamba-ssm's kernel as ops
def test_mamba_backend_through_the_ops(monkeypatch, mamba_kernel):
    monkeypatch.setattr(dispatch, "selective_scan_backend", lambda device, n_state=None: "mamba")
    inputs = scan_inputs()
    xs = [t.clone().requires_grad_() for t in inputs]
    out, last = selective_scan(*xs, delta_softplus=True, return_last_state=True)
    ref, ref_last = selective_scan_ref(*[t.double() for t in inputs], delta_softplus=True, return_last_state=True)
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(last.double(), ref_last, rtol=1e-5, atol=1e-5)
    assert not last.requires_grad  # as mamba-ssm: the last state carries no gradient
    out.sum().backward()
    assert mamba_kernel.calls == ["fwd", "bwd"]
    ys = [t.clone().requires_grad_() for t in inputs]
    scan_torch(*ys, delta_softplus=True).sum().backward()
    for x, y in zip(xs, ys):
        torch.testing.assert_close(x.grad, y.grad)


def test_mamba_wrapper_without_D_bias_and_with_one_group(mamba_kernel):
    u, delta, A, B, C, _, _ = [t.requires_grad_() for t in scan_inputs(groups=1)]
    out = scan_mamba.selective_scan_mamba(u, delta, A, B[:, 0], C[:, 0], delta_softplus=True)
    torch.testing.assert_close(out, scan_torch(u, delta, A, B, C, delta_softplus=True))
    out.sum().backward()
    assert B.grad.shape == B.shape and u.grad is not None


def test_mamba_ops_pass_opcheck(mamba_kernel):
    u, delta, A, B, C, D, bias = scan_inputs(L=2100)  # two of the kernel's 2048-step chunks
    args = [t.requires_grad_() for t in (u, delta, A, B, C, D, bias)]
    torch.library.opcheck(torch.ops.swin_umamba.mamba_scan_fwd, (*args, True))
    out, x = torch.ops.swin_umamba.mamba_scan_fwd(*[a.detach() for a in args], True)
    assert x.shape == (2, 8, 2, 8)
    torch.library.opcheck(torch.ops.swin_umamba.mamba_scan_bwd,
                          (*[a.detach() for a in args], torch.randn_like(out), x, True))


def test_mamba_fakes_give_cuda_shapes_without_cuda():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        u = torch.empty(3, 8, 4097, device="cuda", dtype=torch.float16)
        A = torch.empty(8, 16, device="cuda")
        B = torch.empty(3, 4, 16, 4097, device="cuda", dtype=torch.float16)
        D = torch.empty(8, device="cuda")
        out, x = torch.ops.swin_umamba.mamba_scan_fwd(u, u, A, B, B, D, D, True)
        assert out.shape == u.shape and out.dtype == torch.float16 and out.device.type == "cuda"
        assert x.shape == (3, 8, 3, 32) and x.dtype == torch.float32
        grads = torch.ops.swin_umamba.mamba_scan_bwd(u, u, A, B, B, D, D, out, x, True)
        assert [g.shape for g in grads] == [u.shape, u.shape, A.shape, B.shape, B.shape, D.shape, D.shape]


def test_compiled_mamba_scan_is_one_graph(monkeypatch, mamba_kernel):
    monkeypatch.setattr(dispatch, "selective_scan_backend", lambda device, n_state=None: "mamba")
    torch._dynamo.reset()
    counters.clear()

    def step(u, delta, A, B, C, D, bias):
        y = selective_scan(torch.sin(u), delta, A, B, C, D, bias, delta_softplus=True)
        return (y * y).sum()

    inputs = scan_inputs()
    xs = [t.clone().requires_grad_() for t in inputs]
    torch.compile(step, backend="aot_eager", fullgraph=True)(*xs).backward()
    assert not counters["graph_break"] and counters["stats"]["unique_graphs"] == 1
    ys = [t.clone().requires_grad_() for t in inputs]
    step(*ys).backward()
    for x, y in zip(xs, ys):
        torch.testing.assert_close(x.grad, y.grad)
    torch._dynamo.reset()


def test_choice_under_compile_runs_the_self_check_for_real(env, monkeypatch):
    """A first choice made while Dynamo traces runs the self-check once, outside the graph."""
    # Dynamo itself asks CUDA for its RNG state when told CUDA is present: keep CUDA's real answer
    # here and let the dispatcher go straight to the self-check
    monkeypatch.undo()
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    monkeypatch.setattr(dispatch, "triton_usable", selfcheck.triton_self_check)
    env.mamba(False)
    runs = []
    env.checks([])
    selfcheck.CHECKS[0] = ("counting", lambda device: runs.append(device) or [])
    torch._dynamo.reset()
    counters.clear()

    def f(x):
        return x * (2.0 if describe_scan_backend("cuda:0")[0] == "triton" else 3.0)

    x = torch.randn(4)
    torch.testing.assert_close(torch.compile(f, backend="eager", fullgraph=True)(x), 2 * x)
    assert runs == ["cuda:0"] and not counters["graph_break"]
    torch._dynamo.reset()


@pytest.mark.slow
def test_self_check_passes_the_real_triton_kernels_under_the_interpreter():
    """The self-check's calls fit the real Triton scan: under the interpreter, on CPU tensors, it passes."""
    pytest.importorskip("triton", reason="Triton does not import here")
    import subprocess

    code = ("from swin_umamba.ops import selfcheck; ok, reason = selfcheck._run('cpu'); "
            "print(reason); raise SystemExit(0 if ok else 1)")
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "passed their self-check on cpu" in proc.stdout
