"""`swin-umamba demo`: plan, train briefly on CPU, predict and score the embedded demo dataset.

Everything happens in one work folder (see `swin_umamba.demo.layout`). The nnU-Net steps run
through nnU-Net's own command-line programs, as a user would run them, with nnU-Net's
environment variables set for those child processes only.
"""
from __future__ import annotations

import argparse
import textwrap
import time
from pathlib import Path

from swin_umamba.demo.layout import (CONFIGURATION, CSV_NAME, DEMO_DATASETS, LOG_NAME, OVERLAYS, PREDICTIONS, TRAINER,
                                     DemoError, child_environment, prepare_workdir)
from swin_umamba.workflow.errors import WorkflowError
from swin_umamba.workflow.nnunet_runner import CommandError, CommandFailed, format_seconds
from swin_umamba.workflow.progress import StepCounter, say


def run_demo(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    workdir = Path(args.workdir).expanduser().resolve()
    fold = args.fold
    configuration = args.configuration
    dataset = DEMO_DATASETS[configuration]
    log_path = workdir / LOG_NAME
    steps = StepCounter(6)

    try:
        from swin_umamba.demo import scoring
        from swin_umamba.demo import steps as demo_steps
        from swin_umamba.ops import selective_scan_backend

        prepare_workdir(workdir, args.overwrite)
        env = child_environment(workdir, args.epochs, args.iterations)
        say(f"Swin-UMamba demo in {workdir} (log: {log_path})")
        backend = selective_scan_backend("cpu")
        note = "" if backend == "cpu_kernel" else " (the compiled CPU scan is not in use: expect a much slower run)"
        say(f"Selective scan on CPU: {backend}{note}")

        steps.begin(f"copying the demo dataset to {workdir / 'nnUNet_raw'} ...")
        raw = demo_steps.copy_dataset(workdir, configuration)
        steps.done()

        steps.begin("nnU-Net planning and preprocessing (nnUNetv2_plan_and_preprocess) ...")
        demo_steps.plan(env, log_path, configuration)
        steps.done()

        from swin_umamba.trainers.demo import demo_length

        epochs, iterations = demo_length(configuration, args.epochs, args.iterations)
        steps.begin(f"training {TRAINER} ({configuration}) on CPU, fold {fold}: {epochs} epochs x {iterations} "
                    f"steps (nnUNetv2_train) ...")
        demo_steps.train(env, log_path, configuration, fold, epochs, list(scoring.dataset_classes(raw).values()))
        steps.done()

        steps.begin("predicting the held-out test cases (nnUNetv2_predict) ...")
        checked = demo_steps.check_inputs(workdir, raw, configuration, fold)
        steps.note(f"inputs checked (swin-umamba check-inputs): {checked} case(s), checkpoint_final.pth")
        pred_dir = workdir / PREDICTIONS
        demo_steps.predict(env, log_path, raw, pred_dir, configuration, fold)
        steps.done()

        steps.begin("Dice per class on the held-out cases ...")
        scores = scoring.score_predictions(raw, pred_dir, log_path)
        csv_path = workdir / CSV_NAME
        scoring.write_dice_csv(scores.table, scores.names, csv_path)
        say(scoring.format_dice_table(scores.table, scores.names))
        say(textwrap.fill(WHAT_THE_FIGURES_MEAN.format(epochs=epochs, iterations=iterations,
                                                       steps=epochs * iterations), width=100))
        steps.done()

        steps.begin("writing overlay images ...")
        overlay_dir = workdir / OVERLAYS
        demo_steps.write_overlays(raw, scores, overlay_dir)
        steps.done()
    except CommandFailed as exc:
        say(f"ERROR: {exc.program} failed with exit code {exc.returncode}. Last lines of its output:\n"
            + textwrap.indent(exc.tail(25), "    ") + f"\nFull log: {exc.log}")
        return 1
    except (DemoError, CommandError, WorkflowError) as exc:
        say(f"ERROR: {exc}")
        return 1
    except KeyboardInterrupt:
        say(f"Interrupted. Partial outputs and the log are in {workdir}")
        return 130

    say("")
    say("Outputs:")
    say(f"  Dice table (CSV):      {csv_path}")
    say(f"  overlay images:        {overlay_dir}/<case>.png ({len(scores.cases)} files)")
    say(f"  predicted label maps:  {pred_dir}")
    say(f"  trained model:         {workdir / 'nnUNet_results' / dataset.name}")
    say(f"  full log:              {log_path}")
    say(f"Total time: {format_seconds(time.perf_counter() - started)}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _fold(text: str) -> str:
    if text == "all" or text in {"0", "1", "2", "3", "4"}:
        return text
    raise argparse.ArgumentTypeError(f"expected 0, 1, 2, 3, 4 or all, got {text!r}")


WHAT_THE_FIGURES_MEAN = (
    "What these figures mean: the network started from random weights and trained {steps} steps "
    "({epochs} epochs x {iterations}), so they show that every step works, not what Swin-UMamba reaches. "
    "The liver, the largest organ, is learnt first; the spleen, small and in few slices, usually stays "
    "near 0 at the default length. More epochs (--epochs) give every organ more steps; real results come "
    "from nnUNetTrainerSwinUMamba's full schedule. The epoch lines' pseudo Dice is nnU-Net's estimate on a "
    "few random patches of the fold's validation cases; the table is the Dice on the held-out test cases."
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the CPU demo: plan, train briefly, predict and score the embedded abdominal MR dataset",
        description="Runs nnU-Net's own commands on a demo dataset that ships with swin-umamba "
        + "; ".join(f"({d.name}: {d.description}, for --configuration {c})" for c, d in DEMO_DATASETS.items())
        + "; liver, spleen, kidneys, stomach: "
        f"plan and preprocess, train {TRAINER} for a few minutes on CPU, predict the test cases, "
        "print Dice per class and write overlay PNGs. Needs no environment variables and no downloads. "
        "The default run (see --epochs and --iterations; from random weights) shows that every step works; "
        "it is too short to segment every organ: the spleen usually stays near Dice 0.",
    )
    p.add_argument("--workdir", default="./swin_umamba_demo",
                   help="folder for all outputs (nnU-Net folders, predictions, overlays, dice.csv, demo.log); "
                   "default: %(default)s")
    p.add_argument("--overwrite", action="store_true",
                   help="reuse a non-empty --workdir, replacing the demo's earlier outputs in it "
                   "(other files are left alone)")
    p.add_argument("--configuration", choices=list(DEMO_DATASETS), default=CONFIGURATION,
                   help="nnU-Net configuration: 2d (the 2D slices, Dataset990) or 3d_fullres (the 3D network on the "
                   "3D volumes, Dataset992; each step costs seconds on a CPU, so the run is shorter); "
                   "default: %(default)s")
    p.add_argument("--fold", type=_fold, default="0",
                   help="nnU-Net fold to train: 0-4 (trains on 4/5 of the training slices) or all; "
                   "default: %(default)s")
    # the defaults live in swin_umamba/trainers/demo.py (not imported here: it loads torch and nnU-Net)
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help="number of epochs (default: the demo trainer's, 10 in 2d, 4 in 3d_fullres); the learning "
                   "rate schedule spans them")
    p.add_argument("--iterations", type=_positive_int, default=None,
                   help="training steps per epoch (default: the demo trainer's, 20 in 2d, 5 in 3d_fullres)")
    p.set_defaults(func=run_demo)
