"""Swin-UMamba for nnU-Net v2: networks, a selective scan that needs no CUDA, ImageNet weights."""
import importlib.metadata

from swin_umamba.nets import SwinUMamba, SwinUMamba3D, SwinUMambaD, SwinUMambaD3D
from swin_umamba.inflation import InflationReport, inflate_weights
from swin_umamba.pretrained import LoadReport, PretrainedWeightsError, load_vmamba_weights

__all__ = ["SwinUMamba", "SwinUMambaD", "SwinUMamba3D", "SwinUMambaD3D", "load_vmamba_weights", "inflate_weights", "InflationReport", "LoadReport", "PretrainedWeightsError"]
try:  # the version lives in pyproject.toml; the installed metadata carries it
    __version__ = importlib.metadata.version("swin-umamba")
except importlib.metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "unknown (not installed)"
