"""Non-finite losses and weights: no optimizer step, stop after several in a row, no bad checkpoint.

The trainer part runs on nnU-Net's own trainer class (its logging, epoch hooks and save_checkpoint)
with a tiny network instead of a planned data set.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from swin_umamba.environment import MAX_NONFINITE_ITERATIONS_VAR
from swin_umamba.trainers.lr_schedule import CosineLRScheduler
from swin_umamba.trainers.nonfinite import NonFiniteGuardMixin, NonFiniteLossError, non_finite_tensors
from tests.bare_trainer import bare_trainer


class GuardedTrainer(NonFiniteGuardMixin, nnUNetTrainer):
    pass


class ScriptedLoss:
    """Mean squared output, multiplied by NaN on the calls listed in `nan_calls` (0-based)."""

    def __init__(self, nan_calls):
        self.nan_calls, self.calls = set(nan_calls), 0

    def __call__(self, output, target):
        loss = (output - target).pow(2).mean()
        if self.calls in self.nan_calls:
            loss = loss * torch.tensor(float("nan"))
        self.calls += 1
        return loss


def make_trainer(folder, loss, limit: int = 3) -> GuardedTrainer:
    """Only what train_step, the epoch hooks and save_checkpoint read: no plans, no data."""
    trainer = bare_trainer(GuardedTrainer, folder)
    trainer.lr_scheduler = CosineLRScheduler(trainer.optimizer, 1e-2, 10)
    trainer.loss = loss
    trainer.nonfinite_limit = limit
    return trainer


BATCH = {"data": torch.randn(2, 1, 8, 8), "target": torch.zeros(2, 2, 8, 8)}


def _snapshot(trainer):
    weights = {k: v.clone() for k, v in trainer.network.state_dict().items()}
    steps = [trainer.optimizer.state[p].get("step", torch.tensor(0.0)).clone() for p in trainer.network.parameters()]
    return weights, steps


def test_nan_iteration_makes_no_optimizer_step(tmp_path):
    trainer = make_trainer(tmp_path, ScriptedLoss(nan_calls={1}))
    trainer.on_train_epoch_start()
    assert np.isfinite(trainer.train_step(BATCH)["loss"])
    weights, steps = _snapshot(trainer)
    assert all(s == 1 for s in steps)

    assert np.isnan(trainer.train_step(BATCH)["loss"])
    after_weights, after_steps = _snapshot(trainer)
    assert all(torch.equal(after_weights[k], weights[k]) for k in weights), "a NaN iteration changed the weights"
    assert [int(s) for s in after_steps] == [int(s) for s in steps] == [1, 1], "a NaN iteration stepped AdamW"
    assert all(p.grad is None for p in trainer.network.parameters())

    trainer.train_step(BATCH)  # a finite loss steps again and ends the run of bad iterations
    assert all(int(s) == 2 for s in _snapshot(trainer)[1])
    assert trainer._nonfinite_in_a_row == ()
    log = (tmp_path / "training_log.txt").read_text()
    line = next(line for line in log.splitlines() if "Epoch 0, iteration 1:" in line)
    assert "nan" in line and "1 in a row" in line and "stops at 3" in line


def test_epoch_train_loss_leaves_out_the_skipped_iterations(tmp_path):
    trainer = make_trainer(tmp_path, ScriptedLoss(nan_calls={0}))
    trainer.on_train_epoch_start()
    outputs = [trainer.train_step(BATCH) for _ in range(3)]
    trainer.on_train_epoch_end(outputs)
    assert trainer.logger.get_value("train_losses", step=-1) == pytest.approx(np.mean([outputs[1]["loss"], outputs[2]["loss"]]))
    assert "Epoch 0: 1 of 3 iterations" in (tmp_path / "training_log.txt").read_text()


def test_infinite_gradients_make_no_step_either(tmp_path):
    trainer = make_trainer(tmp_path, ScriptedLoss(nan_calls=()))
    trainer.network.weight.register_hook(lambda g: g * float("inf"))
    trainer.on_train_epoch_start()
    weights, _ = _snapshot(trainer)
    trainer.train_step(BATCH)
    assert all(torch.equal(trainer.network.state_dict()[k], weights[k]) for k in weights)
    assert "gradient norm is inf" in (tmp_path / "training_log.txt").read_text()


def test_consecutive_nan_losses_stop_training_naming_epoch_iteration_and_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, ScriptedLoss(nan_calls=range(3, 100)))
    trainer.on_train_epoch_start()
    for _ in range(3):
        trainer.train_step(BATCH)
    trainer.save_checkpoint(str(tmp_path / "checkpoint_best.pth"))
    trainer.current_epoch = 1
    trainer.on_train_epoch_start()
    trainer.train_step(BATCH)
    trainer.train_step(BATCH)
    with pytest.raises(NonFiniteLossError) as err:
        trainer.train_step(BATCH)
    message = str(err.value)
    assert "epoch 1, iteration 2" in message and "3 iterations" in message and "epoch 1, iterations 0-2" in message
    assert f"{tmp_path / 'checkpoint_best.pth'} (epoch 0)" in message
    assert f"{MAX_NONFINITE_ITERATIONS_VAR} sets the limit" in message and "--c" in message
    assert message in (tmp_path / "training_log.txt").read_text()


def test_a_run_of_nan_losses_across_epochs_counts_as_one(tmp_path):
    trainer = make_trainer(tmp_path, ScriptedLoss(nan_calls=range(1, 100)), limit=4)
    trainer.on_train_epoch_start()
    for _ in range(3):
        trainer.train_step(BATCH)  # iteration 0 good, 1 and 2 NaN
    trainer.current_epoch = 1
    trainer.on_train_epoch_start()
    trainer.train_step(BATCH)
    with pytest.raises(NonFiniteLossError, match=r"epoch 0 iteration 1 to epoch 1 iteration 1; .*"
                                                 r"Last good checkpoint: none written or loaded in this run yet"):
        trainer.train_step(BATCH)


def test_checkpoint_with_non_finite_weights_is_refused_and_the_good_one_kept(tmp_path):
    trainer = make_trainer(tmp_path, ScriptedLoss(nan_calls=()))
    good = tmp_path / "checkpoint_latest.pth"
    trainer.save_checkpoint(str(good))
    written = good.read_bytes()
    with torch.no_grad():
        trainer.network.bias[1] = float("inf")
    trainer.current_epoch = 4
    with pytest.raises(NonFiniteLossError) as err:
        trainer.save_checkpoint(str(good))
    assert good.read_bytes() == written
    message = str(err.value)
    assert f"{good} NOT written" in message and "1 weight tensors" in message and "['bias']" in message
    assert "epoch 4" in message and f"{good} (epoch 0)" in message


def test_non_finite_tensors_names_only_the_bad_floating_point_ones():
    state = {"a": torch.ones(3), "b": torch.tensor([1.0, float("nan")]), "steps": torch.tensor([7]),
             "c": torch.tensor([float("-inf")])}
    assert non_finite_tensors(state) == ["b", "c"]
    assert non_finite_tensors({"n": torch.tensor([1])}) == []
