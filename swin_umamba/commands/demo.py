"""`swin-umamba demo`: plan, train briefly on CPU, predict and score the embedded demo dataset.

Everything happens in one work folder (default ./swin_umamba_demo):

    nnUNet_raw/ nnUNet_preprocessed/ nnUNet_results/   nnU-Net's three folders
    predictions/                                       predicted label maps of the held-out cases
    overlays/<case>.png                                image, ground truth and prediction side by side
    dice.csv                                           Dice per case and class, with a mean row
    demo.log                                           full output of the nnU-Net commands

The nnU-Net steps run through nnU-Net's own command-line programs, as a user would run them,
with nnU-Net's environment variables set for those child processes only.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import re
import shutil
import textwrap
import time
from pathlib import Path

from swin_umamba.workflow.nnunet_runner import (CommandError, CommandFailed, format_seconds, nnunet_environment,
                                                nnunet_tool, run_logged)

DATASET_ID = 990
DATASET_NAME = "Dataset990_DemoAbdomenMR"
TRAINER = "nnUNetTrainerSwinUMambaDemo"
CONFIGURATION = "2d"
LOG_NAME = "demo.log"
CSV_NAME = "dice.csv"
# what the demo creates in its folder; --overwrite removes these and nothing else
OUTPUT_NAMES = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "predictions", "overlays",
                CSV_NAME, LOG_NAME)
# fill colours of labels 1, 2, ... (RGB 0..1), distinguishable on a grey image
LABEL_COLOURS = [(0.90, 0.16, 0.16), (0.15, 0.55, 0.95), (0.98, 0.80, 0.10), (0.20, 0.80, 0.30),
                 (0.85, 0.35, 0.90), (0.10, 0.85, 0.85), (1.00, 0.55, 0.10), (0.60, 0.40, 0.20)]


class DemoError(RuntimeError):
    """A step of the demo failed; the message says what to do."""


def dataset_source() -> Path:
    return Path(__file__).resolve().parent.parent / "demo_data" / DATASET_NAME


def _say(message: str) -> None:
    print(message, flush=True)


# work folder ----------------------------------------------------------------------------------------
def prepare_workdir(workdir: Path, overwrite: bool) -> None:
    """Create the work folder; refuse a non-empty one unless `overwrite`, which removes only the
    demo's own outputs (OUTPUT_NAMES) and leaves any other file in the folder alone."""
    if workdir.exists() and not workdir.is_dir():
        raise DemoError(f"{workdir} exists and is not a folder; choose another --workdir")
    if workdir.is_dir() and any(workdir.iterdir()):
        if not overwrite:
            raise DemoError(f"{workdir} is not empty. Pass --overwrite to replace the demo's outputs in it "
                            f"({', '.join(OUTPUT_NAMES)}), or choose another --workdir.")
        for name in OUTPUT_NAMES:
            path = workdir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    workdir.mkdir(parents=True, exist_ok=True)


def child_environment(workdir: Path, epochs: int | None, iterations: int | None) -> dict[str, str]:
    """The environment of the nnU-Net commands: our folders, only our trainers, CPU-friendly settings."""
    from swin_umamba.commands.setup import trainers_dir
    from swin_umamba.trainers.demo import EPOCHS_ENV_VAR, ITERATIONS_ENV_VAR

    return nnunet_environment(
        workdir,
        nnUNet_extTrainer=str(trainers_dir()),
        # one augmentation worker and one export worker (nnU-Net's defaults, 12 and 8 processes that each
        # import torch, only compete with the training step on a small CPU); the user's settings win
        nnUNet_n_proc_DA=os.environ.get("nnUNet_n_proc_DA", "1"),
        nnUNet_def_n_proc=os.environ.get("nnUNet_def_n_proc", "1"),
        # the demo's length is set by --epochs/--iterations
        **{EPOCHS_ENV_VAR: None if epochs is None else str(epochs),
           ITERATIONS_ENV_VAR: None if iterations is None else str(iterations)},
    )


# running nnU-Net -------------------------------------------------------------------------------------
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ")


