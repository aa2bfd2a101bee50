"""Test-only trainers for fine-tuning and non-finite losses (tests/test_finetune_cli.py).

One epoch of one iteration, no final validation; `checkpoint_start.pth` is written right after the
weights are set, so a test can compare what training started from with the source checkpoint.
"""
import os

import torch
from short_trainers import _Short

from swin_umamba.trainers import (
    nnUNetTrainerSwinUMamba,
    nnUNetTrainerSwinUMambaD,
    nnUNetTrainerSwinUMambaDScratch,
)


class _OneStep(_Short):
    """Writes only the checkpoints named in `checkpoints` (each holds the network and AdamW's state:
    writing the others would cost most of the test's time)."""

    epochs, iterations = 1, 1
    extra_checkpoint_every = 50
    checkpoints = ("checkpoint_start.pth",)

    def on_train_start(self):
        super().on_train_start()
        self.save_checkpoint(os.path.join(self.output_folder, "checkpoint_start.pth"))

    def save_checkpoint(self, filename: str) -> None:
        if os.path.basename(filename) in self.checkpoints:
            super().save_checkpoint(filename)

    def perform_actual_validation(self, save_probabilities: bool = False):
        self.print_to_log_file("Final validation skipped (test trainer).")


class nnUNetTrainerSwinUMamba_finetune(_OneStep, nnUNetTrainerSwinUMamba):
    pass


class nnUNetTrainerSwinUMambaD_finetune(_OneStep, nnUNetTrainerSwinUMambaD):
    pass


class nnUNetTrainerSwinUMambaDScratch_nan(_OneStep, nnUNetTrainerSwinUMambaDScratch):
    """Epoch 0 trains and writes checkpoint_0.pth; from epoch 1 every loss is NaN: training stops after 2."""

    epochs, iterations = 2, 2
    nonfinite_limit = 2
    extra_checkpoint_every = 1
    checkpoints = ("checkpoint_0.pth",)

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        if self.current_epoch == 1:
            loss = self.loss
            self.loss = lambda output, target: loss(output, target) * torch.tensor(float("nan"))
