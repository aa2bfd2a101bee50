"""Session fixtures of the end-to-end tests: nnU-Net workspaces planned once, tiny models trained once.

Each is built on the first request, so `pytest tests/x.py::test_y` builds only what that test needs.
The suite runs on two pytest-xdist workers (pyproject.toml), one test module at a time each: workspaces
and trained folds live in a folder the workers share, and a file lock lets the first worker that needs
one build it while the other waits for it. Session objects are shared: a test that changes a workspace
or a model folder works on a copy (`NnUNetWorkspace.copy_to(tmp_path, models=(...))`,
tests/nnunet_workspace.py). Costs on the quiet 2-core CPU machine:

- ``planned_workspace(spec)``: a factory; the workspace (tests/nnunet_workspace.py) with the data set of a
  `DatasetSpec` planned and preprocessed for `spec.configurations`, once per spec, with nnU-Net's
  fingerprint of its files from tests/nnunet_fingerprints where that is current. The demo's 2d: ~8 s.
  A 3D data set is another spec (`configurations=("3d_fullres",)`) passed to the same factory.
- ``demo_workspace``: ``planned_workspace(DEMO_2D)``: the demo data set (Dataset990, 16 2D training
  and 4 test slices) planned for 2d.
- ``trained_fold(workspace, spec, trainer, fold)``: a factory; the fold folder of ``trainer`` trained once
  per workspace, trainer, plans, configuration and fold, with nnUNetv2_train on the CPU. The tiny
  trainer (one epoch of one iteration, then nnU-Net's validation): ~30 s.
- ``demo_tiny_fold``: fold 0 of the tiny trainer on the demo data (``TINY``), with its validation.
- ``demo_tiny_predictions``: nnUNetv2_predict of the 4 demo test slices with that fold (~8 s). Predictions
  run in nnU-Net's sequential mode (-npp 0 -nps 0): each worker process would start a new Python.
- ``demo3d_workspace``: ``planned_workspace(DEMO_3D)``: the 3D demo data set (Dataset992, 5 training and
  1 test volume of 8 x 72 x 104 voxels, 6 x 3 x 3 mm) planned for 2d and 3d_fullres, the 3d_fullres
  batch set to 1 (one CPU step of the 3D network costs seconds).
- ``demo3d_folds``, ``demo3d_predictions``: the tiny SwinUMambaD trainer (``TINY_D``) on it, 2d and
  3d_fullres, and nnUNetv2_predict of its test volume with each.
- ``imagenet_file``: a synthetic ImageNet checkpoint in the released key layout, and its tensors (~2 s).
"""
from __future__ import annotations

import os

# Two workers and their nnU-Net programs share two cores: OpenMP threads that spin while they wait for
# work take the core from the other process (two trainings at once took a third longer). Set before
# torch is imported here, so the workers and every program they start inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hashlib
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from filelock import FileLock

from swin_umamba.demo.layout import dataset_source
from swin_umamba.nnunet_layout import IMAGES_TS
from tests.nnunet_workspace import DatasetSpec, NnUNetWorkspace

DEMO_2D = DatasetSpec(name=dataset_source().name, source=dataset_source())
TINY = "nnUNetTrainerSwinUMambaScratch_tiny"  # tests/nnunet_trainers/short_trainers.py
TINY_D = "nnUNetTrainerSwinUMambaDScratch_tiny"


def _batch_of_one_in_3d(plans: dict) -> None:
    plans["configurations"]["3d_fullres"]["batch_size"] = 1


DEMO_3D = DatasetSpec(name=dataset_source("3d_fullres").name, configurations=("2d", "3d_fullres"),
                      source=dataset_source("3d_fullres"), edit_plans=_batch_of_one_in_3d)


def pytest_collection_modifyitems(items):
    """Modules with slow tests first: on two workers the long end-to-end modules start early, and the
    short modules fill the gaps at the end instead of leaving one worker idle."""
    slow_modules = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_modules)  # stable: the order within each part is kept


@pytest.fixture(scope="session")
def run_folder(tmp_path_factory) -> Path:
    """This run's temporary folder that every xdist worker shares (each worker's own is inside it)."""
    own = tmp_path_factory.getbasetemp()
    return own.parent if os.environ.get("PYTEST_XDIST_WORKER") else own


@pytest.fixture(scope="session")
def built_once(run_folder):
    """`with built_once(path) as missing:` builds `path` when `missing`, under a lock that other workers
    wait on; what a build that failed half-way left at `path` is removed (`clear`), and the next to ask
    builds it again."""
    @contextmanager
    def guard(path: Path, clear: bool = True):
        locks = run_folder / "locks"
        locks.mkdir(exist_ok=True)
        key = hashlib.sha1(str(path).encode()).hexdigest()[:16]
        done = locks / f"{key}.done"
        with FileLock(locks / f"{key}.lock"):
            missing = not done.exists()
            if missing and clear and path.exists():
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            yield missing
            done.touch()

    return guard


