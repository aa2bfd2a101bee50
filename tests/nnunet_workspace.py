"""nnU-Net's three folders under a test's temporary root, the environment for its commands there, and the
data sets the session fixtures of tests/conftest.py plan into such a workspace."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from swin_umamba.environment import CACHE_DIR_VAR

REPO = Path(__file__).resolve().parent.parent
TEST_TRAINERS = REPO / "tests" / "nnunet_trainers"
BIN = Path(sys.executable).parent
# variables of ours that change what a trainer does: never inherited from the developer's shell
OUR_VARIABLES = ("SWIN_UMAMBA_PRETRAINED", "SWIN_UMAMBA_STOP_AFTER_EPOCHS")


def both_trainer_folders() -> str:
    """nnUNet_extTrainer with the package's trainers and the test trainers (tests/nnunet_trainers)."""
    from swin_umamba.commands.setup import trainers_dir

    return os.pathsep.join([str(trainers_dir()), str(TEST_TRAINERS)])


@dataclass(frozen=True)
class DatasetSpec:
    """A raw data set and how to plan it: `name` is its folder (DatasetNNN_Name) in nnUNet_raw, copied
    from `source` or written by `build(raw_folder)`; `configurations` are planned and preprocessed, after
    nnU-Net's integrity check where `verify`; `edit_plans(plans)` may change nnUNetPlans.json afterwards
    (a smaller patch, a smaller batch)."""

    name: str
    configurations: tuple[str, ...] = ("2d",)
    source: Path | None = None
    build: Callable[[Path], None] | None = None
    edit_plans: Callable[[dict], None] | None = None
    verify: bool = True

    @property
    def dataset_id(self) -> str:
        return str(int(self.name[len("Dataset"):len("Dataset") + 3]))

    def write_raw(self, raw: Path) -> None:
        if self.source is not None:
            shutil.copytree(self.source, raw / self.name)
        else:
            self.build(raw)


class NnUNetWorkspace:
    """raw/, preprocessed/ and results/ under ``root`` (created) and ``env``: this process's
    environment with nnU-Net pointed at them, ``ext_trainer`` as nnUNet_extTrainer (default: the
    package's and the test trainers), one worker process, and the variables in ``unset`` removed."""

    def __init__(self, root: Path, ext_trainer: str | None = None, unset: tuple[str, ...] = OUR_VARIABLES,
                 exist_ok: bool = False):
        self.root = root
        self.raw, self.pre, self.results = root / "raw", root / "preprocessed", root / "results"
        for folder in (self.raw, self.pre, self.results):
            folder.mkdir(parents=True, exist_ok=exist_ok)
        self.env = {
            **os.environ,
            "nnUNet_raw": str(self.raw),
            "nnUNet_preprocessed": str(self.pre),
            "nnUNet_results": str(self.results),
            "nnUNet_extTrainer": ext_trainer or both_trainer_folders(),
            "nnUNet_def_n_proc": "1",
            "nnUNet_n_proc_DA": "1",
            "nnUNet_compile": "f",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            # an empty download cache: a file the developer downloaded must not change what the tests see
            CACHE_DIR_VAR: str(root / "download-cache"),
        }
        for var in unset:
            self.env.pop(var, None)

    def run(self, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """One of this environment's console scripts (args[0], e.g. nnUNetv2_train) with ``env`` on top."""
        cmd = [str(BIN / args[0]), *args[1:]]
        proc = subprocess.run(cmd, env={**self.env, **(env or {})}, capture_output=True, text=True, cwd=self.root)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                                 f"{proc.stderr[-5000:]}")
        return proc

    def activate(self, monkeypatch, programs: bool = False) -> None:
        """This workspace's nnU-Net variables in this process's environment (for in-process nnU-Net calls;
        nnU-Net reads them when it uses a path, not at import); with `programs`, all of ``env``, for a
        command of ours run in this process that starts nnU-Net programs."""
        keys = self.env if programs else ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results",
                                          "nnUNet_extTrainer", CACHE_DIR_VAR)
        for key in keys:
            monkeypatch.setenv(key, self.env[key])
        for var in OUR_VARIABLES:
            monkeypatch.delenv(var, raising=False)

    def model_dir(self, dataset: str, trainer: str, plans: str = "nnUNetPlans", configuration: str = "2d") -> Path:
        return self.results / dataset / f"{trainer}__{plans}__{configuration}"

    def plan(self, spec: DatasetSpec, known_fingerprint: bool = True) -> None:
        """Writes the raw data set, runs nnUNetv2_plan_and_preprocess for its configurations, edits the plans.
        With `known_fingerprint`, nnU-Net's fingerprint of these very files is placed first when
        tests/nnunet_fingerprints keeps it (nnU-Net then reuses it instead of sampling again)."""
        from tests.nnunet_fingerprints import FINGERPRINT_FILE, stored_fingerprint

        spec.write_raw(self.raw)
        fingerprint = stored_fingerprint(self.raw / spec.name) if known_fingerprint else None
        if fingerprint is not None:
            (self.pre / spec.name).mkdir(parents=True, exist_ok=True)
            (self.pre / spec.name / FINGERPRINT_FILE).write_text(json.dumps(fingerprint))
        self.run("nnUNetv2_plan_and_preprocess", "-d", spec.dataset_id, "-c", *spec.configurations,
                 *(["--verify_dataset_integrity"] if spec.verify else []), "-npfp", "1",
                 "-np", *["1"] * len(spec.configurations))
        if spec.edit_plans is not None:
            path = self.pre / spec.name / "nnUNetPlans.json"
            plans = json.loads(path.read_text())
            spec.edit_plans(plans)
            path.write_text(json.dumps(plans, indent=1))

    def copy_to(self, root: Path, models: tuple[Path, ...] = ()) -> "NnUNetWorkspace":
        """A private copy under ``root``: raw/ and preprocessed/ whole, of results/ only the model folders
        in ``models`` (checkpoints are hundreds of MB each); same environment, re-pointed."""
        for name in ("raw", "preprocessed"):
            shutil.copytree(self.root / name, root / name)
        for model in models:
            shutil.copytree(model, root / "results" / model.relative_to(self.results))
        copy = NnUNetWorkspace(root, exist_ok=True)
        copy.env = {**self.env, **{k: copy.env[k] for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results",
                                                              CACHE_DIR_VAR)}}
        return copy
