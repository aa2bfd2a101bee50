"""Selective scan entry point and backend choice.

``selective_scan(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False,
return_last_state=False)`` has the semantics and shapes of mamba-ssm's ``selective_scan_fn``:
u, delta (batch, KD, L); A (KD, N); B, C (batch, G, N, L) with channel d using group
d // (KD // G); D, delta_bias (KD,). It always computes in float32 (inputs of any floating
dtype are cast, autocast is disabled inside) and returns float32 ``out`` (batch, KD, L), or
``(out, last_state)`` with last_state (batch, KD, N) when ``return_last_state``.

Backends, chosen per call from the device of ``u``:

``mamba``
    mamba-ssm's CUDA kernel (``selective_scan_cuda``, as mamba-ssm builds it), called through
    the custom ops of ``scan_mamba.py`` so that torch.compile traces it; used for CUDA tensors
    when mamba-ssm imports. mamba-ssm is optional and never required.
``triton``
    the Triton kernels of ``scan_triton.py`` (Triton ships with torch's Linux CUDA builds), for
    CUDA tensors when mamba-ssm does not import, and instead of mamba-ssm's kernel under
    ``torch.use_deterministic_algorithms(True)`` (mamba-ssm's backward adds gradients atomically,
    in no fixed order; the Triton backward then sums them in a fixed order; said once). Before a device first uses them they run once
    on a small input against the PyTorch path (``selfcheck.py``); on an error or a mismatch
    there is one warning with the reason and the device gets the PyTorch path instead.
``cpu_kernel``
    our compiled C++ kernel (``csrc/selective_scan_cpu.cpp``, built at first use), used for
    CPU tensors when it can be built and loaded.
``torch``
    the pure-PyTorch chunked parallel scan (``scan_torch.py``): the fallback everywhere.

Environment variable ``SWIN_UMAMBA_SCAN`` = ``auto`` (default) | ``torch`` | ``cpu_kernel`` |
``mamba`` | ``triton`` forces a backend. A forced backend that does not apply (``cpu_kernel`` for
CUDA tensors or when it cannot be built, ``mamba`` or ``triton`` for CPU tensors, ``mamba`` when
mamba-ssm does not import, ``triton`` when Triton is unusable or fails its self-check) falls back
to the automatic choice with a one-time warning. :func:`describe_scan_backend` says which backend
a device gets and why; :func:`selective_scan_backend` gives only the name.
"""
from __future__ import annotations

import os
import warnings

import torch

from swin_umamba.environment import SCAN_BACKEND_VAR as ENV_VAR
from swin_umamba.ops.scan_torch import scan_torch

BACKENDS = ("auto", "torch", "cpu_kernel", "mamba", "triton")
# the CPU kernel keeps the states of a channel in registers: up to this many
CPU_KERNEL_MAX_STATE = 256

_mamba_fn = None
_mamba_error: str | None = None
_mamba_tried = False
_warned: set[str] = set()


