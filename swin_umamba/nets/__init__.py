from swin_umamba.nets.swin_umamba import SwinUMamba
from swin_umamba.nets.swin_umamba3d import SwinUMamba3D
from swin_umamba.nets.swin_umamba_d import SwinUMambaD
from swin_umamba.nets.swin_umamba_d3d import SwinUMambaD3D

__all__ = ["SwinUMamba", "SwinUMambaD", "SwinUMamba3D", "SwinUMambaD3D"]
