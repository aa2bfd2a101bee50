"""SwinUMambaD ("Swin-UMamba†"): VMamba-Tiny encoder with a VSS-block decoder (docs/architecture.md)."""
from __future__ import annotations

import torch
from torch import nn

from swin_umamba.nets.padding import crop_to_input, pad_to_stride
from swin_umamba.nets.vmamba import LN_EPS, VSSLayer, VSSMEncoder

DIMS = (96, 192, 384, 768)


class PatchExpand(nn.Module):
    """Channel-last upsampling by `scale`: Linear(C, scale^2 * C_out), then depth-to-space, LayerNorm.

    Channel (p1 * scale + p2) * C_out + c of pixel (h, w) becomes channel c of
    pixel (scale * h + p1, scale * w + p2).
    """

    def __init__(self, dim: int, out_dim: int, scale: int):
        super().__init__()
        self.scale = scale
        self.out_dim = out_dim
        self.expand = nn.Linear(dim, scale * scale * out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        s, c = self.scale, self.out_dim
        x = self.expand(x).view(b, h, w, s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h * s, w * s, c)
        return self.norm(x)


class VSSDecoder(nn.Module):
    """Stages from low to high resolution: expand, fuse the skip, VSS layer, segmentation head."""

    def __init__(self, num_classes: int, drop_path_rate: float = 0.2):
        super().__init__()
        rates = torch.linspace(drop_path_rate, 0, 6).tolist()
        skip_dims = DIMS[2::-1]  # 384, 192, 96
        self.stages = nn.ModuleList(
            [VSSLayer(c, depth=2, drop_path=rates[2 * k : 2 * k + 2]) for k, c in enumerate(skip_dims)] + [nn.Identity()]
        )
        self.expand_layers = nn.ModuleList(
            [PatchExpand(2 * c, c, scale=2) for c in skip_dims] + [PatchExpand(DIMS[0], DIMS[0], scale=4)]
        )
        self.seg_layers = nn.ModuleList(nn.Conv2d(c, num_classes, 1) for c in skip_dims + (DIMS[0],))
        self.concat_back_dim = nn.ModuleList(nn.Linear(2 * c, c) for c in skip_dims)

    def forward(self, features: list[torch.Tensor], deep_supervision: bool) -> list[torch.Tensor]:
        """features: channel-first encoder outputs [layer0, layer1, layer2, layer3]; returns full resolution first."""
        x = features[-1].movedim(1, -1)
        skips = [f.movedim(1, -1) for f in features[-2::-1]]
        last = len(self.stages) - 1
        outputs = []
        for k, (expand, stage, head) in enumerate(zip(self.expand_layers, self.stages, self.seg_layers)):
            x = expand(x)
            if k < last:
                x = self.concat_back_dim[k](torch.cat([x, skips[k]], dim=-1))
            x = stage(x)
            if deep_supervision or k == last:
                outputs.append(head(x.movedim(-1, 1)))
        return outputs[::-1]


class SwinUMambaD(nn.Module):
    # per spatial axis (height, width), as SwinUMamba.STRIDE: patch embedding 4, three mergings 2 each
    STRIDE = (32, 32)
    OUTPUT_SCALES = (1, 4, 8, 16)
    # see SwinUMamba: the heads, and the patch embedding that sees the image itself
    HEAD_PREFIXES = ("decoder.seg_layers.",)
    INPUT_LAYER_PREFIXES = ("vssm_encoder.patch_embed.proj.",)

    def __init__(self, in_channels: int, num_classes: int, deep_supervision: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.deep_supervision = deep_supervision
        self.vssm_encoder = VSSMEncoder(patch_size=4, in_chans=in_channels, drop_path_rate=0.2)
        self.decoder = VSSDecoder(num_classes)

    def forward(self, x: torch.Tensor):
        padded, size = pad_to_stride(x, self.STRIDE)
        features = self.vssm_encoder(padded)[1:]
        outputs = self.decoder(features, self.deep_supervision)
        scales = list(self.OUTPUT_SCALES) if self.deep_supervision else [1]
        outputs = crop_to_input(outputs, size, scales)
        return outputs if self.deep_supervision else outputs[0]
