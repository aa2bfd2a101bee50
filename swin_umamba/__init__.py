"""Swin-UMamba for nnU-Net v2: networks, a selective scan that needs no CUDA, ImageNet weights."""
from swin_umamba.nets import SwinUMamba, SwinUMambaD
from swin_umamba.pretrained import LoadReport, PretrainedWeightsError, load_vmamba_weights

__all__ = ["SwinUMamba", "SwinUMambaD", "load_vmamba_weights", "LoadReport", "PretrainedWeightsError"]
__version__ = "0.1.0"