def _warn_once(msg: str) -> None:
    if msg not in _warned:
        _warned.add(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


def mamba_scan_fn():
    """mamba-ssm's ``selective_scan_fn`` or ``None`` (any import error is swallowed). Its import
    also imports the compiled ``selective_scan_cuda`` that the ``mamba`` backend calls."""
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
    return _validated(os.environ.get(ENV_VAR, "auto"))


def _validated(value: str) -> str:
    value = value.strip().lower() or "auto"
    if value not in BACKENDS:
        _warn_once(f"swin_umamba: ignoring {ENV_VAR}={value!r} (expected one of {', '.join(BACKENDS)})")
        return "auto"
    return value


def _cpu_kernel_available() -> bool:
    from swin_umamba.ops.scan_cpu import load_kernel

    return load_kernel() is not None


def triton_usable(device) -> tuple[bool, str]:
    """(usable, reason) for the Triton kernels on a CUDA ``device``: CUDA present, Triton importable
    and the one-time self-check on that device passed."""
    if not torch.cuda.is_available():
        return False, "CUDA is not available"
    try:
        from swin_umamba.ops.scan_triton import triton_available
    except Exception as exc:  # a broken Triton install can fail in many ways
        return False, f"the Triton scan does not import ({type(exc).__name__}: {exc})"
    ok, why = triton_available(device)
    if not ok:
        return False, why or "Triton is unavailable"
    from swin_umamba.ops.selfcheck import triton_self_check

    return triton_self_check(device)


def _first_line(text: str | None) -> str:
    return ((text or "").strip().splitlines() or ["unknown reason"])[0][:200]


def _mamba_reason() -> str:
    return f"mamba-ssm does not import ({_first_line(mamba_error())})"


DETERMINISTIC_CHOICE = ("swin_umamba: torch.use_deterministic_algorithms(True): the selective scan runs on the "
                        "Triton kernels, whose gradients are bit-identical run to run, instead of mamba-ssm's "
                        "kernel, whose backward adds them atomically in no fixed order")
NOT_DETERMINISTIC = ("swin_umamba: torch.use_deterministic_algorithms(True), but the selective scan's gradients "
                     "are not bit-identical run to run: mamba-ssm's kernel adds them atomically, and the Triton "
                     "kernels that would not cannot run here ({why})")


def _auto(device: torch.device, n_state: int | None, deterministic: bool = False) -> tuple[str, str]:
    if device.type == "cuda":
        if mamba_scan_fn() is not None:
            if deterministic:
                ok, why = triton_usable(device)
                if ok:
                    _warn_once(DETERMINISTIC_CHOICE)
                    return "triton", f"deterministic algorithms requested; {why}"
                _warn_once(NOT_DETERMINISTIC.format(why=why))
            return "mamba", "mamba-ssm's CUDA kernel imports (preferred over Triton until measured otherwise)"
        ok, why = triton_usable(device)
        if ok:
            return "triton", f"{_mamba_reason()}; {why}"
        return "torch", f"{_mamba_reason()}; Triton not used: {why}"
    if device.type == "cpu":
        if n_state is not None and n_state > CPU_KERNEL_MAX_STATE:
            return "torch", f"N={n_state} states exceed the CPU kernel's {CPU_KERNEL_MAX_STATE}"
        if _cpu_kernel_available():
            return "cpu_kernel", "the compiled CPU kernel is built and loaded"
        from swin_umamba.ops.scan_cpu import kernel_error

        return "torch", f"the CPU kernel could not be built ({_first_line(kernel_error())})"
    return "torch", f"no kernel for {device.type} tensors"


@torch.compiler.assume_constant_result
def _describe(device_type: str, index: int, n_state: int, requested: str,
              deterministic: bool = False) -> tuple[str, str]:
    """The choice for one device; under torch.compile it runs once at tracing time and its result is
    a constant of the graph (it may build the CPU kernel or run the Triton self-check: real work
    that must not be traced). ``index`` and ``n_state`` are -1 for 'not given'; ``deterministic``:
    torch.use_deterministic_algorithms is on."""
    device = torch.device(device_type, index) if index >= 0 else torch.device(device_type)
    n = None if n_state < 0 else n_state
    req = _validated(requested)
    if req == "torch":
        return "torch", f"{ENV_VAR}=torch"
    if req == "cpu_kernel":
        if device.type == "cpu" and (n is None or n <= CPU_KERNEL_MAX_STATE) and _cpu_kernel_available():
            return "cpu_kernel", f"{ENV_VAR}=cpu_kernel"
        _warn_once(f"swin_umamba: {ENV_VAR}=cpu_kernel does not apply to {device.type} tensors "
                   "or the kernel is unavailable; choosing automatically")
    elif req == "mamba":
        if device.type == "cuda" and mamba_scan_fn() is not None:
            return "mamba", f"{ENV_VAR}=mamba"
        _warn_once(f"swin_umamba: {ENV_VAR}=mamba needs CUDA tensors and mamba-ssm "
                   f"({mamba_error() or 'device is ' + device.type}); choosing automatically")
    elif req == "triton":
        ok, why = triton_usable(device) if device.type == "cuda" else (False, f"device is {device.type}")
        if ok:
            return "triton", f"{ENV_VAR}=triton; {why}"
        _warn_once(f"swin_umamba: {ENV_VAR}=triton needs CUDA tensors and working Triton kernels "
                   f"({why}); choosing automatically")
    name, why = _auto(device, n, deterministic)
    return name, why if req == "auto" else f"{ENV_VAR}={req} does not apply; {why}"


def describe_scan_backend(device="cpu", n_state: int | None = None) -> tuple[str, str]:
    """(backend, reason): the backend (``mamba``, ``triton``, ``cpu_kernel`` or ``torch``) used for
    tensors on ``device`` and why, honouring ``SWIN_UMAMBA_SCAN``. The first call for a device may
    build the CPU kernel or run the Triton self-check."""
    device = torch.device(device)
    index = -1 if device.index is None else device.index
    return _describe(device.type, index, -1 if n_state is None else n_state, os.environ.get(ENV_VAR, "auto"),
                     torch.are_deterministic_algorithms_enabled())


def selective_scan_backend(device="cpu", n_state: int | None = None) -> str:
    """Name of the backend :func:`describe_scan_backend` chooses for ``device``."""
    return describe_scan_backend(device, n_state)[0]


def _triton_dtypes(u, delta, B, C):
    """The Triton kernels read float32, float16 or bfloat16 directly (no float32 copy of the big
    tensors); anything else, or a mix, is cast to float32."""
    dtypes = {t.dtype for t in (u, delta, B, C)}
    if len(dtypes) == 1 and dtypes <= {torch.float32, torch.float16, torch.bfloat16}:
        return u, delta, B, C
    return u.float(), delta.float(), B.float(), C.float()


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
        small = [None if t is None else t.float() for t in (A, D, delta_bias)]
        if backend == "triton":
            from swin_umamba.ops.scan_triton import selective_scan_triton

            u_, delta_, B_, C_ = _triton_dtypes(u, delta, B, C)
            res = selective_scan_triton(u_, delta_, small[0], B_, C_, D=small[1], delta_bias=small[2],
                                        delta_softplus=delta_softplus, return_last_state=return_last_state)
        else:
            u_, delta_, B_, C_ = (t.float() for t in (u, delta, B, C))
            f32 = [u_, delta_, small[0], B_, C_, small[1], small[2]]
            if backend == "mamba":
                from swin_umamba.ops.scan_mamba import selective_scan_mamba

                res = selective_scan_mamba(*[None if t is None else t.contiguous() for t in f32],
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
