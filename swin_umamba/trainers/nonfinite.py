"""Non-finite losses: skip the step, stop after several in a row, never checkpoint non-finite weights.

Mamba segmenters sometimes produce NaN or Inf losses, mostly under mixed precision. nnU-Net steps the
optimizer regardless, so one such iteration can spoil the weights, and the next checkpoint then
overwrites a good one with them. The trainer part below:

* makes no optimizer step in an iteration whose loss is not finite (nor, without a gradient scaler,
  one whose gradient norm is not finite; with one, the scaler skips those steps itself);
* stops training with NonFiniteLossError after `$SWIN_UMAMBA_MAX_NONFINITE_ITERATIONS` (default 5)
  such iterations in a row, naming the epoch, the iteration and the last good checkpoint;
* refuses to write a checkpoint whose network weights are not all finite, and stops.
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
import torch.distributed as dist
from torch import autocast

from swin_umamba.environment import MAX_NONFINITE_ITERATIONS_VAR as MAX_NONFINITE_ENV_VAR
from swin_umamba.nnunet_layout import CHECKPOINT_BEST, CHECKPOINT_LATEST
from swin_umamba.trainers.common import finish_data_loaders, positive_int_from_env, unwrap

DEFAULT_MAX_NONFINITE_ITERATIONS = 5
GRADIENT_CLIP_NORM = 12  # nnU-Net's value


class NonFiniteLossError(RuntimeError):
    """Training stopped: too many non-finite iterations in a row, or non-finite weights."""


def non_finite_tensors(state: dict[str, torch.Tensor]) -> list[str]:
    """Keys of the floating-point tensors in `state` that hold a NaN or an infinity."""
    keys = [k for k, v in state.items() if v.is_floating_point()]
    if not keys:
        return []
    finite = torch.stack([torch.isfinite(state[k]).all() for k in keys]).cpu()  # one device sync
    return [k for k, ok in zip(keys, finite.tolist()) if not ok]


class NonFiniteGuardMixin:
    """Trainer part (before nnUNetTrainer in the bases) that replaces nnU-Net's train_step."""

    # consecutive non-finite iterations that stop training; $SWIN_UMAMBA_MAX_NONFINITE_ITERATIONS overrides it
    nonfinite_limit = DEFAULT_MAX_NONFINITE_ITERATIONS
    # per-run state; class defaults so that the mixin needs no __init__ of its own
    _iteration = 0
    _nonfinite_in_a_row: tuple = ()
    _nonfinite_this_epoch = 0
    _last_good_checkpoint: tuple[str, int] | None = None

    def on_train_start(self):
        self.nonfinite_limit = positive_int_from_env(MAX_NONFINITE_ENV_VAR, self.nonfinite_limit)
        super().on_train_start()

    # the step ---------------------------------------------------------------------------------------------
    def on_train_epoch_start(self):
        self._iteration = 0
        self._nonfinite_this_epoch = 0
        super().on_train_epoch_start()

    def _loss_finite_on_every_rank(self, loss: torch.Tensor) -> bool:
        bad = (~torch.isfinite(loss.detach())).any().float()
        if self.is_ddp:  # every rank must skip the backward pass together
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        return not bool(bad.item())

    def train_step(self, batch: dict) -> dict:
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        if isinstance(target, list):
            target = [t.to(self.device, non_blocking=True) for t in target]
        else:
            target = target.to(self.device, non_blocking=True)

        self.optimizer.zero_grad(set_to_none=True)
        # autocast only on CUDA, as in nnU-Net (slow on CPU, unsupported on MPS)
        with autocast(self.device.type, enabled=True) if self.device.type == "cuda" else nullcontext():
            output = self.network(data)
            loss = self.loss(output, target)
        if not self._loss_finite_on_every_rank(loss):
            return self._skip_step("loss", loss)

        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), GRADIENT_CLIP_NORM)
            self.grad_scaler.step(self.optimizer)  # skips the step when the scaled gradients overflowed
            self.grad_scaler.update()
        else:
            loss.backward()
            # with DDP the gradients are averaged already, so every rank decides the same
            norm = torch.nn.utils.clip_grad_norm_(self.network.parameters(), GRADIENT_CLIP_NORM)
            if not torch.isfinite(norm):
                self.optimizer.zero_grad(set_to_none=True)
                return self._skip_step("gradient norm", norm)
            self.optimizer.step()
        self._nonfinite_in_a_row = ()
        self._iteration += 1
        return {"loss": loss.detach().cpu().numpy()}

    def _skip_step(self, what: str, value: torch.Tensor) -> dict:
        where = (self.current_epoch, self._iteration)
        self._nonfinite_in_a_row += (where,)
        self._nonfinite_this_epoch += 1
        self._iteration += 1
        limit = self.nonfinite_limit
        shown = value.detach().float().cpu().numpy()
        self.print_to_log_file(
            f"Epoch {where[0]}, iteration {where[1]}: {what} is {shown}; no optimizer step "
            f"({len(self._nonfinite_in_a_row)} in a row, training stops at {limit})")
        if len(self._nonfinite_in_a_row) >= limit:
            self._stop(self._stop_message(what, limit))
        return {"loss": np.array(np.nan, dtype=np.float32)}

    def on_train_epoch_end(self, train_outputs: list[dict]):
        finite = [o for o in train_outputs if np.all(np.isfinite(o["loss"]))]
        if self._nonfinite_this_epoch:
            self.print_to_log_file(f"Epoch {self.current_epoch}: {self._nonfinite_this_epoch} of {len(train_outputs)} "
                                   f"iterations made no optimizer step (non-finite loss or gradients); the train "
                                   f"loss is the mean of the others")
        super().on_train_epoch_end(finite or train_outputs)

    # stopping -----------------------------------------------------------------------------------------------
    def _last_good_checkpoint_text(self) -> str:
        if self._last_good_checkpoint is None:
            return "none written or loaded in this run yet"
        path, epoch = self._last_good_checkpoint
        return f"{path} (epoch {epoch})"

    def _stop_message(self, what: str, limit: int) -> str:
        (e0, i0), (e1, i1) = self._nonfinite_in_a_row[0], self._nonfinite_in_a_row[-1]
        span = f"epoch {e1}, iterations {i0}-{i1}" if e0 == e1 else f"epoch {e0} iteration {i0} to epoch {e1} iteration {i1}"
        return (
            f"Training stopped at epoch {e1}, iteration {i1}: the {what} was not finite in {limit} iterations in a row "
            f"({span}; {MAX_NONFINITE_ENV_VAR} sets the limit). None of them changed the weights. "
            f"Last good checkpoint: {self._last_good_checkpoint_text()}. Check the training images for NaN/Inf "
            f"values or lower the learning rate, then resume with nnUNetv2_train ... --c "
            f"(it continues from {CHECKPOINT_LATEST}, else {CHECKPOINT_BEST}).")

    def _stop(self, message: str) -> None:
        self.print_to_log_file(message)
        finish_data_loaders(self)
        raise NonFiniteLossError(message)

    # checkpoints -----------------------------------------------------------------------------------------
    def save_checkpoint(self, filename: str) -> None:
        bad = non_finite_tensors(unwrap(self.network).state_dict())
        if bad:
            self._stop(
                f"Checkpoint {filename} NOT written: {len(bad)} weight tensors hold NaN or Inf (e.g. {bad[:3]}), "
                f"at epoch {self.current_epoch}. Existing checkpoints are left as they are; last good checkpoint: "
                f"{self._last_good_checkpoint_text()}.")
        super().save_checkpoint(filename)
        if self.local_rank == 0 and not self.disable_checkpointing:
            self._last_good_checkpoint = (filename, self.current_epoch)

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        super().load_checkpoint(filename_or_checkpoint)
        if isinstance(filename_or_checkpoint, str):
            self._last_good_checkpoint = (filename_or_checkpoint, self.current_epoch - 1)