@pytest.fixture(scope="session")
def planned_workspace(run_folder, built_once):
    def planned(spec: DatasetSpec) -> NnUNetWorkspace:
        root = run_folder / f"planned_{spec.name}"
        with built_once(root) as missing:
            if missing:
                NnUNetWorkspace(root).plan(spec)
        return NnUNetWorkspace(root, exist_ok=True)

    return planned


@pytest.fixture(scope="session")
def demo_workspace(planned_workspace) -> NnUNetWorkspace:
    return planned_workspace(DEMO_2D)


@pytest.fixture(scope="session")
def trained_fold(built_once):
    def trained(workspace: NnUNetWorkspace, spec: DatasetSpec, trainer: str, fold: int | str = 0,
                configuration: str | None = None, plans: str = "nnUNetPlans", npz: bool = False) -> Path:
        """npz: keep the validation's probabilities (what find_best_configuration ensembles)."""
        configuration = configuration or spec.configurations[0]
        folder = workspace.model_dir(spec.name, trainer, plans, configuration) / f"fold_{fold}"
        command = ["nnUNetv2_train", spec.dataset_id, configuration, str(fold), "-tr", trainer, "-p", plans,
                   "-device", "cpu"] + (["--npz"] if npz else [])
        with built_once(folder) as missing:
            if missing:
                workspace.run(*command)
        if npz:
            with built_once(folder / "validation", clear=False) as missing:
                if missing and not any((folder / "validation").glob("*.npz")):
                    workspace.run(*command, "--val")
        return folder

    return trained


@pytest.fixture(scope="session")
def demo_tiny_fold(demo_workspace, trained_fold) -> Path:
    return trained_fold(demo_workspace, DEMO_2D, TINY, 0)


@pytest.fixture(scope="session")
def demo_tiny_predictions(demo_workspace, demo_tiny_fold, run_folder, built_once) -> Path:
    """nnUNetv2_predict's output folder for the demo's test images with ``demo_tiny_fold``, probabilities
    kept."""
    ws, out = demo_workspace, run_folder / "demo_tiny_predictions"
    with built_once(out) as missing:
        if missing:
            ws.run("nnUNetv2_predict", "-i", str(ws.raw / DEMO_2D.name / "imagesTs"), "-o", str(out),
                   "-d", DEMO_2D.dataset_id, "-c", "2d", "-tr", TINY, "-f", "0", "-device", "cpu",
                   "--save_probabilities", "-npp", "0", "-nps", "0")
    return out


@pytest.fixture(scope="session")
def demo3d_workspace(planned_workspace) -> NnUNetWorkspace:
    return planned_workspace(DEMO_3D)


@pytest.fixture(scope="session")
def demo3d_folds(demo3d_workspace, trained_fold) -> dict[str, Path]:
    """configuration -> fold 0 of the tiny SwinUMambaD trainer (``TINY_D``) on the 3D demo data, for 2d and
    3d_fullres, validation probabilities kept (what find_best_configuration ensembles)."""
    return {c: trained_fold(demo3d_workspace, DEMO_3D, TINY_D, 0, configuration=c, npz=True)
            for c in DEMO_3D.configurations}


@pytest.fixture(scope="session")
def demo3d_predictions(demo3d_workspace, demo3d_folds, run_folder, built_once) -> dict[str, Path]:
    """configuration -> nnUNetv2_predict's output folder for the 3D demo's NIfTI test volume with that
    configuration's fold, probabilities kept, no test-time mirroring."""
    ws, out = demo3d_workspace, {}
    for configuration in demo3d_folds:
        out[configuration] = run_folder / f"demo3d_predictions_{configuration}"
        with built_once(out[configuration]) as missing:
            if missing:
                ws.run("nnUNetv2_predict", "-i", str(ws.raw / DEMO_3D.name / IMAGES_TS), "-o", str(out[configuration]),
                       "-d", DEMO_3D.dataset_id, "-c", configuration, "-tr", TINY_D, "-f", "0", "-device", "cpu",
                       "--disable_tta", "--save_probabilities", "-npp", "0", "-nps", "0")
    return out


@pytest.fixture(scope="session")
def imagenet_file(tmp_path_factory):
    """(path, tensors) of a synthetic ImageNet checkpoint with the released key layout."""
    from tests.synthetic_weights import write_model_only_checkpoint

    path = tmp_path_factory.mktemp("imagenet") / "vmamba_tiny_e292.pth"
    return path, write_model_only_checkpoint(path)


@pytest.fixture
def deterministic():
    """torch.use_deterministic_algorithms(True) for one test."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(before)
