"""Checkpoints: a write that fails or is killed half-way leaves the previous checkpoint and no partial file.

The trainers run on their real class (nnU-Net's save_checkpoint under our trainer parts) with a tiny
network instead of a planned data set; torch.save is replaced by one that writes part of the file, then
fails as a full disk does.
"""
from __future__ import annotations

import errno

import pytest
import torch

from swin_umamba.nnunet_layout import CHECKPOINT_LATEST
from swin_umamba.trainers import SwinUMambaTrainerBase, nnUNetTrainerProtocol
from swin_umamba.trainers.checkpoints import CheckpointWriteError
from tests.bare_trainer import bare_trainer

TRAINERS = [SwinUMambaTrainerBase, nnUNetTrainerProtocol]


def make_trainer(cls, folder):
    """Only what save_checkpoint and load_checkpoint read: no plans, no data."""
    trainer = bare_trainer(cls, folder, epoch=3)
    trainer.was_initialized = True
    return trainer


def checkpoint_folder_files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "training_log.txt")


def failing_save(after_bytes: int, target, seen: list):
    """A torch.save that writes `after_bytes` bytes, checks the checkpoint's own name is untouched meanwhile,
    then fails with ENOSPC."""
    def save(obj, f, *args, **kwargs):
        seen.append(str(f))
        with open(f, "wb") as stream:
            stream.write(b"\0" * after_bytes)
            stream.flush()
            # what a kill at this moment would leave under the checkpoint's name
            seen.append(target.read_bytes() if target.exists() else None)
            raise OSError(errno.ENOSPC, "No space left on device")
    return save


@pytest.mark.parametrize("cls", TRAINERS)
def test_a_write_failing_half_way_keeps_the_previous_checkpoint_and_names_file_and_cause(cls, tmp_path, monkeypatch):
    trainer = make_trainer(cls, tmp_path)
    target = tmp_path / CHECKPOINT_LATEST
    trainer.save_checkpoint(str(target))
    good = target.read_bytes()
    assert torch.load(target, weights_only=False)["current_epoch"] == 4

    with torch.no_grad():
        trainer.network.weight.add_(1.0)
    trainer.current_epoch = 4
    seen = []
    monkeypatch.setattr(torch, "save", failing_save(4096, target, seen))
    with pytest.raises(CheckpointWriteError) as caught:
        trainer.save_checkpoint(str(target))

    written_to, during = seen
    assert written_to != str(target) and written_to.startswith(str(tmp_path))
    assert during == good, "the checkpoint's own name held a partial file during the write"
    assert target.read_bytes() == good
    assert checkpoint_folder_files(tmp_path) == [CHECKPOINT_LATEST]
    message = str(caught.value)
    assert str(target) in message and "ENOSPC" in message and "No space left on device" in message
    assert "unchanged" in message and "--c" in message
    assert isinstance(caught.value.__cause__, OSError)

    monkeypatch.undo()  # --c: the previous checkpoint loads
    fresh = make_trainer(cls, tmp_path)
    fresh.load_checkpoint(str(target))
    assert fresh.current_epoch == 4
    torch.testing.assert_close(fresh.network.weight, trainer.network.weight - 1.0)


@pytest.mark.parametrize("cls", TRAINERS)
def test_a_failed_first_write_leaves_no_file(cls, tmp_path, monkeypatch):
    trainer = make_trainer(cls, tmp_path)
    target = tmp_path / "checkpoint_best.pth"
    seen = []
    monkeypatch.setattr(torch, "save", failing_save(100, target, seen))
    with pytest.raises(CheckpointWriteError, match="ENOSPC") as caught:
        trainer.save_checkpoint(str(target))
    assert seen[1] is None and checkpoint_folder_files(tmp_path) == []
    assert "no file was left under that name" in str(caught.value)


def test_a_successful_write_replaces_the_file_and_removes_what_a_killed_write_left(tmp_path):
    trainer = make_trainer(SwinUMambaTrainerBase, tmp_path)
    target = tmp_path / CHECKPOINT_LATEST
    target.write_bytes(b"old")
    killed = tmp_path / f".{CHECKPOINT_LATEST}.abc123.tmp"  # the temporary file of a write that was killed
    killed.write_bytes(b"partial")
    other = tmp_path / ".checkpoint_best.pth.xyz.tmp"  # another checkpoint's: left alone
    other.write_bytes(b"partial")
    trainer.save_checkpoint(str(target))
    assert torch.load(target, weights_only=False)["current_epoch"] == 4
    assert not killed.exists() and other.exists()
    assert trainer._last_good_checkpoint == (str(target), 3)
