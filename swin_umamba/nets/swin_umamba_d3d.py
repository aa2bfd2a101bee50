"""SwinUMambaD3D: SwinUMambaD ("Swin-UMamba†") over volumes (docs/architecture.md, "3D networks").

The VMamba-Tiny encoder over volumes directly on the image and the VSS-block decoder, under the
same names as SwinUMambaD. In-plane the strides are 2D's (patch embedding 4, mergings 2: total 32);
along depth the patch embedding strides by depth_strides[0] (1, 2 or 4), merging i by depth_strides[i].
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from swin_umamba.nets.padding import crop_to_input, pad_to_stride
from swin_umamba.nets.swin_umamba_d import DIMS, SwinUMambaD, VSSDecoder
from swin_umamba.nets.vmamba import LN_EPS, VSSLayer
from swin_umamba.nets.vmamba3d import SS2D_DIRECTIONS, VSSMEncoder3D, ss3d, strides_of


class PatchExpand3D(nn.Module):
    """Channel-last upsampling by (depth_scale, scale, scale): Linear(C, depth_scale * scale^2 * C_out),
    then depth-to-space, LayerNorm.

    Channel ((pz * scale + p1) * scale + p2) * C_out + c of voxel (z, h, w) becomes channel c of voxel
    (depth_scale * z + pz, scale * h + p1, scale * w + p2): with depth_scale 1 PatchExpand's layout."""

    def __init__(self, dim: int, out_dim: int, scale: int, depth_scale: int):
        super().__init__()
        self.scale = scale
        self.depth_scale = depth_scale
        self.out_dim = out_dim
        self.expand = nn.Linear(dim, depth_scale * scale * scale * out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, z, h, w, _ = x.shape
        t, s, c = self.depth_scale, self.scale, self.out_dim
        x = self.expand(x).view(b, z, h, w, t, s, s, c).permute(0, 1, 4, 2, 5, 3, 6, 7)
        return self.norm(x.reshape(b, z * t, h * s, w * s, c))


class VSSDecoder3D(nn.Module):
    """VSSDecoder over volumes: expand (undoing one encoder stage's downsampling), fuse, VSS layer, head."""

    def __init__(self, num_classes: int, depth_strides: Sequence[int], drop_path_rate: float = 0.2,
                 scan_directions: int = SS2D_DIRECTIONS):
        super().__init__()
        rates = torch.linspace(drop_path_rate, 0, 6).tolist()
        skip_dims = DIMS[2::-1]  # 384, 192, 96
        mixer = ss3d(scan_directions)
        self.stages = nn.ModuleList(
            [VSSLayer(c, depth=2, drop_path=rates[2 * k : 2 * k + 2], mixer=mixer) for k, c in enumerate(skip_dims)]
            + [nn.Identity()]
        )
        # stage k undoes merging 3 - k (k = 0, 1, 2), the last one the patch embedding
        self.expand_layers = nn.ModuleList(
            [PatchExpand3D(2 * c, c, scale=2, depth_scale=depth_strides[3 - k]) for k, c in enumerate(skip_dims)]
            + [PatchExpand3D(DIMS[0], DIMS[0], scale=4, depth_scale=depth_strides[0])]
        )
        self.seg_layers = nn.ModuleList(nn.Conv3d(c, num_classes, 1) for c in skip_dims + (DIMS[0],))
        self.concat_back_dim = nn.ModuleList(nn.Linear(2 * c, c) for c in skip_dims)

    # the same stages in the same order as in 2D
    forward = VSSDecoder.forward


class SwinUMambaD3D(nn.Module):
    DEPTH_STAGES = ("patch embedding", "merging 1", "merging 2", "merging 3")
    DEPTH_STRIDE_CHOICES = ((1, 2, 4), (1, 2), (1, 2), (1, 2))
    # in-plane: patch embedding 4, then three mergings of 2
    IN_PLANE_STRIDES = (4, 2, 2, 2)
    # the 2D network whose weights inflate into this one (swin_umamba/nets/inflation.py)
    INFLATED_FROM = SwinUMambaD
    HEAD_PREFIXES = SwinUMambaD.HEAD_PREFIXES
    INPUT_LAYER_PREFIXES = SwinUMambaD.INPUT_LAYER_PREFIXES

    @classmethod
    def strides_of(cls, depth_strides: Sequence[int]) -> tuple[tuple[int, int, int], tuple[tuple[int, int, int], ...]]:
        """(STRIDE, OUTPUT_SCALES) of a network with these depth strides, without building it."""
        return strides_of(cls, depth_strides)

    def __init__(self, in_channels: int, num_classes: int, depth_strides: Sequence[int],
                 deep_supervision: bool = False, scan_directions: int = SS2D_DIRECTIONS):
        super().__init__()
        self.STRIDE, self.OUTPUT_SCALES = self.strides_of(depth_strides)
        self.depth_strides = tuple(depth_strides)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.deep_supervision = deep_supervision
        self.vssm_encoder = VSSMEncoder3D(patch_size=4, in_chans=in_channels, depth_strides=self.depth_strides,
                                          drop_path_rate=0.2, scan_directions=scan_directions)
        self.decoder = VSSDecoder3D(num_classes, self.depth_strides, scan_directions=scan_directions)

    def forward(self, x: torch.Tensor):
        if x.ndim != 5:
            raise ValueError(f"{type(self).__name__} takes volumes (B, C, D, H, W); got a tensor of shape {tuple(x.shape)}")
        padded, size = pad_to_stride(x, self.STRIDE)
        features = self.vssm_encoder(padded)[1:]
        outputs = self.decoder(features, self.deep_supervision)
        scales = self.OUTPUT_SCALES if self.deep_supervision else self.OUTPUT_SCALES[:1]
        outputs = crop_to_input(outputs, size, scales)
        return outputs if self.deep_supervision else outputs[0]
