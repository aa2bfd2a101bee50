"""`swin-umamba evaluate`: the paper's metrics on a folder of predictions.

    swin-umamba evaluate --task abdomen   --gt labelsTs --pred predictions --out metrics.csv
    swin-umamba evaluate --task endoscopy --gt labelsTs --pred predictions --out metrics.csv
    swin-umamba evaluate --task cells     --gt labelsTs --pred predictions --out metrics.csv [--mode corrected]
    swin-umamba evaluate --task nnunet    --gt labelsTs --pred predictions --out metrics.csv \
                         --dataset-json DatasetXXX_Name/dataset.json [--tolerance-mm 2]

Writes one CSV row per case (atomically) and prints the summary the paper reports.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .files import EvaluationError, write_csv_atomic
from .modes import MODES, PAPER
from .nnunet_dataset import DEFAULT_TOLERANCE_MM, rules_from_dataset_json
from .runner import NNUNET_TASK, TASKS, evaluate_folder

_TASK_HELP = {
    "abdomen": "AbdomenMR (702): NIfTI label volumes <case>.nii.gz; 13 organs; DSC and NSD",
    "endoscopy": "Endovis17 (704): PNG label maps <case>.png; DSC and NSD per frame",
    "cells": "NeurIPS Cell Seg (703): ground truth <case>_label.tiff instance maps; predictions <case>.png "
             "(3-class semantic) or <case>_label.tiff (instances); F1 at IoU 0.5",
    NNUNET_TASK: "any nnU-Net data set, 2D or 3D: DSC and NSD per label of its dataset.json (files named "
                 "<case><file_ending>, spacing from the ground truth's header; a label in neither map scores "
                 "NaN and is left out of the means)",
}


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate",
        help="score predictions with the paper's metrics (DSC, NSD, cell F1)",
        description="Score a folder of predictions against a folder of ground truth with the metrics of the "
                    "Swin-UMamba paper, or any nnU-Net data set's labels. Tasks: " + "; ".join(f"{k}: {v}" for k, v in _TASK_HELP.items()) + ".",
    )
    parser.add_argument("--task", required=True, choices=TASKS,
                        help="which dataset's rules to apply")
    parser.add_argument("--gt", required=True, type=Path,
                        help="folder of ground-truth files (every case in it is scored)")
    parser.add_argument("--pred", required=True, type=Path,
                        help="folder of predictions named like the ground truth (see --task)")
    parser.add_argument("--out", required=True, type=Path,
                        help="CSV file for the per-case metrics (written atomically; folders are created)")
    parser.add_argument("--dataset-json", type=Path, default=None,
                        help=f"the data set's dataset.json (labels and file ending); required by --task "
                             f"{NNUNET_TASK}, e.g. $nnUNet_raw/Dataset001_Name/dataset.json")
    parser.add_argument("--tolerance-mm", type=float, default=DEFAULT_TOLERANCE_MM,
                        help=f"NSD tolerance of --task {NNUNET_TASK} in mm (pixels for PNG/TIFF, which store "
                             "no spacing); the paper's tasks use their own tolerances")
    parser.add_argument("--mode", choices=MODES, default=PAPER,
                        help="'paper' keeps the quirks of the authors' scripts so numbers compare with the "
                             "paper (4-decimal rounding per case, z-range [first, last), ...); 'corrected' "
                             "fixes them (see swin_umamba.evaluation.modes); for --task nnunet only the rounding differs; "
                             "default: paper")
    parser.add_argument("--num-workers", type=int, default=1,
                        help="processes scoring cases in parallel (default: 1)")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the summary, no per-case progress")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.num_workers < 1:
        print("error: --num-workers must be at least 1", file=sys.stderr)
        return 2

    def progress(done: int, total: int, name: str) -> None:
        if not args.quiet:
            print(f"[{done}/{total}] {name}", flush=True)

    if (args.task == NNUNET_TASK) != (args.dataset_json is not None):
        print(f"error: --dataset-json goes with --task {NNUNET_TASK} (and only with it): give the data set's "
              "dataset.json, whose labels are scored", file=sys.stderr)
        return 2
    try:
        rules = None if args.dataset_json is None else rules_from_dataset_json(args.dataset_json, args.tolerance_mm)
        result = evaluate_folder(args.task, args.gt, args.pred, args.mode, args.num_workers, progress, rules)
        write_csv_atomic(args.out, result.columns, result.rows)
    except EvaluationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(result.rows)} case(s) scored ({args.task}, {args.mode} mode); per-case metrics in {args.out}")
    for key, value in result.summary.items():
        print(f"mean {key}: {value:.4f}")
    return 0
