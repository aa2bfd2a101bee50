"""mamba-ssm's CUDA selective-scan kernel as ``torch.library`` custom ops.

mamba-ssm wraps its extension module ``selective_scan_cuda`` in an ``autograd.Function``, which
Dynamo cannot trace: ``torch.compile`` splits the graph at every scan and, with one graph per
block, hits its recompile limit. Here the kernel's two entry points are custom ops with fake
implementations (output shapes for tracing) and a registered backward, so a compiled network
stays one graph; the calls are those of mamba-ssm's own ``SelectiveScanFn`` (no ``z``).

``selective_scan_cuda.fwd`` returns ``out`` and ``x`` (batch, KD, n_chunks, 2N): the state at the
end of every 2048-step chunk, which the backward needs; the last state is ``x[:, :, -1, 1::2]``.
The extension module is imported at the first call, not at registration, so the ops exist (and
trace) on machines without it.
"""
from __future__ import annotations

import torch
from torch import Tensor

# the kernel keeps one state every KERNEL_CHUNK steps (fixed in mamba-ssm's selective_scan.cpp)
KERNEL_CHUNK = 2048

_kernel = None


def kernel_module():
    """mamba-ssm's compiled ``selective_scan_cuda`` module (imported once; raises if absent)."""
    global _kernel
    if _kernel is None:
        import selective_scan_cuda  # noqa: PLC0415  (built by mamba-ssm's setup.py)

        _kernel = selective_scan_cuda
    return _kernel


def _chunks(L):
    return (L + KERNEL_CHUNK - 1) // KERNEL_CHUNK


@torch.library.custom_op("swin_umamba::mamba_scan_fwd", mutates_args=())
def mamba_scan_fwd(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, delta_bias: Tensor,
                   delta_softplus: bool) -> tuple[Tensor, Tensor]:
    out, x, *_ = kernel_module().fwd(u.contiguous(), delta.contiguous(), A.contiguous(), B.contiguous(),
                                     C.contiguous(), D.contiguous(), None, delta_bias.contiguous(), delta_softplus)
    return out, x


@mamba_scan_fwd.register_fake
def _(u, delta, A, B, C, D, delta_bias, delta_softplus):
    batch, kd, L = u.shape
    return torch.empty_like(delta), u.new_empty((batch, kd, _chunks(L), 2 * A.shape[1]), dtype=A.dtype)


@torch.library.custom_op("swin_umamba::mamba_scan_bwd", mutates_args=())
def mamba_scan_bwd(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, delta_bias: Tensor,
                   dout: Tensor, x: Tensor, delta_softplus: bool
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    du, ddelta, dA, dB, dC, dD, dbias, *_ = kernel_module().bwd(
        u.contiguous(), delta.contiguous(), A.contiguous(), B.contiguous(), C.contiguous(), D.contiguous(), None,
        delta_bias.contiguous(), dout.contiguous(), x.contiguous(), None, None, delta_softplus,
        False)  # no recomputation of out_z (there is no z)
    return du, ddelta, dA, dB, dC, dD, dbias


@mamba_scan_bwd.register_fake
def _(u, delta, A, B, C, D, delta_bias, dout, x, delta_softplus):
    return tuple(torch.empty_like(t) for t in (u, delta, A, B, C, D, delta_bias))


def _setup_context(ctx, inputs, output):
    u, delta, A, B, C, D, delta_bias, delta_softplus = inputs
    ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, output[1])
    ctx.delta_softplus = delta_softplus
    ctx.mark_non_differentiable(output[1])


def _backward(ctx, dout, dx):
    u, delta, A, B, C, D, delta_bias, x = ctx.saved_tensors
    grads = torch.ops.swin_umamba.mamba_scan_bwd(u, delta, A, B, C, D, delta_bias, dout, x, ctx.delta_softplus)
    return tuple(g if need else None for g, need in zip(grads, ctx.needs_input_grad)) + (None,)


mamba_scan_fwd.register_autograd(_backward, setup_context=_setup_context)


def selective_scan_mamba(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False,
                         return_last_state=False):
    """Selective scan through mamba-ssm's kernel; contiguous CUDA tensors, u/delta/B/C in one dtype,
    A, D and delta_bias float32 (the public :func:`swin_umamba.ops.selective_scan` casts to float32).
    A missing D or delta_bias is passed as zeros (same result; their gradients are dropped)."""
    kd = u.shape[1]
    if B.dim() == 3:
        B, C = B.unsqueeze(1), C.unsqueeze(1)
    D_ = A.new_zeros(kd) if D is None else D
    bias_ = A.new_zeros(kd) if delta_bias is None else delta_bias
    out, x = mamba_scan_fwd(u, delta, A, B, C, D_, bias_, bool(delta_softplus))
    if return_last_state:
        return out, x[:, :, -1, 1::2]
    return out
