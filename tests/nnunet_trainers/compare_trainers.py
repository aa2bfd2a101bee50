"""Test-only trainers of tests/test_compare.py: ours and the baselines' at a tiny budget.

Ours sets the run length (a 4-epoch schedule of 1 training and 1 validation iteration per epoch,
stopped by the test after 2 epochs); the baselines' trainer takes it from the environment the
compare command sets, as nnUNetTrainerProtocol does. Both skip nnU-Net's final validation, which
the comparison does not use (it scores the test set), and checkpoint_best.pth, which it does not read
(it predicts with checkpoint_final.pth; each checkpoint is hundreds of MB to write); checkpoints leave out
the optimizer's moments.
"""
import os

import torch

from short_trainers import save_without_optimizer_moments

from swin_umamba.nnunet_layout import CHECKPOINT_BEST
from swin_umamba.trainers import nnUNetTrainerProtocol, nnUNetTrainerSwinUMambaDScratch


class _NoFinalValidation:
    def perform_actual_validation(self, save_probabilities: bool = False):
        self.print_to_log_file("Final validation skipped (test trainer of the compare command).")

    def save_checkpoint(self, filename: str) -> None:
        if os.path.basename(filename) != CHECKPOINT_BEST:
            save_without_optimizer_moments(self, lambda: super(_NoFinalValidation, self).save_checkpoint(filename))


class nnUNetTrainerSwinUMambaDScratch_compare(_NoFinalValidation, nnUNetTrainerSwinUMambaDScratch):
    # nnU-Net records the arguments of the most derived __init__, so the signature stays explicit
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 4
        self.num_iterations_per_epoch = 1
        self.num_val_iterations_per_epoch = 1


class nnUNetTrainerProtocol_compare(_NoFinalValidation, nnUNetTrainerProtocol):
    def _set_batch_size_and_oversample(self):
        # the ResEnc M preset plans batches of 14 demo slices: minutes per step on a small CPU
        super()._set_batch_size_and_oversample()
        self.batch_size = min(self.batch_size, 2)
