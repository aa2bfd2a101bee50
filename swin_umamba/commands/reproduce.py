"""`swin-umamba reproduce`: the paper's protocol for one dataset, end to end, with nnU-Net's own commands.

    swin-umamba reproduce --dataset 702            # AbdomenMR, Swin-UMamba, checkpoint of epoch 99
    swin-umamba reproduce --dataset 704            # Endoscopy, Swin-UMamba-dagger, epoch 249
    swin-umamba reproduce --dataset 703            # Microscopy, Swin-UMamba-dagger, epoch 349

Steps (nnU-Net's as its own programs, the others in this process; each step's output goes to
`<out>/logs/<n>_<step>.log`):

1. plan     nnUNetv2_plan_and_preprocess -d ID -c 2d --verify_dataset_integrity
2. train    nnUNetv2_train ID 2d all -tr TRAINER with SWIN_UMAMBA_STOP_AFTER_EPOCHS=100/250/350: the
            1000-epoch cosine schedule, stopped after that many epochs (checkpoint_99/249/349.pth)
3. predict  nnUNetv2_predict -i imagesTs -o <out>/predictions -d ID -c 2d -tr TRAINER -f all
            -chk checkpoint_99/249/349.pth --disable_tta
4. (703)    as swin-umamba cells-to-instances: 3-class predictions -> instance TIFFs
5. evaluate as swin-umamba evaluate --mode paper against the test labels -> <out>/metrics.csv
then the table of our numbers beside the published ones -> <out>/comparison.md and .csv.

Re-running the same command continues where it stopped: planning is skipped when the plans and the
preprocessed 2d data exist, training resumes with --c from nnU-Net's latest checkpoint and is skipped
when the evaluated checkpoint exists, prediction is skipped when the predictions' stamp
(`<out>/predictions/.prediction.json`) names the same checkpoint (same SHA-256) and scoring when
`<out>/state.json` says it scored those. `--restart-from STEP` redoes a step and
everything after it.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from swin_umamba.comparison.baselines import BASELINE_STEPS, REPORT_NAMES
from swin_umamba.comparison.protocol import BASELINE_TRAINER, ProtocolError
from swin_umamba.comparison.steps import StepError
from swin_umamba.network_registry import BY_ALIAS
from swin_umamba.reproduction.recipes import FOLD, PLANS, PUBLISHED_NAME, RECIPES, SCHEDULE_EPOCHS, TRAINERS
from swin_umamba.reproduction.report import our_summary, write_comparison
from swin_umamba.reproduction.run import (ReproduceError, Run, cases_to_predict, new_run, remember_trainer,
                                          trainer_facts)
from swin_umamba.reproduction.steps import (STEPS, StepFailed, dry_run_lines, predictions_stamp, step_evaluate,
                                            step_plan, step_predict, step_train)
from swin_umamba.workflow.errors import WorkflowError
from swin_umamba.workflow.nnunet_runner import CommandError, CommandFailed, format_seconds, log_tail
from swin_umamba.workflow.progress import StepCounter


def build_run(args: argparse.Namespace) -> Run:
    return new_run(args.dataset, network=args.network, trainer=args.trainer, stop_after=args.stop_after,
                   device=args.device, test_images=args.test_images, test_labels=args.test_labels, out=args.out,
                   num_gpus=args.num_gpus, num_processes=args.num_processes, verbose=args.verbose)


def check_run(run: Run, args: argparse.Namespace) -> tuple[bool, list[str], str]:
    """The trainer's network (set on `run`), whether it needs ImageNet weights, the test cases and their ending."""
    kind, needs_imagenet = trainer_facts(run)
    if args.trainer and args.network and kind != args.network:
        raise ReproduceError(f"--trainer {run.trainer} trains the {kind} network, not --network {args.network}")
    run.network = kind
    if needs_imagenet and not args.dry_run:
        from swin_umamba.pretrained import PretrainedWeightsError, resolve_weights_path

        try:
            resolve_weights_path()
        except PretrainedWeightsError as exc:
            raise ReproduceError(f"{run.trainer} starts from ImageNet weights: {exc}") from exc
    cases, file_ending = cases_to_predict(run)
    return needs_imagenet, cases, file_ending


