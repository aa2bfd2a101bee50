"""Checkpoints that a failed or killed write cannot destroy.

nnU-Net's save_checkpoint writes with torch.save straight onto the checkpoint's name, so a full disk, a
kill or a lost node during the write leaves a truncated file where a good checkpoint was, and
`nnUNetv2_train ... --c` then cannot load it. The trainer part below lets nnU-Net write to a temporary
file beside the checkpoint, syncs it to disk and renames it into place (swin_umamba.fileio.atomic_target):
the checkpoint's name always holds the previous file or the complete new one. A write that fails stops
training with CheckpointWriteError, naming the file and the cause; `--c` resumes from the last good one.
"""
from __future__ import annotations

import errno
import os

from swin_umamba.fileio import atomic_target, remove_leftover_temporaries
from swin_umamba.trainers.common import finish_data_loaders

DISK_FULL = tuple(getattr(errno, name) for name in ("ENOSPC", "EDQUOT") if hasattr(errno, name))


class CheckpointWriteError(RuntimeError):
    """Training stopped: a checkpoint could not be written."""


def describe_os_error(error: BaseException) -> str:
    """'No space left on device (ENOSPC)' for an OSError with an errno; the exception itself otherwise."""
    code = getattr(error, "errno", None)
    if isinstance(error, OSError) and code in errno.errorcode:
        return f"{error.strerror or os.strerror(code)} ({errno.errorcode[code]})"
    return f"{type(error).__name__}: {error}"


class AtomicCheckpointMixin:
    """Trainer part (right before nnUNetTrainer in the bases) around nnU-Net's save_checkpoint."""

    def save_checkpoint(self, filename: str) -> None:
        if self.local_rank != 0 or self.disable_checkpointing:
            super().save_checkpoint(filename)  # writes nothing (and says so when checkpointing is off)
            return
        # a write killed earlier left its temporary file; it is no checkpoint and takes the disk's space
        remove_leftover_temporaries(filename)
        existed = os.path.isfile(filename)
        try:
            with atomic_target(filename, durable=True) as temporary:
                super().save_checkpoint(str(temporary))
        except Exception as error:
            previous = "the previous checkpoint under that name is unchanged" if existed else \
                "no file was left under that name"
            advice = ("Free space on that disk" if getattr(error, "errno", None) in DISK_FULL
                      else "Remove the cause")
            message = (f"Checkpoint {filename} NOT written at epoch {self.current_epoch}: {describe_os_error(error)}; "
                       f"{previous}. {advice}, then resume from the last good checkpoint with "
                       f"nnUNetv2_train ... --c.")
            self.print_to_log_file(message)
            finish_data_loaders(self)
            raise CheckpointWriteError(message) from error
