from swin_umamba.nets.swin_umamba import SwinUMamba
from swin_umamba.nets.swin_umamba_d import SwinUMambaD

__all__ = ["SwinUMamba", "SwinUMambaD"]
