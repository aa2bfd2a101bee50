"""Test-only trainers: the package's trainers with a handful of tiny epochs.

The e2e tests put this folder into nnUNet_extTrainer next to the package's own.
"""
from swin_umamba.trainers import (
    nnUNetTrainerSwinUMamba,
    nnUNetTrainerSwinUMambaD,
    nnUNetTrainerSwinUMambaDScratch,
    nnUNetTrainerSwinUMambaScratch,
)


import torch


class _Short:
    freeze_encoder_epochs = 2
    extra_checkpoint_every = 2

    # nnU-Net records the arguments of the most derived __init__, so the signature stays explicit
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 3
        self.num_iterations_per_epoch = 2
        self.num_val_iterations_per_epoch = 1


class nnUNetTrainerSwinUMambaScratch_test(_Short, nnUNetTrainerSwinUMambaScratch):
    pass


class nnUNetTrainerSwinUMambaDScratch_test(_Short, nnUNetTrainerSwinUMambaDScratch):
    pass


class nnUNetTrainerSwinUMamba_test(_Short, nnUNetTrainerSwinUMamba):
    pass


class nnUNetTrainerSwinUMambaD_test(_Short, nnUNetTrainerSwinUMambaD):
    pass
