"""nnU-Net's console programs as argument lists: one typed builder per program.

Each builder returns [program, argument, ...] with the program resolved by `nnunet_tool` (the script
beside this Python, else on PATH), ready for `run_logged`. Nothing here has a configuration of its
own: every caller says which one it runs (the paper's is in reproduction/recipes.py, the demo's in
demo/layout.py, a comparison reads it from the trained model).

    NnUNetModel(dataset, configuration, trainer, plans)             what -d -c -tr -p name
    plan_and_preprocess_command(dataset, configurations, ...)       nnUNetv2_plan_and_preprocess
    plan_experiment_command(dataset, planner)                       nnUNetv2_plan_experiment
    preprocess_command(dataset, plans, configurations, ...)         nnUNetv2_preprocess
    train_command(model, fold, device=..., ...)                     nnUNetv2_train
    predict_command(model, images, out, folds, device=..., ...)     nnUNetv2_predict
    find_best_configuration_command(dataset, configurations, ...)   nnUNetv2_find_best_configuration
    ensemble_command(folders, out, ...)                             nnUNetv2_ensemble
    command_line(command)                                           the line a user would type (bare program name)
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from swin_umamba.nnunet_layout import fold_folder, model_folder
from swin_umamba.workflow import nnunet_runner

PLAN_AND_PREPROCESS = "nnUNetv2_plan_and_preprocess"
PLAN_EXPERIMENT = "nnUNetv2_plan_experiment"
PREPROCESS = "nnUNetv2_preprocess"
TRAIN = "nnUNetv2_train"
PREDICT = "nnUNetv2_predict"
FIND_BEST_CONFIGURATION = "nnUNetv2_find_best_configuration"
ENSEMBLE = "nnUNetv2_ensemble"


@dataclass(frozen=True)
class NnUNetModel:
    """One model as nnU-Net names it: dataset (id or DatasetXXX_Name), configuration, trainer, plans."""

    dataset: int | str
    configuration: str
    trainer: str
    plans: str

    def folder(self, results: Path, dataset_name: str) -> Path:
        """TRAINER__PLANS__CONFIGURATION under $nnUNet_results/`dataset_name`."""
        return model_folder(results, dataset_name, self.trainer, self.plans, self.configuration)

    def fold_folder(self, results: Path, dataset_name: str, fold: str | int) -> Path:
        return fold_folder(self.folder(results, dataset_name), fold)


def _program(name: str) -> str:
    return nnunet_runner.nnunet_tool(name)


def _planning_workers(workers: int | None) -> str | None:
    # planning and preprocessing have no sequential mode: 0 asks for the fewest processes, one
    return None if workers is None else str(max(1, workers))


def command_line(command: Sequence[str]) -> str:
    """The command as a user types it: the program's bare name, then its arguments, shell-quoted."""
    return shlex.join([Path(command[0]).name, *command[1:]])


def plan_and_preprocess_command(dataset: int | Sequence[int], configurations: Sequence[str], *,
                                planner: str | None = None, verify_dataset_integrity: bool = True,
                                preprocess: bool = True, workers: int | None = None) -> list[str]:
    """Fingerprint, plans and (unless not `preprocess`: --no_pp) preprocessed data of `configurations`
    for one dataset id or several; `planner` is -pl (nnU-Net's ExperimentPlanner when None); `workers`
    processes for the fingerprint (-npfp) and for the preprocessing (-np), nnU-Net's defaults when
    None, at least 1."""
    ids = [dataset] if isinstance(dataset, (int, str)) else list(dataset)
    command = [_program(PLAN_AND_PREPROCESS), "-d", *_nonempty(ids, "datasets"), "-c", *_configurations(configurations)]
    if planner is not None:
        command += ["-pl", planner]
    if verify_dataset_integrity:
        command.append("--verify_dataset_integrity")
    if (n := _planning_workers(workers)) is not None:
        command += ["-npfp", n, "-np", n]
    if not preprocess:
        command.append("--no_pp")
    return command


def plan_experiment_command(dataset: int, planner: str) -> list[str]:
    """Plans of another planner (e.g. nnUNetPlannerResEncM) from the fingerprint that is there already."""
    return [_program(PLAN_EXPERIMENT), "-d", str(dataset), "-pl", planner]


def preprocess_command(dataset: int, plans: str, configurations: Sequence[str], *,
                       workers: int | None = None) -> list[str]:
    """The preprocessed data of `configurations` under the plans `plans` (-np: `workers` for each, at least 1)."""
    command = [_program(PREPROCESS), "-d", str(dataset), "-plans_name", plans, "-c", *_configurations(configurations)]
    if (n := _planning_workers(workers)) is not None:
        command += ["-np", n]
    return command


