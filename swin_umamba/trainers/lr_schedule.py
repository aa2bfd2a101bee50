"""Cosine annealing with nnU-Net's stepping convention (`step(epoch)` every epoch)."""
from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


class CosineLRScheduler(LRScheduler):
    """lr(epoch) = eta_min + (initial_lr - eta_min) * (1 + cos(pi * epoch / t_max)) / 2.

    The closed form of torch's CosineAnnealingLR, computed from the epoch nnU-Net
    passes, so that resuming at any epoch gives the same rate as an unbroken run.
    """

    def __init__(self, optimizer: Optimizer, initial_lr: float, t_max: int, eta_min: float = 1e-6):
        self.initial_lr = initial_lr
        self.t_max = t_max
        self.eta_min = eta_min
        self.ctr = 0
        super().__init__(optimizer, -1)

    def lr_at(self, epoch: int) -> float:
        return self.eta_min + (self.initial_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.t_max)) / 2

    def step(self, epoch: int | None = None) -> None:
        if epoch is None or epoch == -1:
            epoch = self.ctr
            self.ctr += 1
        lr = self.lr_at(epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self._last_lr = [lr] * len(self.optimizer.param_groups)
