"""The trainer of `swin-umamba demo`: a few minutes of CPU training on the embedded dataset.

Not a recipe for real results: use nnUNetTrainerSwinUMamba(D) and its 1000-epoch schedule.

Choices (measured on the demo's 96x128 patch, batch 2, 2 CPU cores, compiled CPU scan):

* network: SwinUMambaD (27M parameters, VSS decoder) from scratch. One training step takes
  about half the time of SwinUMamba's (60M, CNN decoder), so the same minutes buy twice the
  steps. (With the pure-PyTorch scan the order reverses: the VSS decoder's scans at high
  resolution dominate; the demo is sized for the compiled scan.)
* learning rate: 1e-3 instead of the paper's 1e-4. The paper's rate suits a 1000-epoch
  cosine schedule of 250 steps each (250k steps); here there are a few hundred steps, and
  at 1e-4 the randomly initialised network barely leaves the "everything is background"
  stage. AdamW, weight decay 0.05 and the cosine decay of the base trainer are kept.
* no ImageNet weights (the demo must run without downloads), so nothing is frozen.
* no checkpoint_best.pth: the demo predicts with checkpoint_final.pth, and each new best
  would otherwise write another 300 MB checkpoint (so --val_best does not apply here).

`SWIN_UMAMBA_DEMO_EPOCHS` and `SWIN_UMAMBA_DEMO_ITERATIONS` (set by `swin-umamba demo
--epochs/--iterations`) override the length of the run.
"""
from __future__ import annotations

import os

import torch

from swin_umamba.nnunet_layout import CHECKPOINT_BEST
from swin_umamba.trainers.common import positive_int_from_env
from swin_umamba.trainers.variants import nnUNetTrainerSwinUMambaDScratch

from swin_umamba.environment import DEMO_EPOCHS_VAR as EPOCHS_ENV_VAR
from swin_umamba.environment import DEMO_ITERATIONS_VAR as ITERATIONS_ENV_VAR
DEMO_EPOCHS = 10
DEMO_ITERATIONS = 20
# 3d_fullres: a step of the 3D network on the 3D demo's 8 x 96 x 128 patch costs several seconds on a CPU
DEMO_3D_EPOCHS = 4
DEMO_3D_ITERATIONS = 5
DEMO_LR = 1e-3


def demo_length(configuration: str, epochs: int | None = None, iterations: int | None = None) -> tuple[int, int]:
    """(epochs, iterations per epoch) of the demo of `configuration`: the given ones, else the defaults."""
    three_d = configuration.startswith("3d")
    return (epochs or (DEMO_3D_EPOCHS if three_d else DEMO_EPOCHS),
            iterations or (DEMO_3D_ITERATIONS if three_d else DEMO_ITERATIONS))


class nnUNetTrainerSwinUMambaDemo(nnUNetTrainerSwinUMambaDScratch):
    """SwinUMambaD from scratch, 10 epochs x 20 steps at lr 1e-3: the CPU demo's trainer."""

    # nnU-Net records the arguments of the most derived __init__, so the signature stays explicit
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs, self.num_iterations_per_epoch = demo_length(
            configuration, positive_int_from_env(EPOCHS_ENV_VAR), positive_int_from_env(ITERATIONS_ENV_VAR))
        self.num_val_iterations_per_epoch = 2
        self.initial_lr = DEMO_LR

    def save_checkpoint(self, filename: str) -> None:
        if os.path.basename(filename) == CHECKPOINT_BEST:
            return
        super().save_checkpoint(filename)
