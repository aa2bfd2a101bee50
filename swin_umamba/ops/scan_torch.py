"""Selective scan in plain PyTorch: parallel over the sequence, numerically stable.

The linear recurrence ``h_t = a_t * h_{t-1} + b_t`` (with ``0 <= a_t <= 1`` in practice)
is solved by a hierarchical chunked scan instead of the ``exp(-cumsum)`` trick, which
overflows for long sequences with strong decay:

1. split L into chunks of T steps (the tail padded with ``a = 1, b = 0``, i.e. delta = 0);
2. run T vectorised steps over all chunks at once, giving the local states (chunk start
   state 0) and the running decay products ``P`` (products of factors <= 1 only, so they
   can only underflow to 0, which is harmless);
3. the chunk-level recurrence ``H_c = P_c * H_{c-1} + hloc_c`` has the same form with L/T
   elements and is solved recursively;
4. ``h_t = P_t * H_{c-1} + hloc_t``.

Everything is made of differentiable torch ops, so autograd provides all gradients.
The cost is O(L * N) work per channel with O(T * log_T(L)) Python-level steps.

Under autograd the scan keeps only its inputs: backward runs it again to rebuild its
intermediates (``torch.utils.checkpoint``). Kept, those would be a dozen
(batch, KD, L, N) tensors per call, i.e. N times the size of the network's own activations
(tens of GiB for a training batch on a GPU); recomputed, only one scan's are alive at a time.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

CHUNK = 16


def linear_scan(a: torch.Tensor, b: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """All states of ``h_t = a_t * h_{t-1} + b_t`` (``h_{-1} = 0``) along dim -2.

    ``a`` and ``b`` broadcast to a common shape (..., L, N); the result has that shape.
    """
    if chunk is None:
        chunk = CHUNK
    a, b = torch.broadcast_tensors(a, b)
    L = a.shape[-2]
    if L <= chunk:
        states = []
        h = torch.zeros_like(b[..., 0, :])
        for t in range(L):
            h = a[..., t, :] * h + b[..., t, :]
            states.append(h)
        return torch.stack(states, dim=-2)
    pad = (-L) % chunk
    if pad:
        a = F.pad(a, (0, 0, 0, pad), value=1.0)
        b = F.pad(b, (0, 0, 0, pad), value=0.0)
    nc = a.shape[-2] // chunk
    a = a.unflatten(-2, (nc, chunk))  # (..., nc, T, N)
    b = b.unflatten(-2, (nc, chunk))
    hloc = [b[..., 0, :]]
    prod = [a[..., 0, :]]
    for j in range(1, chunk):
        aj = a[..., j, :]
        hloc.append(aj * hloc[-1] + b[..., j, :])
        prod.append(aj * prod[-1])
    hloc_t = torch.stack(hloc, dim=-2)  # (..., nc, T, N)
    prod_t = torch.stack(prod, dim=-2)
    # state at the end of each chunk
    H = linear_scan(prod[-1], hloc[-1], chunk)  # (..., nc, N)
    Hprev = F.pad(H[..., :-1, :], (0, 0, 1, 0))  # state before each chunk
    h = prod_t * Hprev.unsqueeze(-2) + hloc_t
    h = h.flatten(-3, -2)
    if pad:
        h = h[..., :L, :]
    return h


def scan_torch(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False,
               return_last_state=False):
    """Selective scan with mamba-ssm ``selective_scan_fn`` semantics (float32 tensors expected;
    the public :func:`swin_umamba.ops.selective_scan` takes care of casting); recomputed in
    backward instead of keeping its intermediates."""
    args = (u, delta, A, B, C, D, delta_bias, delta_softplus, return_last_state)
    if torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in args):
        return checkpoint(_scan, *args, use_reentrant=False)
    return _scan(*args)


def _scan(u, delta, A, B, C, D, delta_bias, delta_softplus, return_last_state):
    batch, kd, L = u.shape
    groups, N = B.shape[1], B.shape[2]
    dg = kd // groups
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    # layout (batch, G, KD/G, L, N)
    dt = delta.view(batch, groups, dg, L, 1)
    a = torch.exp(dt * A.view(1, groups, dg, 1, N))
    bx = (dt * u.view(batch, groups, dg, L, 1)) * B.transpose(-1, -2).unsqueeze(2)
    h = linear_scan(a, bx)
    y = torch.einsum("bgdln,bgln->bgdl", h, C.transpose(-1, -2)).reshape(batch, kd, L)
    if D is not None:
        y = y + D[:, None] * u
    if return_last_state:
        return y, h[..., -1, :].reshape(batch, kd, N)
    return y