class TrainingProgress:
    """Turns nnU-Net's training log lines into one console line per epoch."""

    def __init__(self, num_epochs: int | None = None):
        self.num_epochs = num_epochs
        self.epoch: str | None = None
        self.values: dict[str, str] = {}

    def __call__(self, line: str) -> str | None:
        text = _STAMP.sub("", line.strip())
        if m := re.fullmatch(r"Epoch (\d+)", text):
            self.epoch, self.values = m.group(1), {}
        elif m := re.fullmatch(r"(train_loss|val_loss) (\S+)", text):
            self.values[m.group(1)] = m.group(2)
        elif text.startswith("Pseudo dice "):
            # numpy 2 prints [np.float32(0.8205), ...]: keep the numbers
            self.values["dice"] = re.sub(r"np\.float\d+\(([^)]*)\)", r"\1", text[len("Pseudo dice "):])
        elif m := re.fullmatch(r"Epoch time: (\S+) s", text):
            total = f"/{self.num_epochs}" if self.num_epochs else ""
            return (f"    epoch {int(self.epoch or 0) + 1}{total}: train loss {self.values.get('train_loss', '?')}, "
                    f"val loss {self.values.get('val_loss', '?')}, pseudo Dice per class {self.values.get('dice', '?')}"
                    f" ({float(m.group(1)):.0f} s)")
        elif text.startswith("Mean Validation Dice"):
            return f"    validation of the fold's held-out training cases: {text}"
        elif "Traceback" in text or re.match(r"^\w*(Error|Exception)\b", text):
            return "    " + text
        return None


# scoring ------------------------------------------------------------------------------------------------
def read_labels(path: Path):
    import numpy as np
    import SimpleITK as sitk

    return np.asarray(sitk.GetArrayFromImage(sitk.ReadImage(str(path))))


def read_image(path: Path):
    import numpy as np
    import SimpleITK as sitk

    return np.asarray(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), dtype=np.float32)


def class_names(dataset_json: dict) -> dict[int, str]:
    """label value -> name for the foreground classes, in label order."""
    labels = {int(v): k for k, v in dataset_json["labels"].items() if not isinstance(v, (list, tuple))}
    return {v: labels[v] for v in sorted(labels) if v != 0}


def dice_table(gt_by_case: dict, pred_by_case: dict, classes: dict[int, str]) -> dict[str, dict[str, float]]:
    """{case: {class name: Dice}} with the project's DSC (NaN where a class is absent from both)."""
    from swin_umamba.evaluation.overlap import dice

    table = {}
    for case in sorted(gt_by_case):
        gt, pred = gt_by_case[case], pred_by_case[case]
        table[case] = {name: dice(gt == value, pred == value) for value, name in classes.items()}
    return table


def class_means(table: dict[str, dict[str, float]], names: list[str]) -> dict[str, float]:
    """Mean over cases per class, ignoring NaN (class in neither mask); NaN if never present."""
    means = {}
    for name in names:
        values = [row[name] for row in table.values() if not math.isnan(row[name])]
        means[name] = sum(values) / len(values) if values else float("nan")
    return means


def _cell(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def format_dice_table(table: dict[str, dict[str, float]], names: list[str]) -> str:
    means = class_means(table, names)
    width = max([len("mean")] + [len(c) for c in table]) + 2
    cols = [max(len(n), 5) + 2 for n in names]
    lines = ["case".ljust(width) + "".join(n.rjust(w) for n, w in zip(names, cols))]
    for case, row in table.items():
        lines.append(case.ljust(width) + "".join(_cell(row[n]).rjust(w) for n, w in zip(names, cols)))
    lines.append("-" * len(lines[0]))
    lines.append("mean".ljust(width) + "".join(_cell(means[n]).rjust(w) for n, w in zip(names, cols)))
    lines.append("('-': organ absent from both ground truth and prediction in that slice)")
    return "\n".join(lines)


def write_dice_csv(table: dict[str, dict[str, float]], names: list[str], path: Path) -> None:
    means = class_means(table, names)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case"] + names)
        for case, row in table.items():
            writer.writerow([case] + ["" if math.isnan(row[n]) else f"{row[n]:.4f}" for n in names])
        writer.writerow(["mean"] + ["" if math.isnan(means[n]) else f"{means[n]:.4f}" for n in names])


# overlays ------------------------------------------------------------------------------------------------
def _display_grey(image):
    """Image scaled to 0..1 between its 1st and 99th percentile."""
    import numpy as np

    lo, hi = np.percentile(image, [1, 99])
    return np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1)


