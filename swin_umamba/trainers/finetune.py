"""`nnUNetv2_train ... -pretrained_weights FILE` for Swin-UMamba sources with other labels or channels.

nnU-Net's loader transfers every tensor except those under `.seg_layers.` and asserts that all others
match, so a source with another class count (SwinUMamba's heads are `out_layers`) or another channel
count stops with an assertion. nnU-Net offers no hook for this; `nnUNetv2_train` calls the loader
through the name `load_pretrained_weights` of `nnunetv2.run.run_training`. The trainer puts a router
under that name when it is initialised (in memory; nnU-Net's files are untouched): for the network of
a Swin-UMamba trainer it calls `trainer.load_pretrained_weights`, for any other network nnU-Net's own
loader, unchanged.
"""
from __future__ import annotations

import functools
import weakref

from swin_umamba.checkpoint_transfer import TransferReport, transfer_weights
from swin_umamba.trainers.common import unwrap

# network object -> weak reference to the trainer that owns it
_OWNERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _router(stock):
    @functools.wraps(stock)
    def load_pretrained_weights(network, fname, verbose=False):
        owner = _OWNERS.get(network)
        trainer = owner() if owner is not None else None
        if trainer is None:
            return stock(network, fname, verbose=verbose)
        trainer.load_pretrained_weights(fname)

    load_pretrained_weights.routes_swin_umamba = True
    return load_pretrained_weights


def route_pretrained_weights(trainer) -> None:
    """Make nnUNetv2_train's -pretrained_weights call `trainer.load_pretrained_weights` for its network."""
    import nnunetv2.run.run_training as run_training

    if not getattr(run_training.load_pretrained_weights, "routes_swin_umamba", False):
        run_training.load_pretrained_weights = _router(run_training.load_pretrained_weights)
    _OWNERS[trainer.network] = weakref.ref(trainer)


class PretrainedWeightsMixin:
    """Trainer part: -pretrained_weights through checkpoint_transfer, with its report in the training log."""

    def initialize(self):
        super().initialize()
        route_pretrained_weights(self)

    def load_pretrained_weights(self, path) -> TransferReport:
        """Start from checkpoint `path`: heads (and input layers of another channel count) stay fresh."""
        if not self.was_initialized:
            self.initialize()
        report = transfer_weights(unwrap(self.network), path)
        for line in report.summary_lines():
            self.print_to_log_file(line)
        self._weights_restored = True  # the ImageNet file is then not read (see on_train_start)
        return report
