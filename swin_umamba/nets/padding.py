"""Inputs of any size: pad to the network's stride, crop the outputs back.

A network reduces each spatial axis of its input by its `STRIDE` along that axis (docs/architecture.md).
An input whose extent along an axis is not a multiple of that axis's stride is zero-padded at the end
of the axis (bottom, right) up to the next multiple; every output is cropped back to the input's extent
at its own scale (ceil(size / downsampling)). With nnU-Net's plans the patch sizes are multiples of the
stride already and nothing is padded.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F


def pad_to_stride(x: torch.Tensor, stride: Sequence[int]) -> tuple[torch.Tensor, tuple[int, ...]]:
    """`x` padded so that each of its last len(stride) axes is a multiple of its stride; and their sizes before."""
    size = tuple(x.shape[-len(stride):])
    pad = []  # F.pad lists the last axis first
    for n, s in zip(reversed(size), reversed(tuple(stride))):
        pad += [0, (-n) % s]
    if any(pad):
        x = F.pad(x, pad)
    return x, size


def crop_to_input(outputs: list[torch.Tensor], size: Sequence[int],
                  downsampling: Sequence[int | Sequence[int]]) -> list[torch.Tensor]:
    """Each output cropped to `size` divided (rounded up) by its downsampling, one factor or one per axis."""
    cropped = []
    for output, scale in zip(outputs, downsampling):
        scales = (scale,) * len(size) if isinstance(scale, int) else tuple(scale)
        extent = tuple(slice(0, math.ceil(n / s)) for n, s in zip(size, scales))
        cropped.append(output[(..., *extent)])
    return cropped
