"""Reference selective scan, written in the most obvious way: a Python loop over L.

Computes in float64 if any input is float64, otherwise in float32. Differentiable through
autograd (slow, but the point is to be obviously right).

    delta' = softplus(delta + bias) if delta_softplus else delta + bias
    h_t    = exp(delta'_t * A) * h_{t-1} + delta'_t * B_t * u_t,   h_{-1} = 0
    y_t    = sum_n C_t[n] * h_t[n] + D * u_t
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def selective_scan_oracle(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False,
                          return_last_state=False):
    tensors = [t for t in (u, delta, A, B, C, D, delta_bias) if t is not None]
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
    u, delta, A, B, C = (t.to(dtype) for t in (u, delta, A, B, C))
    batch, kd, L = u.shape
    groups, N = B.shape[1], B.shape[2]
    per_group = kd // groups
    # channel d reads group d // per_group
    B = B.repeat_interleave(per_group, dim=1)  # (batch, KD, N, L)
    C = C.repeat_interleave(per_group, dim=1)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    # time-major copies so that each step reads contiguous memory (speed only)
    u_t = u.permute(2, 0, 1).contiguous()             # (L, batch, KD)
    delta_t = delta.permute(2, 0, 1).contiguous()     # (L, batch, KD)
    B_t = B.permute(3, 0, 1, 2).contiguous()          # (L, batch, KD, N)
    C_t = C.permute(3, 0, 1, 2).contiguous()
    h = torch.zeros(batch, kd, N, dtype=dtype, device=u.device)
    ys = []
    for t in range(L):
        decay = torch.exp(delta_t[t, :, :, None] * A)
        h = decay * h + delta_t[t, :, :, None] * B_t[t] * u_t[t, :, :, None]
        y = (C_t[t] * h).sum(-1)
        if D is not None:
            y = y + D.to(dtype) * u_t[t]
        ys.append(y)
    out = torch.stack(ys, dim=-1)
    return (out, h) if return_last_state else out
