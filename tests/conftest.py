"""Session fixtures of the end-to-end tests: nnU-Net workspaces planned once, tiny models trained once.

Each is built on the first request, so `pytest tests/x.py::test_y` builds only what that test needs.
Session objects are shared: a test that changes a workspace or a model folder works on a copy
(`NnUNetWorkspace.copy_to(tmp_path, models=(...))`, tests/nnunet_workspace.py). Costs on the quiet
2-core CPU machine:

- ``planned_workspace(spec)``: a factory; the workspace (tests/nnunet_workspace.py) with the data set of a
  `DatasetSpec` planned and preprocessed for `spec.configurations`, once per spec. The demo's 2d: ~15 s.
  A 3D data set is another spec (`configurations=("3d_fullres",)`) passed to the same factory.
- ``demo_workspace``: ``planned_workspace(DEMO_2D)``: the demo data set (Dataset990, 16 2D training
  and 4 test slices) planned for 2d.
- ``trained_fold(workspace, spec, trainer, fold)``: a factory; the fold folder of ``trainer`` trained once
  per workspace, trainer, plans, configuration and fold, with nnUNetv2_train on the CPU. The tiny
  trainer (one epoch of one iteration, then nnU-Net's validation): ~30 s.
- ``demo_tiny_fold``: fold 0 of the tiny trainer on the demo data (``TINY``), with its validation.
- ``demo3d_workspace``: ``planned_workspace(DEMO_3D)``: the 3D demo data set (Dataset992, 5 training and
  1 test volume of 8 x 72 x 104 voxels, 6 x 3 x 3 mm) planned for 2d and 3d_fullres, the 3d_fullres
  batch set to 1 (one CPU step of the 3D network costs seconds).
- ``imagenet_file``: a synthetic ImageNet checkpoint in the released key layout, and its tensors (~2 s).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from swin_umamba.demo.layout import dataset_source
from tests.nnunet_workspace import DatasetSpec, NnUNetWorkspace

DEMO_2D = DatasetSpec(name=dataset_source().name, source=dataset_source())
TINY = "nnUNetTrainerSwinUMambaScratch_tiny"  # tests/nnunet_trainers/short_trainers.py
TINY_D = "nnUNetTrainerSwinUMambaDScratch_tiny"


def _batch_of_one_in_3d(plans: dict) -> None:
    plans["configurations"]["3d_fullres"]["batch_size"] = 1


DEMO_3D = DatasetSpec(name=dataset_source("3d_fullres").name, configurations=("2d", "3d_fullres"),
                      source=dataset_source("3d_fullres"), edit_plans=_batch_of_one_in_3d)


@pytest.fixture(scope="session")
def planned_workspace(tmp_path_factory):
    built: dict[DatasetSpec, NnUNetWorkspace] = {}

    def planned(spec: DatasetSpec) -> NnUNetWorkspace:
        if spec not in built:
            workspace = NnUNetWorkspace(tmp_path_factory.mktemp(f"planned_{spec.name}"))
            workspace.plan(spec)
            built[spec] = workspace
        return built[spec]

    return planned


@pytest.fixture(scope="session")
def demo_workspace(planned_workspace) -> NnUNetWorkspace:
    return planned_workspace(DEMO_2D)


@pytest.fixture(scope="session")
def trained_fold():
    def trained(workspace: NnUNetWorkspace, spec: DatasetSpec, trainer: str, fold: int | str = 0,
                configuration: str | None = None, plans: str = "nnUNetPlans", npz: bool = False) -> Path:
        """npz: keep the validation's probabilities (what find_best_configuration ensembles)."""
        configuration = configuration or spec.configurations[0]
        folder = workspace.model_dir(spec.name, trainer, plans, configuration) / f"fold_{fold}"
        command = ["nnUNetv2_train", spec.dataset_id, configuration, str(fold), "-tr", trainer, "-p", plans,
                   "-device", "cpu"] + (["--npz"] if npz else [])
        if not (folder / "checkpoint_final.pth").is_file():
            workspace.run(*command)
        elif npz and not any((folder / "validation").glob("*.npz")):
            workspace.run(*command, "--val")
        return folder

    return trained


@pytest.fixture(scope="session")
def demo_tiny_fold(demo_workspace, trained_fold) -> Path:
    return trained_fold(demo_workspace, DEMO_2D, TINY, 0)


@pytest.fixture(scope="session")
def demo3d_workspace(planned_workspace) -> NnUNetWorkspace:
    return planned_workspace(DEMO_3D)


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
