"""`swin-umamba compare`: Swin-UMamba and nnU-Net's two baselines trained and tested under one protocol.

    swin-umamba compare -d 702 --stop-after 100          # AbdomenMR, the paper's 100 of 1000 epochs, fold all
    swin-umamba compare -d 702 -c 3d_fullres -f 0        # another configuration and fold
    swin-umamba reproduce --dataset 702 --baselines      # the same after the paper's protocol (checkpoint_99)

Steps (nnU-Net's own commands, each logged to <out>/logs/):

1. plan       nnUNetv2_plan_and_preprocess -d ID -c CONFIGURATION (nnUNetPlans)
2. train      ours: nnUNetv2_train ID CONFIGURATION FOLD -tr TRAINER (SWIN_UMAMBA_STOP_AFTER_EPOCHS=N with
              --stop-after)
3. plan       the residual-encoder preset: nnUNetv2_plan_experiment -d ID -pl nnUNetPlannerResEncM, then
              nnUNetv2_preprocess -d ID -plans_name nnUNetResEncUNetMPlans -c CONFIGURATION
4. train      the baselines, nnUNetTrainerProtocol (nnU-Net's nnUNetTrainer) with -p nnUNetPlans and
              -p nnUNetResEncUNetMPlans, with the configuration, schedule length, stop and iterations per
              epoch that ours recorded (its debug.json)
5. check      the test images and every model's checkpoint (`swin-umamba check-inputs`)
6. predict    the same test cases with each model's checkpoint_final.pth, --disable_tta, and
   score      every case of every model with `swin_umamba.evaluation` (--task)
then per-case paired differences (ours - each baseline): mean, bootstrap 95 % interval, Wilcoxon
p-value -> <out>/baselines.md, baselines.csv, baselines_per_case.csv and baselines_paired.png.

Running it again skips what is done (plans, trained models, predictions of the same checkpoint).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from swin_umamba.comparison.baselines import BASELINE_STEPS, REPORT_NAMES, TestSet, compare_with_baselines
from swin_umamba.environment import EXT_TRAINER_VAR
from swin_umamba.network_registry import SWIN_UMAMBA
from swin_umamba.reproduction.recipes import CONFIGURATION, FOLD, RECIPES
from swin_umamba.workflow.errors import WorkflowError
from swin_umamba.workflow.nnunet_runner import (CommandError, CommandFailed, format_seconds, log_tail,
                                                nnunet_environment)

DEFAULT_TRAINER = SWIN_UMAMBA.trainer
PAPER_TASKS = {dataset_id: recipe.task for dataset_id, recipe in RECIPES.items()}  # evaluate --task per dataset


class CompareError(RuntimeError):
    """A problem found before or between the steps; the message says what to do."""


def _test_set(args, raw_dataset: Path) -> TestSet:
    from swin_umamba.nnunet_layout import image_file
    from swin_umamba.workflow.nnunet_outputs import case_ids

    from swin_umamba.nnunet_layout import DATASET_JSON, IMAGES_TS, LABELS_TS

    dataset_json = json.loads((raw_dataset / DATASET_JSON).read_text())
    images = Path(args.test_images or raw_dataset / IMAGES_TS)
    labels = Path(args.test_labels or raw_dataset / LABELS_TS)
    for folder, option in ((images, "--test-images"), (labels, "--test-labels")):
        if not folder.is_dir() or not any(folder.iterdir()):
            raise CompareError(f"{folder} is missing or empty; pass {option} DIR")
    cases = case_ids(images, dataset_json["file_ending"])
    if not cases:
        raise CompareError(f"no test image named {image_file('<case>', dataset_json['file_ending'])} in {images}")
    from swin_umamba.evaluation.nnunet_dataset import rules_from_dataset_json
    from swin_umamba.evaluation.runner import NNUNET_TASK

    task = args.task or PAPER_TASKS.get(args.dataset, NNUNET_TASK)
    rules = rules_from_dataset_json(raw_dataset / DATASET_JSON, args.tolerance) if task == NNUNET_TASK else None
    return TestSet(images, labels, dataset_json["file_ending"], cases, task, args.mode, rules)


def run_compare(args: argparse.Namespace) -> int:
    started = time.monotonic()
    from swin_umamba.comparison.protocol import DEFAULT_PLANS, ProtocolError, our_model, protocol_of_trained_model
    from swin_umamba.comparison.steps import NnUNetSteps, StepError
    from swin_umamba.workflow.nnunet_folders import nnunet_folders, raw_dataset_folder
    from swin_umamba.workflow.progress import StepCounter
    from swin_umamba.workflow.trainer_lookup import TrainerNotFound

    try:
        if args.stop_after is not None and args.stop_after < 1:
            raise CompareError("--stop-after must be at least 1")
        if args.resamples < 1:
            raise CompareError("--resamples must be at least 1")
        raw, pre, res = nnunet_folders()
        dataset_name = raw_dataset_folder(raw, args.dataset).name
        test = _test_set(args, raw / dataset_name)
        ours = our_model(args.trainer, nnunet_environment()[EXT_TRAINER_VAR].split(os.pathsep))
    except (CompareError, WorkflowError, TrainerNotFound) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out or res / dataset_name / f"compare__{args.trainer}__{args.configuration}__fold_{args.fold}")
    steps = NnUNetSteps(args.dataset, dataset_name, raw, pre, res, out / "logs", args.device, args.num_processes,
                        args.verbose)
    counter = StepCounter(2 + BASELINE_STEPS)
    print(f"Comparing {args.trainer} with nnU-Net's default and ResEnc M baselines on {dataset_name}, fold "
          f"{args.fold}; output: {out}", flush=True)
    try:
        counter.begin(f"plan: {DEFAULT_PLANS}, {args.configuration}")
        if not steps.plan_default(args.configuration):
            counter.note(f"skipped: {DEFAULT_PLANS} and its preprocessed {args.configuration} data exist")
        stop = f", {args.stop_after} epochs of its schedule" if args.stop_after else ""
        counter.begin(f"train {ours.label} ({args.trainer}{stop})")
        checkpoint, trained = steps.train(ours, args.configuration, args.fold, args.stop_after, {}, "train_ours")
        if not trained:
            counter.note(f"skipped: {checkpoint} exists")
        protocol = protocol_of_trained_model(checkpoint.parent, args.dataset, args.fold)
        markdown = compare_with_baselines(steps, counter, ours, checkpoint, protocol, test, out,
                                          args.baseline_trainer, args.resamples, args.seed)
    except CommandFailed as exc:
        print(f"\nerror: {exc}\n--- last lines of {exc.log} ---\n{log_tail(exc.log, 40, exc.offset)}\n---\n"
              "Fix the cause and run the same command again: finished steps are skipped.", file=sys.stderr)
        return 1
    except (CompareError, CommandError, StepError, ProtocolError, WorkflowError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to continue", file=sys.stderr)
        return 130
    print(f"\n{markdown}")
    print("Report: " + ", ".join(str(out / name) for name in REPORT_NAMES.values()))
    print(f"Total time: {format_seconds(time.monotonic() - started)}")
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    from swin_umamba.comparison.protocol import BASELINE_TRAINER
    from swin_umamba.evaluation.nnunet_dataset import DEFAULT_TOLERANCE_MM
    from swin_umamba.evaluation.modes import MODES, PAPER
    from swin_umamba.evaluation.paired import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
    from swin_umamba.evaluation.runner import TASKS

    p = subparsers.add_parser(
        "compare",
        help="train nnU-Net's default and ResEnc M baselines under our run's protocol and compare per case",
        description="Trains a Swin-UMamba trainer and nnU-Net's two baselines (nnUNetTrainer with nnUNetPlans, "
                    "and with the residual-encoder M preset nnUNetResEncUNetMPlans) on the same data, fold, "
                    "schedule, stop and iterations per epoch, predicts the same test cases without test-time "
                    "augmentation, scores every case with swin_umamba.evaluation and reports ours minus each "
                    "baseline per case: mean with a seeded bootstrap 95 % interval, Wilcoxon signed-rank p-value, "
                    "Markdown and CSV tables and a paired plot. nnUNet_raw, nnUNet_preprocessed and "
                    "nnUNet_results must be set. Running the same command again continues where it stopped.",
    )
    p.add_argument("-d", "--dataset", type=int, required=True, help="dataset id (its raw folder DatasetXXX_Name)")
    p.add_argument("-tr", "--trainer", default=DEFAULT_TRAINER, help="our trainer (default: %(default)s)")
    p.add_argument("-c", "--configuration", default=CONFIGURATION,
                   help="nnU-Net configuration every model is planned, trained and predicted in (default: "
                        "%(default)s, as the paper)")
    p.add_argument("-f", "--fold", default=FOLD, choices=("0", "1", "2", "3", "4", "all"),
                   help="fold trained by every model (default: %(default)s, as the paper's test-set runs)")
    p.add_argument("--stop-after", type=int, default=None,
                   help="end our training after N epochs of its schedule (the paper: 100 for 702, 350 for 703, "
                        "250 for 704); the baselines stop at the same epoch. Default: no stop")
    p.add_argument("--test-images", type=Path, default=None,
                   help="test images (default: $nnUNet_raw/DatasetXXX_Name/imagesTs)")
    p.add_argument("--test-labels", type=Path, default=None,
                   help="test ground truth (default: $nnUNet_raw/DatasetXXX_Name/labelsTs)")
    p.add_argument("--task", choices=TASKS, default=None,
                   help="scoring rules of swin_umamba.evaluation (default: abdomen for 702, cells for 703, "
                        "endoscopy for 704, nnunet for any other dataset: DSC and NSD per label of its dataset.json)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE_MM,
                   help="NSD tolerance in mm of the nnunet task (default: %(default)s)")
    p.add_argument("--mode", choices=MODES, default=PAPER, help="evaluation mode (default: %(default)s)")
    p.add_argument("--baseline-trainer", default=BASELINE_TRAINER,
                   help="trainer of both baselines: nnU-Net's nnUNetTrainer run as long as ours "
                        "(default: %(default)s)")
    p.add_argument("--resamples", type=int, default=BOOTSTRAP_RESAMPLES,
                   help="bootstrap resamples of the mean difference (default: %(default)s)")
    p.add_argument("--seed", type=int, default=BOOTSTRAP_SEED, help="bootstrap seed (default: %(default)s)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for predictions, logs and the report (default: "
                        "$nnUNet_results/DatasetXXX_Name/compare__TRAINER__CONFIGURATION__fold_F)")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="for training and prediction (default: %(default)s)")
    p.add_argument("--num-processes", type=int, default=None,
                   help="worker processes of planning and prediction (default: nnU-Net's; 0: prediction "
                        "without worker processes)")
    p.add_argument("--verbose", action="store_true", help="echo the nnU-Net output (it always goes to the logs)")
    p.set_defaults(func=run_compare)
    return p
