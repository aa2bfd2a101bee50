"""Selective scan entry point and backend choice.

``selective_scan(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False,
return_last_state=False)`` has the semantics and shapes of mamba-ssm's ``selective_scan_fn``:
u, delta (batch, KD, L); A (KD, N); B, C (batch, G, N, L) with channel d using group
d // (KD // G); D, delta_bias (KD,). It always computes in float32 (inputs of any floating
dtype are cast, autocast is disabled inside) and returns float32 ``out`` (batch, KD, L), or
``(out, last_state)`` with last_state (batch, KD, N) when ``return_last_state``.

Backends, chosen per call from the device of ``u``:

``mamba``
    mamba-ssm's CUDA kernel (``mamba_ssm.ops.selective_scan_interface.selective_scan_fn``),
    used for CUDA tensors when it imports. mamba-ssm is optional and never required.
``cpu_kernel``
    our compiled C++ kernel (``csrc/selective_scan_cpu.cpp``, built at first use), used for
    CPU tensors when it can be built and loaded.
``torch``
    the pure-PyTorch chunked parallel scan (``scan_torch.py``): the fallback everywhere,
    and the path for CUDA without mamba-ssm.

Environment variable ``SWIN_UMAMBA_SCAN`` = ``auto`` (default) | ``torch`` | ``cpu_kernel`` |
``mamba`` forces a backend. A forced backend that does not apply (``cpu_kernel`` for CUDA
tensors or when it cannot be built, ``mamba`` for CPU tensors or when mamba-ssm does not
import) falls back to the automatic choice with a one-time warning.
:func:`selective_scan_backend` reports which backend a device would get.
"""
from __future__ import annotations

import os
import warnings

import torch

from swin_umamba.ops.scan_torch import scan_torch

ENV_VAR = "SWIN_UMAMBA_SCAN"
BACKENDS = ("auto", "torch", "cpu_kernel", "mamba")

_mamba_fn = None
_mamba_error: str | None = None
_mamba_tried = False
_warned: set[str] = set()


def _warn_once(msg: str) -> None:
    if msg not in _warned:
        _warned.add(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


def mamba_scan_fn():
    """mamba-ssm's ``selective_scan_fn`` or ``None`` (any import error is swallowed)."""
    global _mamba_fn, _mamba_error, _mamba_tried
    if not _mamba_tried:
        _mamba_tried = True
        try:
            from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

            _mamba_fn = selective_scan_fn
        except BaseException as exc:  # ImportError, OSError from a missing CUDA library, ...
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            _mamba_error = f"{type(exc).__name__}: {exc}"
    return _mamba_fn


def mamba_error() -> str | None:
    mamba_scan_fn()
    return _mamba_error


def requested_backend() -> str:
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in BACKENDS:
        _warn_once(f"swin_umamba: ignoring {ENV_VAR}={value!r} (expected one of {', '.join(BACKENDS)})")
        return "auto"
    return value


def _cpu_kernel_available() -> bool:
    from swin_umamba.ops.scan_cpu import load_kernel

    return load_kernel() is not None


def _auto(device: torch.device) -> str:
    if device.type == "cuda":
        return "mamba" if mamba_scan_fn() is not None else "torch"
    if device.type == "cpu" and _cpu_kernel_available():
        return "cpu_kernel"
    return "torch"


def selective_scan_backend(device="cpu", n_state: int | None = None) -> str:
    """Name of the backend (``mamba``, ``cpu_kernel`` or ``torch``) used for tensors on
    ``device``, honouring ``SWIN_UMAMBA_SCAN``. May build the CPU kernel (first call)."""
    device = torch.device(device)
    req = requested_backend()
    if req == "torch":
        return "torch"
    if req == "cpu_kernel":
        if device.type == "cpu" and _cpu_kernel_available() and (n_state is None or n_state <= 256):
            return "cpu_kernel"
        _warn_once(f"swin_umamba: {ENV_VAR}=cpu_kernel does not apply to {device.type} tensors "
                   "or the kernel is unavailable; choosing automatically")
    elif req == "mamba":
        if device.type == "cuda" and mamba_scan_fn() is not None:
            return "mamba"
        _warn_once(f"swin_umamba: {ENV_VAR}=mamba needs CUDA tensors and mamba-ssm "
                   f"({mamba_error() or 'device is ' + device.type}); choosing automatically")
    choice = _auto(device)
    if choice == "cpu_kernel" and n_state is not None and n_state > 256:
        return "torch"
    return choice


def selective_scan(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False):
    """Selective scan with mamba-ssm ``selective_scan_fn`` semantics; see the module docstring."""
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"u and delta must be (batch, KD, L), got {tuple(u.shape)} and {tuple(delta.shape)}")
    batch, kd, L = u.shape
    if A.dim() != 2 or A.shape[0] != kd:
        raise ValueError(f"A must be (KD, N) with KD={kd}, got {tuple(A.shape)}")
    N = A.shape[1]
    if B.dim() == 3:  # (batch, N, L): one group
        B = B.unsqueeze(1)
    if C.dim() == 3:
        C = C.unsqueeze(1)
    if B.dim() != 4 or B.shape[0] != batch or B.shape[2:] != (N, L) or C.shape != B.shape:
        raise ValueError(f"B and C must be (batch, G, N, L) = ({batch}, G, {N}, {L}), "
                         f"got {tuple(B.shape)} and {tuple(C.shape)}")
    if kd % B.shape[1]:
        raise ValueError(f"KD={kd} is not divisible by the number of groups G={B.shape[1]}")
    backend = selective_scan_backend(u.device, N)
    with torch.autocast(device_type=u.device.type, enabled=False):
        f32 = [None if t is None else t.float() for t in (u, delta, A, B, C, D, delta_bias)]
        if backend == "mamba":
            f32 = [None if t is None else t.contiguous() for t in f32]
            u_, delta_, A_, B_, C_, D_, bias_ = f32
            res = mamba_scan_fn()(u_, delta_, A_, B_, C_, D=D_, z=None, delta_bias=bias_,
                                  delta_softplus=delta_softplus, return_last_state=return_last_state)
        elif backend == "cpu_kernel":
            from swin_umamba.ops.scan_cpu import scan_cpu_kernel

            res = scan_cpu_kernel(*f32, delta_softplus=delta_softplus, return_last_state=return_last_state)
        else:
            res = scan_torch(*f32, delta_softplus=delta_softplus, return_last_state=return_last_state)
    if return_last_state:
        out, last = res
        return out.float(), last.float()
    return res.float()
