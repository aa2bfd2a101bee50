"""What the trainer parts share, below all of them: the configuration error, settings read from the
environment, the network under nnU-Net's wrappers, stopping a run. Imports nothing of the trainers."""
from __future__ import annotations

import os

from torch import nn
from torch._dynamo import OptimizedModule
from torch.nn.parallel import DistributedDataParallel as DDP

from swin_umamba.environment import STOP_AFTER_EPOCHS_VAR


class ConfigurationError(ValueError):
    """The nnU-Net configuration cannot be trained with a Swin-UMamba trainer."""


def unwrap(network: nn.Module) -> nn.Module:
    """The network itself, below nnU-Net's DDP and torch.compile wrappers."""
    if isinstance(network, DDP):
        network = network.module
    if isinstance(network, OptimizedModule):
        network = network._orig_mod
    return network


def finish_data_loaders(trainer) -> None:
    """End the trainer's background augmentation workers, which would otherwise keep a stopped run alive."""
    for loader in (getattr(trainer, "dataloader_train", None), getattr(trainer, "dataloader_val", None)):
        finish = getattr(loader, "_finish", None)
        if finish is not None:
            finish()


def positive_int_from_env(name: str, default: int | None = None) -> int | None:
    """A positive whole number from environment variable `name`; `default` when it is unset or empty."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ConfigurationError(f"{name}={value!r}: expected a positive whole number, e.g. 100")
    return int(value)


def stop_after_epochs() -> int | None:
    """Epoch count from $SWIN_UMAMBA_STOP_AFTER_EPOCHS, if set (the paper's protocol, docs/recipe.md)."""
    return positive_int_from_env(STOP_AFTER_EPOCHS_VAR)
