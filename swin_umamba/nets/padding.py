"""Inputs of any height/width: pad to the network's stride, crop the outputs back.

Both Swin-UMamba networks reduce the input by NETWORK_STRIDE, 32 (docs/architecture.md). An input
whose height or width is not a multiple of it is zero-padded at the bottom and on the
right up to the next multiple; every output is cropped back to the input's
extent at its own scale (ceil(size / downsampling)). With nnU-Net's plans the
patch sizes are multiples of it already and nothing is padded.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from swin_umamba.network_registry import NETWORK_STRIDE


def pad_to_stride(x: torch.Tensor, stride: int = NETWORK_STRIDE) -> tuple[torch.Tensor, tuple[int, int]]:
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % stride, (-w) % stride
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return x, (h, w)


def crop_to_input(outputs: list[torch.Tensor], size: tuple[int, int], downsampling: list[int]) -> list[torch.Tensor]:
    h, w = size
    return [o[..., : math.ceil(h / s), : math.ceil(w / s)] for o, s in zip(outputs, downsampling)]
