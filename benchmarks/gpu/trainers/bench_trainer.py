"""The trainer of the GPU benchmark's short nnUNetv2_train (this folder goes into nnUNet_extTrainer).

Swin-UMamba from scratch (no ImageNet file needed, the same network and step), one epoch of 4
iterations and one validation batch; no checkpoint_best.pth and no final validation (its forward
without deep supervision would be compiled once more, for minutes).
"""
import os

import torch

from swin_umamba.nnunet_layout import CHECKPOINT_BEST
from swin_umamba.trainers import nnUNetTrainerSwinUMambaScratch


class nnUNetTrainerSwinUMambaScratch_bench(nnUNetTrainerSwinUMambaScratch):
    # nnU-Net records the arguments of the most derived __init__, so the signature stays explicit
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 1
        self.num_iterations_per_epoch = 4
        self.num_val_iterations_per_epoch = 1

    def save_checkpoint(self, filename: str) -> None:
        if os.path.basename(filename) != CHECKPOINT_BEST:
            super().save_checkpoint(filename)

    def perform_actual_validation(self, save_probabilities: bool = False):
        self.print_to_log_file("Final validation skipped (benchmark trainer).")
