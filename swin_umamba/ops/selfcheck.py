"""One-time check of the Triton kernels on a device before training relies on them.

A Triton kernel is compiled for the GPU it first runs on; a compiler or driver problem there, or a
wrong result on an architecture the kernels were never run on, must not break a user's training.
:func:`triton_self_check` runs each Triton path once on a small input against its
reference (forward and one backward), and caches the verdict per device. On a failure it warns
once with the reason; the dispatcher then uses another backend.
"""
from __future__ import annotations

import warnings

import torch

from swin_umamba.ops.scan_ref import random_scan_grads, random_scan_inputs, selective_scan_ref

# max |triton - reference| <= RTOL * max |reference|, per output and gradient: loose enough for
# float32 summation-order differences, tight enough to catch a wrong kernel
RTOL = 1e-3

_results: dict[str, tuple[bool, str]] = {}


def device_key(device) -> str:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return str(device)


def _inputs(device):
    """Small inputs distributed like SS2D's (L spans several chunks with a ragged tail)."""
    inputs = random_scan_inputs(2, 4, 150, groups=2, state=16, device=device)
    return list(inputs), random_scan_grads(inputs)[0]


def compare(name: str, actual: torch.Tensor, expected: torch.Tensor, rtol: float = RTOL) -> str | None:
    """None when ``actual`` is finite and within ``rtol`` of ``expected`` (relative to its largest
    magnitude), else a one-line description of the mismatch."""
    if actual.shape != expected.shape:
        return f"{name}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
    actual, expected = actual.detach().double(), expected.detach().double()
    if not torch.isfinite(actual).all():
        return f"{name}: non-finite values"
    err = (actual - expected).abs().max().item() if actual.numel() else 0.0
    scale = expected.abs().max().item() if expected.numel() else 0.0
    if err > rtol * scale + 1e-30:
        return f"{name}: max abs error {err:.3g} against max |reference| {scale:.3g}"
    return None


def _with_grads(fn, inputs, gout, **kw):
    xs = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*xs, **kw)
    res = out if isinstance(out, tuple) else (out,)
    (res[0] * gout).sum().backward()
    return [r.detach() for r in res], [x.grad for x in xs]


def check_scan(device) -> list[str]:
    """Mismatches of the Triton scan against the reference scan (forward, last state, seven gradients)."""
    from swin_umamba.ops.scan_triton import selective_scan_triton

    inputs, gout = _inputs(device)
    kw = dict(delta_softplus=True, return_last_state=True)
    (out, last), grads = _with_grads(selective_scan_triton, inputs, gout, **kw)
    (ref, ref_last), ref_grads = _with_grads(selective_scan_ref, inputs, gout, **kw)
    names = ("du", "ddelta", "dA", "dB", "dC", "dD", "ddelta_bias")
    found = [compare("out", out, ref), compare("last_state", last, ref_last)]
    found += [compare(n, g, r) for n, g, r in zip(names, grads, ref_grads)]
    return [m for m in found if m]


def check_cross_scan(device) -> list[str]:
    """Mismatches of the fused cross-scan and cross-merge against their PyTorch versions (odd H != W)."""
    from swin_umamba.ops.cross_scan import cross_merge_torch, cross_scan_torch
    from swin_umamba.ops.cross_scan_triton import cross_merge_triton, cross_scan_triton

    g = torch.Generator().manual_seed(1)
    H, W = 7, 5
    x = torch.randn(2, 3, H, W, generator=g).to(device)
    y = torch.randn(2, 4, 3, H * W, generator=g).to(device)
    found = []
    for name, fn, ref, arg in (("cross-scan", cross_scan_triton, cross_scan_torch, x),
                               ("cross-merge", lambda t: cross_merge_triton(t, H, W),
                                lambda t: cross_merge_torch(t, H, W), y)):
        gout = torch.randn(ref(arg).shape, generator=g).to(device)
        (out,), (grad,) = _with_grads(fn, [arg], gout)
        (want,), (want_grad,) = _with_grads(ref, [arg], gout)
        found += [compare(name, out, want), compare(f"{name} gradient", grad, want_grad)]
    return [m for m in found if m]


# each entry: (what is checked, function of the device returning a list of mismatches)
CHECKS = [("selective scan", check_scan), ("cross-scan and cross-merge", check_cross_scan)]


def _run(device) -> tuple[bool, str]:
    key = device_key(device)
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(torch.device(key).type, enabled=False):
        for what, check in CHECKS:
            try:
                mismatches = check(key)
            except Exception as exc:  # a compile error, a launch failure, anything: do not use the kernel
                first = (str(exc).strip().splitlines() or [""])[0][:300]
                return False, f"the Triton {what} failed to run on {key}: {type(exc).__name__}: {first}"
            if mismatches:
                return False, f"the Triton {what} disagrees with PyTorch on {key}: {'; '.join(mismatches)}"
    return True, f"the Triton kernels passed their self-check on {key}"


def triton_self_check(device) -> tuple[bool, str]:
    """(passed, reason) for the Triton kernels on ``device``; runs once per device, warns once on failure."""
    key = device_key(device)
    if key not in _results:
        ok, reason = _run(key)
        _results[key] = (ok, reason)
        if not ok:
            warnings.warn(f"swin_umamba: {reason}; not using the Triton kernels there", RuntimeWarning, stacklevel=2)
    return _results[key]


def clear() -> None:
    """Forget all verdicts (tests; a process that changed its Triton set-up)."""
    _results.clear()
