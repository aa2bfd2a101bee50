"""SwinUMamba3D: SwinUMamba over volumes (docs/architecture.md, "3D networks").

The same modules under the same names as SwinUMamba, each in its 3D form: a CNN stem, the VMamba-Tiny
encoder over volumes (`VSSMEncoder3D`), the residual UNETR-style decoder with 3D convolutions.
In-plane every stage downsamples by 2 as in 2D (total 32); along depth, stage i by `depth_strides[i]`.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from swin_umamba.nets.padding import crop_to_input, pad_to_stride
from swin_umamba.nets.swin_umamba import FEATURES, HIDDEN, SwinUMamba
from swin_umamba.nets.unetr_blocks import BasicBlock, OutBlock, UpBlock
from swin_umamba.nets.vmamba3d import SS2D_DIRECTIONS, VSSMEncoder3D, strides_of


class SwinUMamba3D(nn.Module):
    # the downsampling stages, in order, and the depth strides each may take
    DEPTH_STAGES = ("stem", "patch embedding", "merging 1", "merging 2", "merging 3")
    DEPTH_STRIDE_CHOICES = ((1, 2),) * 5
    # every stage halves height and width
    IN_PLANE_STRIDES = (2, 2, 2, 2, 2)
    # the 2D network whose weights inflate into this one (swin_umamba/nets/inflation.py)
    INFLATED_FROM = SwinUMamba
    HEAD_PREFIXES = SwinUMamba.HEAD_PREFIXES
    INPUT_LAYER_PREFIXES = SwinUMamba.INPUT_LAYER_PREFIXES

    @classmethod
    def strides_of(cls, depth_strides: Sequence[int]) -> tuple[tuple[int, int, int], tuple[tuple[int, int, int], ...]]:
        """(STRIDE, OUTPUT_SCALES) of a network with these depth strides, without building it."""
        return strides_of(cls, depth_strides)

    def __init__(self, in_channels: int, num_classes: int, depth_strides: Sequence[int],
                 deep_supervision: bool = False, scan_directions: int = SS2D_DIRECTIONS):
        super().__init__()
        self.STRIDE, self.OUTPUT_SCALES = self.strides_of(depth_strides)
        s = self.depth_strides = tuple(depth_strides)
        f = FEATURES
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.deep_supervision = deep_supervision

        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, f[0], kernel_size=(3, 7, 7), stride=(s[0], 2, 2), padding=(1, 3, 3)),
            nn.InstanceNorm3d(f[0], eps=1e-5, affine=True),
        )
        self.vssm_encoder = VSSMEncoder3D(patch_size=2, in_chans=f[0], depth_strides=s[1:],
                                          scan_directions=scan_directions)
        self.encoder1 = BasicBlock(in_channels, f[0], spatial_dims=3)
        self.encoder2 = BasicBlock(f[0], f[1], spatial_dims=3)
        self.encoder3 = BasicBlock(f[1], f[2], spatial_dims=3)
        self.encoder4 = BasicBlock(f[2], f[3], spatial_dims=3)
        self.encoder5 = BasicBlock(f[3], HIDDEN, spatial_dims=3)
        # each up block undoes one downsampling stage, the deepest first
        self.decoder6 = UpBlock(HIDDEN, HIDDEN, spatial_dims=3, stride=(s[4], 2, 2))
        self.decoder5 = UpBlock(HIDDEN, f[3], spatial_dims=3, stride=(s[3], 2, 2))
        self.decoder4 = UpBlock(f[3], f[2], spatial_dims=3, stride=(s[2], 2, 2))
        self.decoder3 = UpBlock(f[2], f[1], spatial_dims=3, stride=(s[1], 2, 2))
        self.decoder2 = UpBlock(f[1], f[0], spatial_dims=3, stride=(s[0], 2, 2))
        self.decoder1 = BasicBlock(f[0], f[0], spatial_dims=3)
        self.out_layers = nn.ModuleList(OutBlock(c, num_classes, spatial_dims=3) for c in (f[0], f[1], f[2], f[3]))

    # the wiring of stem, encoder, skips, decoder and heads is SwinUMamba's
    forward_padded = SwinUMamba.forward_padded

    def forward(self, x: torch.Tensor):
        if x.ndim != 5:
            raise ValueError(f"{type(self).__name__} takes volumes (B, C, D, H, W); got a tensor of shape {tuple(x.shape)}")
        padded, size = pad_to_stride(x, self.STRIDE)
        outputs = crop_to_input(self.forward_padded(padded), size, self.OUTPUT_SCALES)
        return outputs if self.deep_supervision else outputs[0]
