"""SS2D's cross-scan and cross-merge: the PyTorch reference and the choice of the fused Triton kernels.

``cross_scan(x)``: (B, D, H, W) -> (B, 4, D, L), L = H*W, the four scan orders of SS2D: row-major,
column-major, and both reversed. ``cross_merge(y, H, W)``: (B, 4, D, L) -> (B, D, L), each
direction's output taken back to row-major order, the four summed. With ``fused=True`` each side
runs as one Triton kernel (``cross_scan_triton.py``, CUDA tensors); otherwise, and on the CPU
always, as the flips and transposes below, which are the reference the kernels are tested against.
"""
from __future__ import annotations

import torch


def cross_scan_torch(x: torch.Tensor) -> torch.Tensor:
    B, D, H, W = x.shape
    L = H * W
    row_major = x.reshape(B, D, L)
    col_major = x.transpose(2, 3).reshape(B, D, L)
    pair = torch.stack([row_major, col_major], dim=1)
    return torch.cat([pair, pair.flip(-1)], dim=1)


def cross_merge_torch(y: torch.Tensor, H: int, W: int) -> torch.Tensor:
    B, _, D, L = y.shape
    flipped_back = y[:, 2:4].flip(-1)

    def from_col_major(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(B, D, W, H).transpose(2, 3).reshape(B, D, L)

    return y[:, 0] + flipped_back[:, 0] + from_col_major(y[:, 1]) + from_col_major(flipped_back[:, 1])


def cross_scan(x: torch.Tensor, fused: bool = False) -> torch.Tensor:
    if fused:
        from swin_umamba.ops.cross_scan_triton import cross_scan_triton

        return cross_scan_triton(x)
    return cross_scan_torch(x)


def cross_merge(y: torch.Tensor, H: int, W: int, fused: bool = False) -> torch.Tensor:
    if fused:
        from swin_umamba.ops.cross_scan_triton import cross_merge_triton

        return cross_merge_triton(y, H, W)
    return cross_merge_torch(y, H, W)
