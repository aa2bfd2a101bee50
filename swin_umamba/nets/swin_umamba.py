"""SwinUMamba: VMamba-Tiny encoder behind a CNN stem, residual UNETR-style CNN decoder (docs/architecture.md)."""
from __future__ import annotations

import torch
from torch import nn

from swin_umamba.nets.padding import crop_to_input, pad_to_stride
from swin_umamba.nets.unetr_blocks import BasicBlock, OutBlock, UpBlock
from swin_umamba.nets.vmamba import VSSMEncoder

FEATURES = (48, 96, 192, 384, 768)
HIDDEN = 768


class SwinUMamba(nn.Module):
    # per spatial axis (height, width): how much the deepest features are downsampled (stem 2, patch
    # embedding 2, three mergings 2 each); inputs are padded to multiples of it
    STRIDE = (32, 32)
    # downsampling of each output, full resolution first
    OUTPUT_SCALES = (1, 2, 4, 8)
    # state_dict prefixes of the segmentation heads and of the layers that see the image's channels:
    # what a transfer to another label set or channel count has to leave at their initialisation
    HEAD_PREFIXES = ("out_layers.",)
    INPUT_LAYER_PREFIXES = ("stem.0.", "encoder1.layer.conv1.", "encoder1.layer.conv3.")

    def __init__(self, in_channels: int, num_classes: int, deep_supervision: bool = False):
        super().__init__()
        f = FEATURES
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.deep_supervision = deep_supervision

        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, f[0], kernel_size=7, stride=2, padding=3),
            nn.InstanceNorm2d(f[0], eps=1e-5, affine=True),
        )
        self.vssm_encoder = VSSMEncoder(patch_size=2, in_chans=f[0])
        self.encoder1 = BasicBlock(in_channels, f[0])
        self.encoder2 = BasicBlock(f[0], f[1])
        self.encoder3 = BasicBlock(f[1], f[2])
        self.encoder4 = BasicBlock(f[2], f[3])
        self.encoder5 = BasicBlock(f[3], HIDDEN)
        self.decoder6 = UpBlock(HIDDEN, HIDDEN)
        self.decoder5 = UpBlock(HIDDEN, f[3])
        self.decoder4 = UpBlock(f[3], f[2])
        self.decoder3 = UpBlock(f[2], f[1])
        self.decoder2 = UpBlock(f[1], f[0])
        self.decoder1 = BasicBlock(f[0], f[0])
        self.out_layers = nn.ModuleList(OutBlock(c, num_classes) for c in (f[0], f[1], f[2], f[3]))

    def forward_padded(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All four heads on an input whose height and width are multiples of STRIDE."""
        vss = self.vssm_encoder(self.stem(x))  # [stem out (1/2), layer0 (1/4), ..., layer3 (1/32)]
        enc1 = self.encoder1(x)
        enc2 = self.encoder2(vss[0])
        enc3 = self.encoder3(vss[1])
        enc4 = self.encoder4(vss[2])
        enc5 = self.encoder5(vss[3])
        dec5 = self.decoder6(vss[4], enc5)
        dec4 = self.decoder5(dec5, enc4)
        dec3 = self.decoder4(dec4, enc3)
        dec2 = self.decoder3(dec3, enc2)
        dec1 = self.decoder2(dec2, enc1)
        full = self.decoder1(dec1)
        if not self.deep_supervision:
            return [self.out_layers[0](full)]
        return [head(feat) for head, feat in zip(self.out_layers, (full, dec2, dec3, dec4))]

    def forward(self, x: torch.Tensor):
        padded, size = pad_to_stride(x, self.STRIDE)
        outputs = crop_to_input(self.forward_padded(padded), size, list(self.OUTPUT_SCALES))
        return outputs if self.deep_supervision else outputs[0]
