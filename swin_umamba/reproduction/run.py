"""One reproduction run: its folders, trainer and checkpoint, and the state of its steps (`state.json`)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from swin_umamba.environment import EXT_TRAINER_VAR
from swin_umamba.fileio import write_text_atomic
from swin_umamba.nnunet_layout import DATASET_JSON, IMAGES_TS, LABELS_TS
from swin_umamba.reproduction.recipes import CONFIGURATION, FOLD, PLANS, RECIPES, TRAINERS, Recipe
from swin_umamba.workflow.nnunet_commands import NnUNetModel
from swin_umamba.workflow.nnunet_folders import nnunet_folders, raw_dataset_folder
from swin_umamba.workflow.nnunet_outputs import case_ids
from swin_umamba.workflow.nnunet_runner import nnunet_environment


class ReproduceError(Exception):
    """A problem found before or between the steps; the message says what to do."""


@dataclass
class Run:
    recipe: Recipe
    dataset_name: str
    raw: Path
    preprocessed: Path
    results: Path
    trainer: str
    network: str  # the network's alias (plain / dagger): which published row is ours
    stop_after: int
    device: str
    test_images: Path
    test_labels: Path
    out: Path
    num_gpus: int = 1
    num_processes: int | None = None
    verbose: bool = False

    @property
    def checkpoint_name(self) -> str:
        return f"checkpoint_{self.stop_after - 1}.pth"

    @property
    def model(self) -> NnUNetModel:
        """The model the paper's recipe trains: its configuration and plans, this run's trainer."""
        return NnUNetModel(self.recipe.dataset_id, CONFIGURATION, self.trainer, PLANS)

    @property
    def model_folder(self) -> Path:
        return self.model.fold_folder(self.results, self.dataset_name, FOLD)

    @property
    def step_count(self) -> int:
        """Steps shown: plan, train, predict, (instances,) evaluate."""
        return 5 if self.recipe.task == "cells" else 4

    def __post_init__(self):
        # what the run writes under --out
        self.predictions = self.out / "predictions"
        self.instances = self.out / "instances"
        self.metrics_csv = self.out / "metrics.csv"
        self.state_file = self.out / "state.json"
        self.logs = self.out / "logs"

    # state of the steps done so far -------------------------------------------------------------------
    def load_state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def save_state(self, state: dict) -> None:
        write_text_atomic(self.state_file, json.dumps(state, indent=2) + "\n")


def resolve_dataset_name(raw: Path, recipe: Recipe) -> str:
    """The name of the recipe's dataset folder in nnUNet_raw."""
    return raw_dataset_folder(raw, recipe.dataset_id,
                              fix=f"put U-Mamba's prepared dataset there or build it with `swin-umamba "
                                  f"{recipe.converter}` (docs/reproduction.md)").name


def new_run(dataset_id: int, *, network: str | None = None, trainer: str | None = None,
            stop_after: int | None = None, device: str = "cuda", test_images: Path | None = None,
            test_labels: Path | None = None, out: Path | None = None, num_gpus: int = 1,
            num_processes: int | None = None, verbose: bool = False) -> Run:
    """The run of the paper's recipe for `dataset_id`; None means the recipe's choice or nnU-Net's folder."""
    recipe = RECIPES[dataset_id]
    raw, pre, res = nnunet_folders()
    dataset_name = resolve_dataset_name(raw, recipe)
    if stop_after is not None and stop_after < 1:
        raise ReproduceError("--stop-after must be at least 1")
    if num_processes is not None and num_processes < 0:
        raise ReproduceError("--num-processes must be 0 or more")
    stop_after = stop_after or recipe.stop_after
    network = network or recipe.network
    trainer = trainer or TRAINERS[network]
    test_images = Path(test_images or raw / dataset_name / IMAGES_TS)
    test_labels = Path(test_labels or raw / dataset_name / LABELS_TS)
    out = Path(out or res / dataset_name / f"reproduce__{trainer}__{CONFIGURATION}__epoch{stop_after}")
    for folder, what, option in ((test_images, "test images", "--test-images"),
                                 (test_labels, "test labels", "--test-labels")):
        if not folder.is_dir() or not any(folder.iterdir()):
            raise ReproduceError(f"{what} not found: {folder} is missing or empty; pass {option} DIR (the paper's "
                                 f"test set is described in docs/reproduction.md)")
    return Run(recipe, dataset_name, raw, pre, res, trainer, network, stop_after, device, test_images, test_labels,
               out, num_gpus, num_processes, verbose)


def cases_to_predict(run: Run) -> tuple[list[str], str]:
    """Case ids of the test images (<case>_0000<ending>, ...) and the dataset's file ending."""
    file_ending = json.loads((run.raw / run.dataset_name / DATASET_JSON).read_text())["file_ending"]
    cases = case_ids(run.test_images, file_ending)
    if not cases:
        raise ReproduceError(f"no test image named <case>_0000{file_ending} in {run.test_images}")
    return cases, file_ending


def trainer_network(trainer: str, env: dict[str, str]) -> tuple[str, bool]:
    """(network kind, uses ImageNet weights) of a trainer, found where nnU-Net would find it with `env`."""
    from swin_umamba.network_registry import NETWORKS, network_built_by
    from swin_umamba.workflow.trainer_lookup import TrainerNotFound, find_trainer_class

    try:
        cls = find_trainer_class(trainer, env.get(EXT_TRAINER_VAR, "").split(os.pathsep))
    except TrainerNotFound as exc:
        raise ReproduceError(f"nnU-Net cannot find the trainer {trainer!r}: {exc}") from exc
    network_class = getattr(cls, "network_class", None)
    if network_class is None:
        raise ReproduceError(f"{trainer} is not a Swin-UMamba trainer (no network_class)")
    network = network_built_by(network_class)
    if network is None:
        raise ReproduceError(f"{trainer} builds {network_class.__name__}, which is neither of "
                             f"{', '.join(n.class_name for n in NETWORKS.values())}")
    return network.alias, bool(getattr(cls, "use_imagenet_weights", False))


def trainer_facts(run: Run) -> tuple[str, bool]:
    """trainer_network(), remembered in state.json: a re-run does not import nnU-Net's trainers again."""
    state = run.load_state()
    known = state.get("trainer")
    if isinstance(known, dict) and known.get("name") == run.trainer:
        return known["network"], bool(known["imagenet"])
    kind, imagenet = trainer_network(run.trainer, nnunet_environment())
    if run.state_file.parent.is_dir():
        remember_trainer(run, kind, imagenet)
    return kind, imagenet


def remember_trainer(run: Run, kind: str, imagenet: bool) -> None:
    state = run.load_state()
    state["trainer"] = {"name": run.trainer, "network": kind, "imagenet": imagenet}
    run.save_state(state)
