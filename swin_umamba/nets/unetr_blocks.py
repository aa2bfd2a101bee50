"""Residual convolution blocks of Swin-UMamba's CNN decoder.

Same layout and state_dict names as MONAI's UnetResBlock / UnetrUpBlock /
UnetOutBlock with `res_block=True` and `norm_name="instance"`: bias-free
convolutions, InstanceNorm without affine parameters, LeakyReLU(0.01).
Like MONAI's, each block takes `spatial_dims` (2 for images, 3 for volumes).
"""
from __future__ import annotations

import torch
from torch import nn


class ConvOnly(nn.Module):
    """Holds a convolution under the name `conv` (MONAI's `Convolution(conv_only=True)` layout)."""

    def __init__(self, conv: nn.Module):
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


CONV = {2: nn.Conv2d, 3: nn.Conv3d}
TRANSPOSED_CONV = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
INSTANCE_NORM = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}


def _norm(channels: int, spatial_dims: int) -> nn.Module:
    return INSTANCE_NORM[spatial_dims](channels, eps=1e-5, affine=False, track_running_stats=False)


class ResidualBlock(nn.Module):
    """conv3x3-norm-lrelu-conv3x3-norm, plus (1x1 conv + norm) shortcut when channels change."""

    def __init__(self, in_channels: int, out_channels: int, spatial_dims: int = 2):
        super().__init__()
        conv = CONV[spatial_dims]
        self.conv1 = ConvOnly(conv(in_channels, out_channels, 3, padding=1, bias=False))
        self.conv2 = ConvOnly(conv(out_channels, out_channels, 3, padding=1, bias=False))
        self.lrelu = nn.LeakyReLU(negative_slope=0.01, inplace=True)
        self.norm1 = _norm(out_channels, spatial_dims)
        self.norm2 = _norm(out_channels, spatial_dims)
        self.project_shortcut = in_channels != out_channels
        if self.project_shortcut:
            self.conv3 = ConvOnly(conv(in_channels, out_channels, 1, bias=False))
            self.norm3 = _norm(out_channels, spatial_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.norm3(self.conv3(x)) if self.project_shortcut else x
        out = self.lrelu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.lrelu(out + residual)


class BasicBlock(nn.Module):
    """A residual block kept under the name `layer` (MONAI's UnetrBasicBlock layout)."""

    def __init__(self, in_channels: int, out_channels: int, spatial_dims: int = 2):
        super().__init__()
        self.layer = ResidualBlock(in_channels, out_channels, spatial_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class UpBlock(nn.Module):
    """Transposed-conv upsampling (kernel = stride: 2, or per axis), concatenation with the skip, residual block."""

    def __init__(self, in_channels: int, out_channels: int, spatial_dims: int = 2, stride: int | tuple[int, ...] = 2):
        super().__init__()
        up = TRANSPOSED_CONV[spatial_dims](in_channels, out_channels, stride, stride=stride, bias=False)
        self.transp_conv = ConvOnly(up)
        self.conv_block = ResidualBlock(2 * out_channels, out_channels, spatial_dims)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv_block(torch.cat([self.transp_conv(x), skip], dim=1))


class OutBlock(nn.Module):
    """1x1 convolution head (with bias) kept as `conv.conv`."""

    def __init__(self, in_channels: int, num_classes: int, spatial_dims: int = 2):
        super().__init__()
        self.conv = ConvOnly(CONV[spatial_dims](in_channels, num_classes, 1, bias=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)