def compare_run_with_baselines(run: Run, counter: StepCounter, checkpoint: Path, cases: list[str], file_ending: str,
                               baseline_trainer: str) -> str:
    """--baselines: nnU-Net's default and ResEnc M baselines trained like this run (swin-umamba compare)."""
    import dataclasses

    from swin_umamba.comparison.baselines import TestSet, compare_with_baselines
    from swin_umamba.comparison.protocol import Model, protocol_of_trained_model
    from swin_umamba.comparison.steps import NnUNetSteps
    from swin_umamba.evaluation.paired import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED

    steps = NnUNetSteps(run.recipe.dataset_id, run.dataset_name, run.raw, run.preprocessed, run.results, run.logs,
                        run.device, run.num_processes, run.verbose)
    # the schedule and iterations as our trainer recorded them, the stop of this run's evaluated checkpoint
    protocol = dataclasses.replace(protocol_of_trained_model(run.model_folder, run.recipe.dataset_id, FOLD),
                                   stop_after=run.stop_after)
    ours = Model(PUBLISHED_NAME[run.network], run.trainer, PLANS)
    test = TestSet(run.test_images, run.test_labels, file_ending, cases, run.recipe.task, "paper", {})
    return compare_with_baselines(steps, counter, ours, checkpoint, protocol, test, run.out, baseline_trainer,
                                  BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, ours_predictions=run.predictions)


