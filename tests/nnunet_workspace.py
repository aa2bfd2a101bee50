"""nnU-Net's three folders under a test's temporary root, and the environment for its commands there."""
from __future__ import annotations

import os
from pathlib import Path


class NnUNetWorkspace:
    """raw/, preprocessed/ and results/ under ``root`` (created) and ``env``: this process's
    environment with nnU-Net pointed at them, ``ext_trainer`` as nnUNet_extTrainer, one
    worker process, and the variables in ``unset`` removed."""

    def __init__(self, root: Path, ext_trainer: str, unset: tuple[str, ...] = ()):
        self.root = root
        self.raw, self.pre, self.results = root / "raw", root / "preprocessed", root / "results"
        for folder in (self.raw, self.pre, self.results):
            folder.mkdir(parents=True)
        self.env = {
            **os.environ,
            "nnUNet_raw": str(self.raw),
            "nnUNet_preprocessed": str(self.pre),
            "nnUNet_results": str(self.results),
            "nnUNet_extTrainer": ext_trainer,
            "nnUNet_def_n_proc": "1",
            "nnUNet_n_proc_DA": "1",
        }
        for var in unset:
            self.env.pop(var, None)
