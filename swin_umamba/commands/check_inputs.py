"""`swin-umamba check-inputs`: check a folder of images (and the model) before nnUNetv2_predict reads them.

    swin-umamba check-inputs -i imagesTs -d 702 -c 2d -tr nnUNetTrainerSwinUMamba [-p nnUNetPlans] [-f 0 1] [-chk ...]
    swin-umamba check-inputs -i imagesTs -m $nnUNet_results/Dataset702_AbdomenMR/nnUNetTrainerSwinUMamba__nnUNetPlans__2d
    swin-umamba check-inputs -i imagesTr --dataset-json $nnUNet_raw/Dataset702_AbdomenMR/dataset.json

Prints every problem with the file concerned and its fix; exits 1 when there is any, 0 otherwise.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from swin_umamba.environment import NNUNET_RESULTS_VAR
from swin_umamba.input_checks import (DEFAULT_CHECKPOINT, Problem, check_images_folder, check_input_folder,
                                      check_prediction_inputs, expectation_from_dataset_json, format_problems)
from swin_umamba.nnunet_layout import DEFAULT_PLANS
from swin_umamba.reproduction.recipes import CONFIGURATION

DEFAULT_FOLDS = ("0", "1", "2", "3", "4")  # nnUNetv2_predict's default


def model_folder_of(dataset: str, trainer: str, plans: str, configuration: str) -> tuple[Path | None, list[Problem]]:
    """nnU-Net's model folder for these names, found the way nnUNetv2_predict finds it."""
    import os

    if not os.environ.get(NNUNET_RESULTS_VAR):
        return None, [Problem(Path("$nnUNet_results"), "not set", "export nnUNet_results=/path/to/nnUNet_results "
                                                                    "(the folder nnUNetv2_train wrote the model to)")]
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    try:
        return Path(get_output_folder(dataset, trainer, plans, configuration)), []
    except RuntimeError as exc:  # nnU-Net's "could not find a dataset with the ID ..."
        return None, [Problem(Path(os.environ[NNUNET_RESULTS_VAR]), f"dataset {dataset}: {exc}",
                              "check -d, nnUNet_raw, nnUNet_preprocessed and nnUNet_results")]


def check(args: argparse.Namespace) -> tuple[list[Problem], int]:
    """(problems, number of cases checked) for the parsed command line."""
    if args.dataset_json is not None:
        expected, problems = expectation_from_dataset_json(args.dataset_json)
        if expected is None:
            return problems + check_input_folder(args.input), 0
        return check_images_folder(args.input, expected)
    folder = args.model_folder
    if folder is None:
        folder, problems = model_folder_of(args.dataset, args.trainer, args.plans, args.configuration)
        if folder is None:
            return problems + check_input_folder(args.input), 0
    return check_prediction_inputs(args.input, folder, args.folds, args.checkpoint)


def run(args: argparse.Namespace) -> int:
    if args.model_folder is None and args.dataset_json is None and not (args.dataset and args.trainer):
        print("error: give the model (-d DATASET -tr TRAINER, or -m MODEL_FOLDER) or --dataset-json FILE",
              file=sys.stderr)
        return 2
    problems, cases = check(args)
    if problems:
        print(format_problems(problems))
        print(f"\n{len(problems)} problem(s) found in {args.input} ({cases} case(s)); fix them before "
              "nnUNetv2_predict")
        return 1
    print(f"{args.input}: {cases} case(s) checked, every file readable, channels and geometry consistent")
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "check-inputs",
        help="check a folder of images (and the trained model) before nnUNetv2_predict",
        description="Checks the images to predict against a trained model (its dataset.json and checkpoints) or "
                    "a dataset.json: every file readable to its end (gzip intact, NIfTI data as long as its header "
                    "says), each case's channel files _0000, _0001, ... all there and no others, one geometry "
                    "(size, spacing, origin, direction) for the channels of a case, and with a model every fold's "
                    "checkpoint (present, not empty, loadable with torch, holding network_weights). Every bad file "
                    "is named with its fix; the exit code is 1 when anything is wrong.",
    )
    p.add_argument("-i", "--input", type=Path, required=True, help="folder of images to predict (nnUNetv2_predict -i)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("-m", "--model-folder", type=Path, default=None,
                        help="the trained model's folder (TRAINER__PLANS__CONFIGURATION, holding fold_X); "
                             "default: found from -d/-tr/-p/-c")
    source.add_argument("--dataset-json", type=Path, default=None,
                        help="check against this dataset.json only (no model, no checkpoints)")
    p.add_argument("-d", "--dataset", default=None, help="dataset name or id, as for nnUNetv2_predict -d")
    p.add_argument("-tr", "--trainer", default=None, help="trainer class, as for nnUNetv2_predict -tr")
    p.add_argument("-p", "--plans", default=DEFAULT_PLANS, help="plans identifier (default: %(default)s)")
    p.add_argument("-c", "--configuration", default=CONFIGURATION, help="configuration (default: %(default)s)")
    p.add_argument("-f", "--folds", nargs="+", default=list(DEFAULT_FOLDS),
                   help="folds whose checkpoints are checked (default: %(default)s, as nnUNetv2_predict)")
    p.add_argument("-chk", "--checkpoint", default=DEFAULT_CHECKPOINT,
                   help="checkpoint file name in each fold (default: %(default)s)")
    p.set_defaults(func=run)
    return p
