"""Test-only trainers: the package's trainers with a few tiny epochs.

The e2e tests put this folder into nnUNet_extTrainer next to the package's own.
"""
import os

import torch

from swin_umamba.nnunet_layout import CHECKPOINT_BEST
from swin_umamba.trainers import nnUNetTrainerSwinUMamba, nnUNetTrainerSwinUMambaScratch


def save_without_optimizer_moments(trainer, save) -> None:
    """`save()` (nnU-Net's save_checkpoint) with the optimizer's per-parameter state left out: two thirds of
    an AdamW checkpoint, which no test reads (a resumed run starts its moments afresh). Such a checkpoint
    loads as any other; most of the suite's time on a small disk went into writing those moments."""
    full = trainer.optimizer.state_dict
    trainer.optimizer.state_dict = lambda: {**full(), "state": {}}
    try:
        save()
    finally:
        del trainer.optimizer.state_dict  # the class's method again


class _Short:
    """3 epochs of 1 iteration; encoder frozen for epochs 0-1; checkpoint_{epoch}.pth every epoch; no
    checkpoint_best.pth (no test reads it, and each checkpoint is hundreds of MB to write); checkpoints
    without the optimizer's moments unless `keep_optimizer_state`."""

    epochs, iterations = 3, 1
    freeze_encoder_epochs = 2
    extra_checkpoint_every = 1
    keep_optimizer_state = False

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
        if os.path.basename(filename) == CHECKPOINT_BEST:
            return
        if self.keep_optimizer_state:
            super().save_checkpoint(filename)
        else:
            save_without_optimizer_moments(self, lambda: super(_Short, self).save_checkpoint(filename))


class nnUNetTrainerSwinUMamba_test(_Short, nnUNetTrainerSwinUMamba):
    """ImageNet-started, for the freeze-and-resume test (--c: the optimizer's state is kept); no
    checkpoint_2.pth (checkpoint_final.pth holds the same epoch); no final validation (the 3D end-to-end
    tests check nnU-Net's validation outputs)."""

    keep_optimizer_state = True

    def save_checkpoint(self, filename: str) -> None:
        if os.path.basename(filename) != f"checkpoint_{self.epochs - 1}.pth":
            super().save_checkpoint(filename)

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
