"""The cross-scan and cross-merge of SS2D and SS3D: the PyTorch references and the choice of the fused Triton kernels.

``cross_scan(x)``: (B, D, H, W) -> (B, 4, D, L), L = H*W, the four scan orders of SS2D: row-major,
column-major, and both reversed. ``cross_merge(y, H, W)``: (B, 4, D, L) -> (B, D, L), each
direction's output taken back to row-major order, the four summed. With ``fused=True`` each side
runs as one Triton kernel (``cross_scan_triton.py``, CUDA tensors); otherwise, and on the CPU
always, as the flips and transposes below, which are the reference the kernels are tested against.

``cross_scan_3d(x, K)``: (B, D, Z, H, W) -> (B, K, D, L), L = Z*H*W, the first K of ``DIRECTIONS_3D``;
``cross_merge_3d(y, Z, H, W)`` sums them back in (Z, H, W) row-major order. The first four are SS2D's
orders with depth outermost: on a volume of depth 1 they are exactly SS2D's four. 3D runs only on
this PyTorch path (no fused kernel; docs/architecture.md).
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


# (order of the axes (depth, height, width) from outermost to innermost, reversed?) per direction.
# 0-3: SS2D's four with depth outermost; 4-7: depth innermost (each voxel's column through the slices
# read in one run), for networks built with more than four directions.
DIRECTIONS_3D = (
    ((0, 1, 2), False), ((0, 2, 1), False), ((0, 1, 2), True), ((0, 2, 1), True),
    ((1, 2, 0), False), ((1, 2, 0), True), ((2, 1, 0), False), ((2, 1, 0), True),
)


def cross_scan_3d(x: torch.Tensor, directions: int = 4) -> torch.Tensor:
    B, D = x.shape[:2]
    L = x.shape[2:].numel()
    sequences = []
    for order, reverse in DIRECTIONS_3D[:directions]:
        seq = x.permute(0, 1, *(2 + a for a in order)).reshape(B, D, L)
        sequences.append(seq.flip(-1) if reverse else seq)
    return torch.stack(sequences, dim=1)


def cross_merge_3d(y: torch.Tensor, Z: int, H: int, W: int) -> torch.Tensor:
    B, K, D, L = y.shape
    sizes = (Z, H, W)
    total = None
    for k, (order, reverse) in enumerate(DIRECTIONS_3D[:K]):
        seq = y[:, k].flip(-1) if reverse else y[:, k]
        volume = seq.reshape(B, D, *(sizes[a] for a in order))
        back = volume.permute(0, 1, *(2 + order.index(a) for a in range(3))).reshape(B, D, L)
        total = back if total is None else total + back
    return total
