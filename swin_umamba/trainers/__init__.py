"""nnU-Net trainers for Swin-UMamba. nnU-Net finds them through `nnUNet_extTrainer`
(see `swin-umamba trainers-dir`)."""
from swin_umamba.trainers.base import SwinUMambaTrainerBase
from swin_umamba.trainers.common import ConfigurationError
from swin_umamba.trainers.variants import (
    nnUNetTrainerSwinUMamba,
    nnUNetTrainerSwinUMambaD,
    nnUNetTrainerSwinUMambaDScratch,
    nnUNetTrainerSwinUMambaScratch,
)
from swin_umamba.trainers.demo import nnUNetTrainerSwinUMambaDemo
from swin_umamba.trainers.baseline import nnUNetTrainerProtocol

from swin_umamba.network_registry import BASELINE_TRAINER, TRAINER_NAMES

__all__ = [*TRAINER_NAMES, BASELINE_TRAINER, "SwinUMambaTrainerBase", "ConfigurationError", "TRAINER_NAMES"]
