"""SS2D's cross-scan and cross-merge as single Triton kernels, registered as torch.library ops.

Cross-scan turns a channel-first map (B, D, H, W) into the four scan directions (B, 4, D, H*W):
row-major, column-major, and both reversed. Cross-merge takes the four directions' outputs back
to row-major order and sums them (B, D, H*W). Each is a permutation (plus a sum), so each is the
other's adjoint: cross-scan's backward is a cross-merge of the gradient and vice versa. The
PyTorch versions (``cross_scan.py``) are the reference; in PyTorch each side is several kernels
(flips, transposes, copies, adds), here one.

A program owns one (BLOCK_H, BLOCK_W) tile of one (batch, channel) plane; the row-major side is
read or written along W and the column-major side along H (Triton's layout conversion keeps both
coalesced). Offsets are 64-bit. ``TRITON_INTERPRET=1`` set before this module is imported runs
the same kernels on CPU tensors (the tests load a private copy that way; its ops get names of
their own).
"""
from __future__ import annotations

import contextlib
import re

import torch
from torch import Tensor

from swin_umamba.ops.triton_import import IMPORT_ERROR as _IMPORT_ERROR
from swin_umamba.ops.triton_import import tl, triton

K = 4  # scan directions
MAX_BLOCK = 32  # tile side
NUM_WARPS = 4

_CANONICAL_NAME = "swin_umamba.ops.cross_scan_triton"
_OP_PREFIX = "swin_umamba::" + ("" if __name__ == _CANONICAL_NAME else re.sub(r"\W", "_", __name__) + "_")


if triton is not None:

    @triton.jit
    def _tile(D, H, W, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
        """This program's tile: its row-major and column-major positions in the plane, its mask, the
        offset of its (batch, channel) plane in a (B, D, L) tensor and of direction 0 in a (B, 4, D, L)
        one, and the distance between directions."""
        bd = tl.program_id(0).to(tl.int64)
        L = H.to(tl.int64) * W
        h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
        w = tl.program_id(2) * BLOCK_W + tl.arange(0, BLOCK_W)
        mask = (h[:, None] < H) & (w[None, :] < W)
        row = h[:, None].to(tl.int64) * W + w[None, :]
        col = w[None, :].to(tl.int64) * H + h[:, None]
        # direction k of (b, d) starts at ((b * 4 + k) * D + d) * L
        first = ((bd // D) * 4 * D + bd % D) * L
        return row, col, mask, L, bd * L, first, D * L

    @triton.jit
    def _cross_scan_kernel(x_ptr, out_ptr, D, H, W, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
        row, col, mask, L, plane, first, step = _tile(D, H, W, BLOCK_H, BLOCK_W)
        v = tl.load(x_ptr + plane + row, mask=mask)
        tl.store(out_ptr + first + row, v, mask=mask)
        tl.store(out_ptr + first + step + col, v, mask=mask)
        tl.store(out_ptr + first + 2 * step + (L - 1 - row), v, mask=mask)
        tl.store(out_ptr + first + 3 * step + (L - 1 - col), v, mask=mask)

    @triton.jit
    def _cross_merge_kernel(y_ptr, out_ptr, D, H, W, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
        row, col, mask, L, plane, first, step = _tile(D, H, W, BLOCK_H, BLOCK_W)
        acc = tl.load(y_ptr + first + row, mask=mask).to(tl.float32)
        acc += tl.load(y_ptr + first + step + col, mask=mask).to(tl.float32)
        acc += tl.load(y_ptr + first + 2 * step + (L - 1 - row), mask=mask).to(tl.float32)
        acc += tl.load(y_ptr + first + 3 * step + (L - 1 - col), mask=mask).to(tl.float32)
        tl.store(out_ptr + plane + row, acc.to(out_ptr.dtype.element_ty), mask=mask)


def _launch(kernel, src: Tensor, out: Tensor, batch: int, D: int, H: int, W: int) -> Tensor:
    if triton is None:
        raise RuntimeError(f"swin_umamba: the Triton cross-scan needs triton ({_IMPORT_ERROR})")
    if out.numel() == 0:
        return out
    block_h = min(MAX_BLOCK, triton.next_power_of_2(H))
    block_w = min(MAX_BLOCK, triton.next_power_of_2(W))
    grid = (batch * D, triton.cdiv(H, block_h), triton.cdiv(W, block_w))
    with torch.cuda.device(src.device) if src.device.type == "cuda" else contextlib.nullcontext():
        kernel[grid](src, out, D, H, W, BLOCK_H=block_h, BLOCK_W=block_w, num_warps=NUM_WARPS)
    return out


@torch.library.custom_op(_OP_PREFIX + "cross_scan", mutates_args=())
def _cross_scan(x: Tensor) -> Tensor:
    batch, D, H, W = x.shape
    x = x.contiguous()
    return _launch(_cross_scan_kernel, x, x.new_empty(batch, K, D, H * W), batch, D, H, W)


@_cross_scan.register_fake
def _(x):
    batch, D, H, W = x.shape
    return x.new_empty(batch, K, D, H * W)


@torch.library.custom_op(_OP_PREFIX + "cross_merge", mutates_args=())
def _cross_merge(y: Tensor, H: int, W: int) -> Tensor:
    batch, _, D, _ = y.shape
    y = y.contiguous()
    return _launch(_cross_merge_kernel, y, y.new_empty(batch, D, H * W), batch, D, H, W)


@_cross_merge.register_fake
def _(y, H, W):
    return y.new_empty(y.shape[0], y.shape[2], H * W)


def _scan_setup(ctx, inputs, output):
    ctx.hw = inputs[0].shape[2:]


def _scan_backward(ctx, grad):
    batch, _, D, _ = grad.shape
    H, W = ctx.hw
    return _cross_merge(grad, H, W).view(batch, D, H, W)


def _merge_setup(ctx, inputs, output):
    ctx.hw = (inputs[1], inputs[2])


def _merge_backward(ctx, grad):
    batch, D, _ = grad.shape
    H, W = ctx.hw
    return _cross_scan(grad.reshape(batch, D, H, W)), None, None


_cross_scan.register_autograd(_scan_backward, setup_context=_scan_setup)
_cross_merge.register_autograd(_merge_backward, setup_context=_merge_setup)


def cross_scan_triton(x: Tensor) -> Tensor:
    """(B, D, H, W) -> (B, 4, D, H*W): row-major, column-major, and both reversed; differentiable."""
    if x.dim() != 4:
        raise ValueError(f"cross_scan expects (B, D, H, W), got {tuple(x.shape)}")
    return _cross_scan(x)


def cross_merge_triton(y: Tensor, H: int, W: int) -> Tensor:
    """(B, 4, D, H*W) -> (B, D, H*W): the four directions back in row-major order, summed; differentiable."""
    if y.dim() != 4 or y.shape[1] != K or y.shape[3] != H * W:
        raise ValueError(f"cross_merge expects (B, {K}, D, {H}*{W}), got {tuple(y.shape)}")
    return _cross_merge(y, H, W)


__all__ = ["cross_merge_triton", "cross_scan_triton"]
