"""The reference selective scan and the random inputs every scan is checked and timed on.

:func:`selective_scan_ref` is the scan written in the most obvious way, a Python loop over the
sequence, so that it is plainly right; every fast path (``scan_torch``, the CPU kernel, Triton,
mamba-ssm) is tested against it. It is slow (one step of autograd graph per position) and meant
for tests, the Triton self-check and benchmarks, never for training::

    delta' = softplus(delta + delta_bias) if delta_softplus else delta + delta_bias
    h_t    = exp(delta'_t * A) * h_{t-1} + delta'_t * B_t * u_t,   h_{-1} = 0
    y_t    = sum_n C_t[n] * h_t[n] + D * u_t

It computes in float64 when any input is float64 and in float32 otherwise, so a float64 copy of
the inputs gives a reference accurate beyond float32 rounding.

:func:`random_scan_inputs` draws inputs distributed like those SS2D passes to the scan, the same
values for a seed whatever the dtype or device; :func:`random_scan_grads` draws the upstream
gradients of the output and of the last state.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class ScanInputs(NamedTuple):
    """The seven tensors of a scan call, in the order of the scan functions' arguments, so that
    ``scan(*inputs)`` works; ``D`` and ``delta_bias`` may be None."""

    u: torch.Tensor  # (batch, channels, length)
    delta: torch.Tensor  # (batch, channels, length)
    A: torch.Tensor  # (channels, state)
    B: torch.Tensor  # (batch, groups, state, length)
    C: torch.Tensor  # (batch, groups, state, length)
    D: torch.Tensor | None  # (channels,)
    delta_bias: torch.Tensor | None  # (channels,)

    def to(self, *args, **kwargs) -> ScanInputs:
        """All present tensors through ``Tensor.to(*args, **kwargs)``."""
        return ScanInputs(*(None if t is None else t.to(*args, **kwargs) for t in self))


def selective_scan_ref(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False):
    """The selective scan with mamba-ssm's ``selective_scan_fn`` arguments and results: ``y``
    of shape (batch, channels, length), and with ``return_last_state`` also the last state
    (batch, channels, state). B and C are (batch, groups, state, length); channel ``d`` reads
    group ``d // (channels // groups)``. Differentiable through autograd."""
    present = [t for t in (u, delta, A, B, C, D, delta_bias) if t is not None]
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in present) else torch.float32
    u, delta, A, B, C = (t.to(dtype) for t in (u, delta, A, B, C))
    batch, channels, length = u.shape
    groups, state = B.shape[1], B.shape[2]
    B = B.repeat_interleave(channels // groups, dim=1)  # (batch, channels, state, length)
    C = C.repeat_interleave(channels // groups, dim=1)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    # time-major copies, so that each step reads contiguous memory (speed only)
    u_t = u.permute(2, 0, 1).contiguous()  # (length, batch, channels)
    delta_t = delta.permute(2, 0, 1).contiguous()
    B_t = B.permute(3, 0, 1, 2).contiguous()  # (length, batch, channels, state)
    C_t = C.permute(3, 0, 1, 2).contiguous()
    h = torch.zeros(batch, channels, state, dtype=dtype, device=u.device)
    ys = []
    for t in range(length):
        step = delta_t[t, :, :, None]
        h = torch.exp(step * A) * h + step * B_t[t] * u_t[t, :, :, None]
        y = (C_t[t] * h).sum(-1)
        if D is not None:
            y = y + D.to(dtype) * u_t[t]
        ys.append(y)
    out = torch.stack(ys, dim=-1)
    return (out, h) if return_last_state else out


def random_scan_inputs(batch: int, channels: int, length: int, groups: int = 1, state: int = 16, *,
                       dtype: torch.dtype = torch.float32, param_dtype: torch.dtype | None = None,
                       device="cpu", seed: int = 0, delta_softplus: bool = True, with_D: bool = True,
                       with_delta_bias: bool = True) -> ScanInputs:
    """Scan inputs distributed like SS2D's, drawn on the CPU in float64 from ``seed`` and then
    cast and moved to ``device``: u, delta, B and C to ``dtype``; A, D and delta_bias to
    ``param_dtype`` (default ``dtype``; a network under autocast keeps them in float32).

    With ``delta_softplus`` the raw step ``delta`` is about softplus^-1 of 0.01..0.3 and the bias
    is signed; without it ``delta`` is the step itself, in [0, 0.4), and the bias non-negative,
    so that every step stays valid. ``A = -(1..state) * exp(0.3 * noise)`` per channel, the
    initialisation of mamba with some spread.
    """
    if channels % groups:
        raise ValueError(f"channels ({channels}) must be a multiple of groups ({groups})")
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64

    def normal(*shape):
        return torch.randn(*shape, generator=g, dtype=f64)

    u = normal(batch, channels, length)
    if delta_softplus:
        delta = normal(batch, channels, length) - 2.0
    else:
        delta = 0.4 * torch.rand(batch, channels, length, generator=g, dtype=f64)
    A = -torch.arange(1, state + 1, dtype=f64).repeat(channels, 1) * torch.exp(0.3 * normal(channels, state))
    B = normal(batch, groups, state, length)
    C = normal(batch, groups, state, length)
    D = normal(channels) if with_D else None
    bias = 0.5 * normal(channels) if with_delta_bias else None
    if bias is not None and not delta_softplus:
        bias = bias.abs()
    param_dtype = dtype if param_dtype is None else param_dtype

    def put(t, to_dtype):
        return None if t is None else t.to(device=device, dtype=to_dtype)

    return ScanInputs(put(u, dtype), put(delta, dtype), put(A, param_dtype), put(B, dtype), put(C, dtype),
                      put(D, param_dtype), put(bias, param_dtype))


def random_scan_grads(inputs, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Upstream gradients (of the output, of the last state) for a scan of ``inputs`` (a
    :class:`ScanInputs` or any sequence in its order), in the dtype and on the device of ``u``,
    drawn like :func:`random_scan_inputs`."""
    u, A = inputs[0], inputs[2]
    batch, channels, length = u.shape
    state = A.shape[1]
    g = torch.Generator().manual_seed(seed)
    grad_out = torch.randn(batch, channels, length, generator=g, dtype=torch.float64)
    grad_last = torch.randn(batch, channels, state, generator=g, dtype=torch.float64)
    like = dict(dtype=u.dtype, device=u.device)
    return grad_out.to(**like), grad_last.to(**like)
