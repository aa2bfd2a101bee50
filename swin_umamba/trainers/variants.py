"""The trainers users name with `-tr` (same names as the authors' release), for 2d and every 3D configuration."""
from swin_umamba.nets import SwinUMamba, SwinUMamba3D, SwinUMambaD, SwinUMambaD3D
from swin_umamba.trainers.base import SwinUMambaTrainerBase


class nnUNetTrainerSwinUMamba(SwinUMambaTrainerBase):
    """SwinUMamba (CNN decoder), encoder from ImageNet weights, frozen for the first 10 epochs."""

    network_class = SwinUMamba
    network_class_3d = SwinUMamba3D


class nnUNetTrainerSwinUMambaD(SwinUMambaTrainerBase):
    """SwinUMambaD (Swin-UMamba†, VSS decoder), encoder from ImageNet weights, frozen for 10 epochs."""

    network_class = SwinUMambaD
    network_class_3d = SwinUMambaD3D


class nnUNetTrainerSwinUMambaScratch(nnUNetTrainerSwinUMamba):
    """SwinUMamba trained from random initialisation, nothing frozen."""

    use_imagenet_weights = False


class nnUNetTrainerSwinUMambaDScratch(nnUNetTrainerSwinUMambaD):
    """SwinUMambaD trained from random initialisation, nothing frozen."""

    use_imagenet_weights = False
