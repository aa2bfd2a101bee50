"""The trainers users name with `-tr` (same names as the authors' release)."""
from swin_umamba.nets import SwinUMamba, SwinUMambaD
from swin_umamba.trainers.base import SwinUMambaTrainerBase


class nnUNetTrainerSwinUMamba(SwinUMambaTrainerBase):
    """SwinUMamba (CNN decoder), encoder from ImageNet weights, frozen for the first 10 epochs."""

    network_class = SwinUMamba


class nnUNetTrainerSwinUMambaD(SwinUMambaTrainerBase):
    """SwinUMambaD (Swin-UMamba†, VSS decoder), encoder from ImageNet weights, frozen for 10 epochs."""

    network_class = SwinUMambaD


class nnUNetTrainerSwinUMambaScratch(nnUNetTrainerSwinUMamba):
    """SwinUMamba trained from random initialisation, nothing frozen."""

    use_imagenet_weights = False


class nnUNetTrainerSwinUMambaDScratch(nnUNetTrainerSwinUMambaD):
    """SwinUMambaD trained from random initialisation, nothing frozen."""

    use_imagenet_weights = False
