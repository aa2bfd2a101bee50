"""nnU-Net's default trainer with the run length of another run: the baselines of `swin-umamba compare`.

`nnUNetTrainerProtocol` is nnU-Net's `nnUNetTrainer` unchanged (network from the plans, so the same class
trains `nnUNetPlans` and `nnUNetResEncUNetMPlans`; SGD, poly schedule, loss, augmentation, validation)
except for how long it runs, which it takes from the environment, and for its checkpoints, which a failed
write cannot destroy (trainers/checkpoints.py):

    SWIN_UMAMBA_SCHEDULE_EPOCHS           epochs the poly schedule spans (default: nnU-Net's 1000)
    SWIN_UMAMBA_ITERATIONS_PER_EPOCH      training iterations per epoch (default: nnU-Net's 250)
    SWIN_UMAMBA_VAL_ITERATIONS_PER_EPOCH  validation iterations per epoch (default: nnU-Net's 50)
    SWIN_UMAMBA_STOP_AFTER_EPOCHS         end after this many epochs, the schedule still spanning all of them

Why not nnU-Net's `nnUNetTrainer_100epochs` and friends: they shorten the schedule itself, so its
learning rate decays to zero by the last epoch. The paper's protocol trains 100, 250 or 350 epochs of
a 1000-epoch schedule; only a stop inside the longer schedule gives the baseline the same run.
"""
from __future__ import annotations

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from swin_umamba.environment import (ITERATIONS_PER_EPOCH_VAR, SCHEDULE_EPOCHS_VAR, STOP_AFTER_EPOCHS_VAR,
                                     VAL_ITERATIONS_PER_EPOCH_VAR)
from swin_umamba.trainers.checkpoints import AtomicCheckpointMixin
from swin_umamba.trainers.common import positive_int_from_env, stop_after_epochs


class nnUNetTrainerProtocol(AtomicCheckpointMixin, nnUNetTrainer):
    """nnUNetTrainer whose schedule length, iterations and stop come from the environment; checkpoints
    written atomically, as ours."""

    # nnU-Net records the arguments of the most derived __init__, so the signature stays explicit
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = positive_int_from_env(SCHEDULE_EPOCHS_VAR, self.num_epochs)
        self.num_iterations_per_epoch = positive_int_from_env(ITERATIONS_PER_EPOCH_VAR, self.num_iterations_per_epoch)
        self.num_val_iterations_per_epoch = positive_int_from_env(VAL_ITERATIONS_PER_EPOCH_VAR,
                                                                  self.num_val_iterations_per_epoch)
        self.schedule_epochs = self.num_epochs

    def initialize(self):
        # the optimizer and its poly schedule are made here, over the full schedule; the stop comes after
        super().initialize()
        stop = stop_after_epochs()
        if stop is not None and stop < self.schedule_epochs:
            self.num_epochs = stop
            self.print_to_log_file(f"{STOP_AFTER_EPOCHS_VAR}={stop}: stopping after epoch {stop - 1} of a "
                                   f"{self.schedule_epochs}-epoch poly schedule")
