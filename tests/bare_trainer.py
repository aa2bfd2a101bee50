"""An nnU-Net trainer object without plans or data, for tests of the trainer parts that checkpoint and step."""
from __future__ import annotations

from pathlib import Path

import torch
from nnunetv2.training.logging.nnunet_logger import MetaLogger
from torch import nn


def bare_trainer(cls: type, folder: Path, epoch: int = 0):
    """An instance of `cls` (its __init__ skipped) holding what save_checkpoint, load_checkpoint and the epoch
    hooks read: a 1->2 channel convolution as the network, AdamW, a log in `folder`, epoch `epoch`."""
    torch.manual_seed(0)
    trainer = cls.__new__(cls)
    trainer.device, trainer.is_ddp, trainer.local_rank = torch.device("cpu"), False, 0
    trainer.network = nn.Conv2d(1, 2, 3, padding=1)
    trainer.optimizer = torch.optim.AdamW(trainer.network.parameters(), lr=1e-2)
    trainer.grad_scaler = None
    trainer.output_folder, trainer.log_file = str(folder), str(Path(folder) / "training_log.txt")
    trainer.logger = MetaLogger(str(folder), False)
    trainer.current_epoch, trainer._best_ema, trainer.my_init_kwargs = epoch, None, {}
    trainer.inference_allowed_mirroring_axes, trainer.disable_checkpointing = None, False
    trainer.dataloader_train = trainer.dataloader_val = None
    return trainer