def train_command(model: NnUNetModel, fold: str | int, *, device: str, resume: bool = False, num_gpus: int = 1,
                  pretrained_weights: Path | None = None, save_softmax: bool = False) -> list[str]:
    """nnUNetv2_train of one fold; `resume` continues from the latest checkpoint (--c), `save_softmax`
    keeps the validation probabilities that find_best_configuration and ensembling read (--npz)."""
    command = [_program(TRAIN), str(model.dataset), model.configuration, str(fold), "-tr", model.trainer,
               "-p", model.plans, "-device", device]
    if num_gpus > 1:
        command += ["-num_gpus", str(num_gpus)]
    if pretrained_weights is not None:
        command += ["-pretrained_weights", str(pretrained_weights)]
    if save_softmax:
        command.append("--npz")
    if resume:
        command.append("--c")
    return command


def predict_command(model: NnUNetModel, images: Path, out: Path, folds: Sequence[str | int], *, device: str,
                    checkpoint: str | None = None, disable_tta: bool = False, save_probabilities: bool = False,
                    previous_stage: Path | None = None, workers: int | None = None,
                    progress_bar: bool = False) -> list[str]:
    """nnUNetv2_predict of the images in `images` into `out` with the model's `folds`; `checkpoint` is the
    file name in each fold (-chk, nnU-Net's checkpoint_final.pth when None); `previous_stage` the
    low-resolution predictions a cascade reads; `workers` processes for preprocessing and export
    (-npp/-nps, 0: nnU-Net's sequential mode, its defaults when None)."""
    command = [_program(PREDICT), "-i", str(images), "-o", str(out), "-d", str(model.dataset),
               "-c", model.configuration, "-tr", model.trainer, "-p", model.plans, "-f", *_folds(folds)]
    if checkpoint is not None:
        command += ["-chk", checkpoint]
    if disable_tta:
        command.append("--disable_tta")
    command += ["-device", device]
    if previous_stage is not None:
        command += ["-prev_stage_predictions", str(previous_stage)]
    if save_probabilities:
        command.append("--save_probabilities")
    if not progress_bar:
        command.append("--disable_progress_bar")
    if workers is not None:
        command += ["-npp", str(workers), "-nps", str(workers)]
    return command


def find_best_configuration_command(dataset: int | str, configurations: Sequence[str], *, trainers: Sequence[str],
                                    plans: Sequence[str], folds: Sequence[str | int], ensembling: bool = True,
                                    workers: int | None = None) -> list[str]:
    """nnUNetv2_find_best_configuration over every combination of `plans`, `configurations` and `trainers`
    trained on `folds` (cross-validation folds: whole numbers, not "all")."""
    numbered = _folds(folds)
    if not all(f.isdigit() for f in numbered):
        raise ValueError(f"find_best_configuration compares cross-validation folds (0, 1, ...), got {' '.join(numbered)}")
    command = [_program(FIND_BEST_CONFIGURATION), str(dataset), "-p", *_nonempty(plans, "plans"),
               "-c", *_configurations(configurations), "-tr", *_nonempty(trainers, "trainers"), "-f", *numbered]
    if workers is not None:
        command += ["-np", str(max(1, workers))]
    if not ensembling:
        command.append("--disable_ensembling")
    return command


def ensemble_command(folders: Sequence[Path], out: Path, *, save_probabilities: bool = False,
                     workers: int | None = None) -> list[str]:
    """nnUNetv2_ensemble: the mean of the probabilities in `folders` (each predicted with
    --save_probabilities) into `out`; `save_probabilities` keeps the ensemble's own (--save_npz)."""
    if len(folders) < 2:
        raise ValueError(f"an ensemble needs at least two folders of predictions, got {len(folders)}")
    command = [_program(ENSEMBLE), "-i", *(str(f) for f in folders), "-o", str(out)]
    if workers is not None:
        command += ["-np", str(max(1, workers))]
    if save_probabilities:
        command.append("--save_npz")
    return command


def _configurations(configurations: Sequence[str]) -> list[str]:
    if isinstance(configurations, str):  # one name, not its letters
        configurations = [configurations]
    return _nonempty(configurations, "configurations")


def _folds(folds: Sequence[str | int]) -> list[str]:
    if isinstance(folds, (str, int)):
        folds = [folds]
    return _nonempty([str(f) for f in folds], "folds")


def _nonempty(values: Sequence[str], what: str) -> list[str]:
    if isinstance(values, str):
        values = [values]
    values = [str(v) for v in values]
    if not values:
        raise ValueError(f"no {what} given")
    return values