def write_overlay(image, gt, pred, classes: dict[int, str], path: Path, title: str = "",
                  scores: dict[str, float] | None = None) -> None:
    """PNG with the grey image and label colours (translucent fill and outline): ground truth on the
    left, prediction on the right, one legend of class names (with the case's Dice when given)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Patch

    grey = _display_grey(np.asarray(image, dtype=np.float32))
    h, w = grey.shape
    scale = 4.0 / max(h, w)  # each panel about 4 inches on its long side
    fig, axes = plt.subplots(1, 2, figsize=(2 * w * scale + 0.6, h * scale + 1.3), squeeze=True)
    colours = {v: LABEL_COLOURS[i % len(LABEL_COLOURS)] for i, v in enumerate(classes)}
    for ax, labels, name in ((axes[0], gt, "ground truth"), (axes[1], pred, "prediction")):
        labels = np.asarray(labels)
        ax.imshow(grey, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        rgba = np.zeros((h, w, 4), dtype=np.float32)
        for value, colour in colours.items():
            mask = labels == value
            rgba[mask] = (*colour, 0.40)
            if mask.any() and not mask.all():
                ax.contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.5)
        ax.imshow(rgba, interpolation="nearest")
        ax.set_title(name, fontsize=11)
        ax.set_axis_off()
    handles = []
    for value, label_name in classes.items():
        text = label_name
        if scores is not None and label_name in scores:
            text += f"  Dice {_cell(scores[label_name])}"
        handles.append(Patch(facecolor=colours[value], edgecolor=colours[value], label=text))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), frameon=False, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.86, bottom=0.12, wspace=0.04)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# the command ---------------------------------------------------------------------------------------------
def run_demo(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    workdir = Path(args.workdir).expanduser().resolve()
    fold = args.fold
    log_path = workdir / LOG_NAME
    step_count = 6

    def step(number: int, text: str) -> float:
        _say(f"[{number}/{step_count}] {text} ...")
        return time.perf_counter()

    def done(t0: float, extra: str = "") -> None:
        _say(f"      done in {format_seconds(time.perf_counter() - t0)}{extra}")

    try:
        from swin_umamba.ops import selective_scan_backend

        prepare_workdir(workdir, args.overwrite)
        env = child_environment(workdir, args.epochs, args.iterations)
        _say(f"Swin-UMamba demo in {workdir} (log: {log_path})")
        backend = selective_scan_backend("cpu")
        note = "" if backend == "cpu_kernel" else " (the compiled CPU scan is not in use: expect a much slower run)"
        _say(f"Selective scan on CPU: {backend}{note}")

        t0 = step(1, f"copying the demo dataset to {workdir / 'nnUNet_raw'}")
        raw = workdir / "nnUNet_raw" / DATASET_NAME
        shutil.copytree(dataset_source(), raw)
        for name in ("nnUNet_preprocessed", "nnUNet_results"):
            (workdir / name).mkdir(parents=True, exist_ok=True)
        done(t0)

        t0 = step(2, "nnU-Net planning and preprocessing (nnUNetv2_plan_and_preprocess)")
        run_logged([nnunet_tool("nnUNetv2_plan_and_preprocess"), "-d", str(DATASET_ID), "-c", CONFIGURATION,
                    "--verify_dataset_integrity", "-npfp", "1", "-np", "1"], env, log_path, append=True)
        done(t0)

        from swin_umamba.trainers.demo import DEMO_EPOCHS, DEMO_ITERATIONS

        epochs = args.epochs or DEMO_EPOCHS
        iterations = args.iterations or DEMO_ITERATIONS
        t0 = step(3, f"training {TRAINER} on CPU, fold {fold}: {epochs} epochs x {iterations} steps "
                     f"(nnUNetv2_train)")
        run_logged([nnunet_tool("nnUNetv2_train"), str(DATASET_ID), CONFIGURATION, str(fold),
                    "-tr", TRAINER, "-device", "cpu"], env, log_path, show=TrainingProgress(epochs), append=True)
        done(t0)

        t0 = step(4, "predicting the held-out test cases (nnUNetv2_predict)")
        pred_dir = workdir / "predictions"
        run_logged([nnunet_tool("nnUNetv2_predict"), "-i", str(raw / "imagesTs"), "-o", str(pred_dir),
                    "-d", str(DATASET_ID), "-c", CONFIGURATION, "-tr", TRAINER, "-f", str(fold),
                    "-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1", "--disable_progress_bar"],
                   env, log_path, append=True)
        done(t0)

        t0 = step(5, "Dice per class on the held-out cases")
        import json

        dataset_json = json.loads((raw / "dataset.json").read_text())
        ending = dataset_json["file_ending"]
        classes = class_names(dataset_json)
        cases = sorted(p.name[: -len(ending)] for p in (raw / "labelsTs").iterdir() if p.name.endswith(ending))
        missing = [c for c in cases if not (pred_dir / f"{c}{ending}").is_file()]
        if missing:
            raise DemoError(f"no prediction for {', '.join(missing)} in {pred_dir}; see {log_path}")
        gts = {c: read_labels(raw / "labelsTs" / f"{c}{ending}") for c in cases}
        preds = {c: read_labels(pred_dir / f"{c}{ending}") for c in cases}
        table = dice_table(gts, preds, classes)
        names = list(classes.values())
        csv_path = workdir / CSV_NAME
        write_dice_csv(table, names, csv_path)
        _say(format_dice_table(table, names))
        done(t0)

        t0 = step(6, "writing overlay images")
        overlay_dir = workdir / "overlays"
        for case in cases:
            image = read_image(raw / "imagesTs" / f"{case}_0000{ending}")
            write_overlay(image, gts[case], preds[case], classes, overlay_dir / f"{case}.png",
                          title=f"{case}: ground truth vs Swin-UMamba prediction", scores=table[case])
        done(t0)
    except CommandFailed as exc:
        _say(f"ERROR: {exc.program} failed with exit code {exc.returncode}. Last lines of its output:\n"
             + textwrap.indent(exc.tail(25), "    ") + f"\nFull log: {exc.log}")
        return 1
    except (DemoError, CommandError) as exc:
        _say(f"ERROR: {exc}")
        return 1
    except KeyboardInterrupt:
        _say(f"Interrupted. Partial outputs and the log are in {workdir}")
        return 130

    _say("")
    _say("Outputs:")
    _say(f"  Dice table (CSV):      {csv_path}")
    _say(f"  overlay images:        {overlay_dir}/<case>.png ({len(cases)} files)")
    _say(f"  predicted label maps:  {pred_dir}")
    _say(f"  trained model:         {workdir / 'nnUNet_results' / DATASET_NAME}")
    _say(f"  full log:              {log_path}")
    _say(f"Total time: {format_seconds(time.perf_counter() - started)}")
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


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the CPU demo: plan, train briefly, predict and score the embedded abdominal MR dataset",
        description="Runs nnU-Net's own commands on the demo dataset that ships with swin-umamba "
        f"({DATASET_NAME}: 16 training and 4 test 2D MR slices; liver, spleen, kidneys, stomach): "
        f"plan and preprocess, train {TRAINER} for a few minutes on CPU, predict the test slices, "
        "print Dice per class and write overlay PNGs. Needs no environment variables and no downloads.",
    )
    p.add_argument("--workdir", default="./swin_umamba_demo",
                   help="folder for all outputs (nnU-Net folders, predictions, overlays, dice.csv, demo.log); "
                   "default: %(default)s")
    p.add_argument("--overwrite", action="store_true",
                   help="reuse a non-empty --workdir, replacing the demo's earlier outputs in it "
                   "(other files are left alone)")
    p.add_argument("--fold", type=_fold, default="0",
                   help="nnU-Net fold to train: 0-4 (trains on 4/5 of the training slices) or all; "
                   "default: %(default)s")
    # the defaults live in swin_umamba/trainers/demo.py (not imported here: it loads torch and nnU-Net)
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help="number of epochs (default: the demo trainer's, 10); the learning rate schedule spans them")
    p.add_argument("--iterations", type=_positive_int, default=None,
                   help="training steps per epoch (default: the demo trainer's, 20)")
    p.set_defaults(func=run_demo)
