"""Swin-UMamba for nnU-Net v2: networks, a selective scan that needs no CUDA, ImageNet weights."""
from swin_umamba.nets import SwinUMamba, SwinUMamba3D, SwinUMambaD, SwinUMambaD3D
from swin_umamba.inflation import InflationReport, inflate_weights
from swin_umamba.pretrained import LoadReport, PretrainedWeightsError, load_vmamba_weights
from swin_umamba.version import __version__  # noqa: F401  (swin_umamba.__version__)

__all__ = ["SwinUMamba", "SwinUMambaD", "SwinUMamba3D", "SwinUMambaD3D", "load_vmamba_weights", "inflate_weights", "InflationReport", "LoadReport", "PretrainedWeightsError"]
