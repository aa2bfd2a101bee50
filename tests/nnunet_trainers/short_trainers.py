"""Test-only trainers: the package's trainers with a few tiny epochs.

The e2e tests put this folder into nnUNet_extTrainer next to the package's own.
"""
import os

import torch

from swin_umamba.nnunet_layout import CHECKPOINT_BEST
from swin_umamba.trainers import nnUNetTrainerSwinUMamba, nnUNetTrainerSwinUMambaScratch


class _Short:
    """3 epochs of 1 iteration; encoder frozen for epochs 0-1; checkpoint_{epoch}.pth every epoch; no
    checkpoint_best.pth (no test reads it, and each checkpoint is ~700 MB to write)."""

    epochs, iterations = 3, 1
    freeze_encoder_epochs = 2
    extra_checkpoint_every = 1

    # nnU-Net records the arguments of the most derived __init__, so the signature stays explicit
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = self.epochs
        self.num_iterations_per_epoch = self.iterations
        self.num_val_iterations_per_epoch = 1

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        # no test-time mirroring in validation: four times fewer forward passes
        rotation, do_dummy_2d, patch_size, _ = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return rotation, do_dummy_2d, patch_size, None

    def save_checkpoint(self, filename: str) -> None:
        if os.path.basename(filename) != CHECKPOINT_BEST:
            super().save_checkpoint(filename)


class nnUNetTrainerSwinUMamba_test(_Short, nnUNetTrainerSwinUMamba):
    """ImageNet-started, for the freeze-and-resume test; no final validation (the 3D end-to-end tests
    check nnU-Net's validation outputs)."""

    def perform_actual_validation(self, save_probabilities: bool = False):
        self.print_to_log_file("Final validation skipped (test trainer).")


class nnUNetTrainerSwinUMambaScratch_tiny(_Short, nnUNetTrainerSwinUMambaScratch):
    """One iteration: enough to exercise the 5-fold pipeline."""

    epochs, iterations = 1, 1
    extra_checkpoint_every = 50


class nnUNetTrainerSwinUMambaScratch_noval(nnUNetTrainerSwinUMambaScratch_tiny):
    """The tiny trainer without nnU-Net's final validation, for tests that only predict with the model."""

    def perform_actual_validation(self, save_probabilities: bool = False):
        self.print_to_log_file("Final validation skipped (test trainer).")


from swin_umamba.trainers import nnUNetTrainerSwinUMambaDScratch  # noqa: E402


class nnUNetTrainerSwinUMambaDScratch_repro(_Short, nnUNetTrainerSwinUMambaDScratch):
    """For tests/test_reproduce.py: a 4-epoch cosine schedule of one iteration per epoch, which the test
    stops after 2 epochs (SWIN_UMAMBA_STOP_AFTER_EPOCHS=2), so checkpoint_1.pth is the one evaluated."""

    epochs, iterations = 4, 1
    extra_checkpoint_every = 1

    def perform_actual_validation(self, save_probabilities: bool = False):
        # fold "all" validates on the training images; the protocol scores the test set instead
        self.print_to_log_file("Final validation skipped (test trainer for the reproduce command).")


class nnUNetTrainerSwinUMambaDScratch_tiny(_Short, nnUNetTrainerSwinUMambaDScratch):
    """One iteration, SwinUMambaD (the cheaper network on a CPU): the 3D end-to-end tests train it on 2d and
    3d_fullres so that find_best_configuration compares and ensembles the two."""

    epochs, iterations = 1, 1
    extra_checkpoint_every = 50