def run_reproduce(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        run = build_run(args)
        needs_imagenet, cases, file_ending = check_run(run, args)
    except (ReproduceError, WorkflowError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    redo_from = STEPS.index(args.restart_from) if args.restart_from else len(STEPS)
    redo = {name: i >= redo_from for i, name in enumerate(STEPS)}
    print(f"Reproducing dataset {run.recipe.dataset_id} ({run.dataset_name}, {run.recipe.title}): "
          f"{run.trainer} ({PUBLISHED_NAME[run.network]}), {run.stop_after} epochs of a {SCHEDULE_EPOCHS}-epoch "
          f"schedule, evaluated with {run.checkpoint_name}, device {run.device}")
    print(f"output: {run.out}")
    if args.dry_run:
        print("\n".join(dry_run_lines(run, cases, redo)))
        if args.baselines:
            print(f"baselines: {args.baseline_trainer} with -p nnUNetPlans and -p nnUNetResEncUNetMPlans "
                  f"(nnUNetv2_plan_experiment -pl nnUNetPlannerResEncM), {FOLD}, stopped after {run.stop_after} "
                  f"epochs like {run.trainer}, --disable_tta, paired per case (swin-umamba compare)")
        return 0

    run.out.mkdir(parents=True, exist_ok=True)
    remember_trainer(run, run.network, needs_imagenet)
    steps = StepCounter(run.step_count + (BASELINE_STEPS if args.baselines else 0))
    try:
        step_plan(run, steps, redo["plan"])
        checkpoint = step_train(run, steps, redo["train"])
        stamp = predictions_stamp(run, checkpoint)
        state = run.load_state()
        step_predict(run, steps, checkpoint, stamp, state, redo["predict"], cases, file_ending)
        step_evaluate(run, steps, stamp, state, redo["evaluate"])
        table = write_comparison(run, our_summary(run), checkpoint.name, len(cases))
        if args.baselines:
            table += "\n\n" + compare_run_with_baselines(run, steps, checkpoint, cases, file_ending,
                                                         args.baseline_trainer)
    except StepFailed as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        print(f"--- last lines of {exc.log} ---\n{log_tail(exc.log)}\n---", file=sys.stderr)
        print("Fix the cause and run the same command again: finished steps are skipped and training resumes.",
              file=sys.stderr)
        return 1
    except CommandFailed as exc:  # a baseline's nnU-Net step
        print(f"\nerror: {exc}\n--- last lines of {exc.log} ---\n{exc.tail()}\n---", file=sys.stderr)
        print("Fix the cause and run the same command again: finished steps are skipped.", file=sys.stderr)
        return 1
    except (ReproduceError, CommandError, WorkflowError, StepError, ProtocolError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to continue", file=sys.stderr)
        return 130

    print(f"\n{table}\n")
    print(f"Table: {run.out / 'comparison.md'} and {run.out / 'comparison.csv'}; per-case metrics: "
          f"{run.metrics_csv}")
    if args.baselines:
        print("Baselines: " + ", ".join(str(run.out / name) for name in REPORT_NAMES.values()))
    print(f"Total time: {format_seconds(time.monotonic() - started)}")
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    stops = ", ".join(f"{r.stop_after} ({r.dataset_id})" for r in RECIPES.values())
    p = subparsers.add_parser(
        "reproduce",
        help=f"the paper's protocol for dataset {' or '.join(map(str, RECIPES))}: plan, train, predict, evaluate, "
             "compare",
        description="Runs the published protocol for one dataset with nnU-Net's own commands: "
                    f"nnUNetv2_plan_and_preprocess (2d), nnUNetv2_train fold all with the {SCHEDULE_EPOCHS}-epoch "
                    f"cosine schedule stopped after {stops} epochs, nnUNetv2_predict with "
                    "that checkpoint and --disable_tta, (703: cell instances), the paper's metrics, and a table "
                    "of the numbers beside the published ones. nnUNet_raw, nnUNet_preprocessed and "
                    "nnUNet_results must be set; nnUNet_extTrainer is set for the nnU-Net commands. Running the "
                    "same command again continues where it stopped.",
    )
    p.add_argument("--dataset", type=int, required=True, choices=sorted(RECIPES),
                   help=", ".join(f"{r.dataset_id} {r.title}" for r in RECIPES.values()))
    p.add_argument("--network", choices=sorted(TRAINERS),
                   help="; ".join(f"{alias}: {n.trainer} ({n.paper_name})" for alias, n in BY_ALIAS.items())
                        + ". Default: the paper's best entry ("
                        + ", ".join(f"{r.dataset_id} {r.network}" for r in RECIPES.values()) + ")")
    p.add_argument("--trainer", help="nnU-Net trainer class to use instead (e.g. a Scratch variant or a short "
                                     "test trainer); its network decides the published row compared with")
    p.add_argument("--stop-after", type=int, default=None,
                   help=f"epochs to train of the schedule (default: the paper's {stops}); the checkpoint "
                        "evaluated is checkpoint_{N-1}.pth")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="for training and prediction")
    p.add_argument("--num-gpus", type=int, default=1,
                   help="nnUNetv2_train -num_gpus (the authors trained AbdomenMR on 2 GPUs; default 1)")
    p.add_argument("--num-processes", type=int, default=None,
                   help="worker processes for planning (-npfp/-np), prediction (-npp/-nps) and scoring "
                        "(default: nnU-Net's defaults, 1 for scoring); 0 runs prediction without worker "
                        "processes (nnU-Net's sequential mode) and everything else with 1")
    p.add_argument("--test-images", type=Path, default=None,
                   help="test images folder (default: $nnUNet_raw/DatasetXXX_Name/imagesTs)")
    p.add_argument("--test-labels", type=Path, default=None,
                   help="test ground truth folder (default: $nnUNet_raw/DatasetXXX_Name/labelsTs; 703: "
                        "<case>_label.tiff instance maps)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for predictions, logs, metrics and the comparison (default: "
                        "$nnUNet_results/DatasetXXX_Name/reproduce__TRAINER__2d__epochN)")
    p.add_argument("--restart-from", choices=STEPS, default=None,
                   help="redo this step and all after it instead of reusing earlier results (train: removes the "
                        "run's checkpoints and trains from the start)")
    p.add_argument("--baselines", action="store_true",
                   help="also train nnU-Net's default trainer and its ResEnc M preset under this run's protocol (same "
                        "data, fold, schedule, stop, iterations, no TTA) and report per-case paired differences "
                        "(as swin-umamba compare): <out>/baselines.md, .csv, _per_case.csv, _paired.png")
    p.add_argument("--baseline-trainer", default=BASELINE_TRAINER,
                   help="trainer of both baselines with --baselines (default: %(default)s, nnU-Net's nnUNetTrainer "
                        "run as long as ours)")
    p.add_argument("--dry-run", action="store_true", help="print the commands and what would be skipped; run nothing")
    p.add_argument("--verbose", action="store_true", help="echo the nnU-Net output (it always goes to the logs)")
    p.set_defaults(func=run_reproduce)
    return p
