"""`swin-umamba reproduce`: the paper's protocol for one dataset, end to end, with nnU-Net's own commands.

    swin-umamba reproduce --dataset 702            # AbdomenMR, Swin-UMamba, checkpoint of epoch 99
    swin-umamba reproduce --dataset 704            # Endoscopy, Swin-UMamba-dagger, epoch 249
    swin-umamba reproduce --dataset 703            # Microscopy, Swin-UMamba-dagger, epoch 349

Steps (each one a subprocess whose output goes to `<out>/logs/<n>_<step>.log`):

1. plan     nnUNetv2_plan_and_preprocess -d ID -c 2d --verify_dataset_integrity
2. train    nnUNetv2_train ID 2d all -tr TRAINER with SWIN_UMAMBA_STOP_AFTER_EPOCHS=100/250/350: the
            1000-epoch cosine schedule, stopped after that many epochs (checkpoint_99/249/349.pth)
3. predict  nnUNetv2_predict -i imagesTs -o <out>/predictions -d ID -c 2d -tr TRAINER -f all
            -chk checkpoint_99/249/349.pth --disable_tta
4. (703)    swin-umamba cells-to-instances: 3-class predictions -> instance TIFFs
5. evaluate swin-umamba evaluate --mode paper against the test labels -> <out>/metrics.csv
then the table of our numbers beside the published ones -> <out>/comparison.md and .csv.

Re-running the same command continues where it stopped: planning is skipped when the plans and the
preprocessed 2d data exist, training resumes with --c from nnU-Net's latest checkpoint and is skipped
when the evaluated checkpoint exists, prediction and scoring are skipped when `<out>/state.json`
says they were done with the same checkpoint (same SHA-256). `--restart-from STEP` redoes a step and
everything after it.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from swin_umamba.workflow.nnunet_runner import (STOP_ENV_VAR, CommandError, CommandFailed, format_seconds, log_tail,
                                                nnunet_environment, nnunet_tool, run_logged)
from swin_umamba.commands.setup import NNUNET_DIR_VARS
from swin_umamba.evaluation.files import write_text_atomic
from swin_umamba.preprocessing.common import sha256_of
PLANS = "nnUNetPlans"
CONFIGURATION = "2d"
FOLD = "all"
STEPS = ("plan", "train", "predict", "evaluate")  # cells-to-instances belongs to "evaluate" for --restart-from
TRAINERS = {"plain": "nnUNetTrainerSwinUMamba", "dagger": "nnUNetTrainerSwinUMambaD"}
PUBLISHED_NAME = {"plain": "Swin-UMamba", "dagger": "Swin-UMamba†"}


class ReproduceError(Exception):
    """A problem found before or between the steps; the message says what to do."""


@dataclass(frozen=True)
class Recipe:
    """What the paper did for one dataset (docs/recipe.md, docs/metrics.md)."""

    dataset_id: int
    title: str
    task: str  # swin-umamba evaluate --task
    metrics: tuple[str, ...]  # the summary values the paper reports
    stop_after: int  # epochs of the 1000-epoch schedule actually trained
    network: str  # "plain" or "dagger": the network of the paper's best entry
    published: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> metric -> value


RECIPES = {
    702: Recipe(702, "AbdomenMR", "abdomen", ("DSC", "NSD"), 100, "plain", {
        "nnU-Net": {"DSC": 0.7450},
        "U-Mamba_Enc": {"DSC": 0.7625},
        "Swin-UMamba": {"DSC": 0.7760, "NSD": 0.8421},
    }),
    703: Recipe(703, "Microscopy (NeurIPSCell)", "cells", ("F1",), 350, "dagger", {
        "nnU-Net": {"F1": 0.5383},
        "U-Mamba_Enc": {"F1": 0.5607},
        "Swin-UMamba": {"F1": 0.5806},
        "Swin-UMamba†": {"F1": 0.5982},
    }),
    704: Recipe(704, "Endoscopy (Endovis17)", "endoscopy", ("DSC", "NSD"), 250, "dagger", {
        "nnU-Net": {"DSC": 0.6264},
        "U-Mamba_Enc": {"DSC": 0.6303},
        "Swin-UMamba": {"DSC": 0.6767, "NSD": 0.6922},
        "Swin-UMamba†": {"DSC": 0.6783, "NSD": 0.6933},
    }),
}


# --------------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------------
def checkpoint_epoch(path: Path) -> int | None:
    """Epochs trained when nnU-Net wrote `path` (its 'current_epoch'); None if unreadable."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        return int(checkpoint["current_epoch"])
    except Exception:  # a truncated or foreign file: treat as "no usable checkpoint"
        return None


# --------------------------------------------------------------------------------------------------
# the run's layout
# --------------------------------------------------------------------------------------------------
@dataclass
class Run:
    recipe: Recipe
    dataset_name: str
    raw: Path
    preprocessed: Path
    results: Path
    trainer: str
    network: str  # plain / dagger: which published row is ours
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
    def model_folder(self) -> Path:
        return self.results / self.dataset_name / f"{self.trainer}__{PLANS}__{CONFIGURATION}" / f"fold_{FOLD}"

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


def resolve_dataset_name(raw: Path, dataset_id: int) -> str:
    matches = sorted(p.name for p in raw.glob(f"Dataset{dataset_id:03d}_*") if p.is_dir())
    if not matches:
        hint = {702: "swin-umamba convert-amos", 703: "swin-umamba convert-neurips-cell",
                704: "swin-umamba convert-endovis17"}[dataset_id]
        raise ReproduceError(f"no Dataset{dataset_id:03d}_* folder in nnUNet_raw={raw}; put U-Mamba's prepared "
                             f"dataset there or build it with `{hint}` (docs/reproduction.md)")
    if len(matches) > 1:
        raise ReproduceError(f"several raw datasets with id {dataset_id} in {raw}: {', '.join(matches)}; keep one")
    return matches[0]


def nnunet_folders() -> tuple[Path, Path, Path]:
    missing = [var for var in NNUNET_DIR_VARS if not os.environ.get(var)]
    if missing:
        lines = "\n".join(f"  export {var}=/path/to/{var}   # {NNUNET_DIR_VARS[var]}" for var in missing)
        raise ReproduceError(f"nnU-Net's folders are not set: {', '.join(missing)}. Set them first, e.g.\n{lines}")
    raw, pre, res = (Path(os.environ[var]) for var in NNUNET_DIR_VARS)
    if not raw.is_dir():
        raise ReproduceError(f"nnUNet_raw={raw} does not exist")
    return raw, pre, res


def case_ids(images: Path, file_ending: str) -> list[str]:
    """Case ids of a folder of nnU-Net images (<case>_0000<ending>, ...)."""
    tail = "_0000" + file_ending
    return sorted(p.name[: -len(tail)] for p in images.iterdir() if p.is_file() and p.name.endswith(tail))


def trainer_network(trainer: str, env: dict[str, str]) -> tuple[str, bool]:
    """(network kind, uses ImageNet weights) of a trainer, found the way nnU-Net finds it."""
    saved = os.environ.get("nnUNet_extTrainer")
    os.environ["nnUNet_extTrainer"] = env["nnUNet_extTrainer"]
    try:
        from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

        quiet = io.StringIO()
        try:
            old, sys.stdout = sys.stdout, quiet  # nnU-Net prints where it searches
            cls = recursive_find_trainer_class_by_name(trainer)
        finally:
            sys.stdout = old
    except RuntimeError as exc:
        raise ReproduceError(f"nnU-Net cannot find the trainer {trainer!r}: {exc}") from exc
    finally:
        if saved is None:
            os.environ.pop("nnUNet_extTrainer", None)
        else:
            os.environ["nnUNet_extTrainer"] = saved
    from swin_umamba.nets import SwinUMambaD

    network_class = getattr(cls, "network_class", None)
    if network_class is None:
        raise ReproduceError(f"{trainer} is not a Swin-UMamba trainer (no network_class)")
    kind = "dagger" if issubclass(network_class, SwinUMambaD) else "plain"
    return kind, bool(getattr(cls, "use_imagenet_weights", False))


def trainer_facts(run: Run) -> tuple[str, bool]:
    """trainer_network(), remembered in state.json: a re-run does not import nnU-Net's trainers again."""
    state = run.load_state()
    known = state.get("trainer")
    if isinstance(known, dict) and known.get("name") == run.trainer:
        return known["network"], bool(known["imagenet"])
    kind, imagenet = trainer_network(run.trainer, nnunet_environment())
    if run.state_file.parent.is_dir():
        state["trainer"] = {"name": run.trainer, "network": kind, "imagenet": imagenet}
        run.save_state(state)
    return kind, imagenet


# --------------------------------------------------------------------------------------------------
# running one step
# --------------------------------------------------------------------------------------------------
class StepFailed(Exception):
    def __init__(self, step: str, returncode: int, log: Path):
        super().__init__(f"step '{step}' failed with exit code {returncode}; log: {log}")
        self.step, self.returncode, self.log = step, returncode, log


def _is_progress_line(line: str) -> bool:
    """Lines of nnU-Net's training output worth showing while the step runs."""
    return ": Epoch " in line or "Epoch time" in line or ": Mean Validation Dice" in line


class Progress:
    def __init__(self, total: int):
        self.total, self.index, self.started = total, 0, time.monotonic()

    def step(self, name: str, message: str) -> None:
        self.index += 1
        print(f"[{self.index}/{self.total}] {name}: {message}", flush=True)

    @staticmethod
    def note(message: str) -> None:
        print(f"      {message}", flush=True)


def _show(verbose: bool):
    """What run_logged prints of a step's output: everything with --verbose, else nnU-Net's epoch lines."""
    if verbose:
        return lambda line: line
    return lambda line: f"      {line.rstrip()}" if _is_progress_line(line) else None


def run_command(step: str, cmd: list[str], env: dict[str, str], log: Path, verbose: bool) -> float:
    """Run `cmd`, output to `log` (and the terminal with verbose); StepFailed unless it exits 0."""
    Progress.note(f"$ {shlex.join(cmd)}")
    Progress.note(f"log: {log}")
    try:
        elapsed = run_logged(cmd, env, log, show=_show(verbose))
    except CommandFailed as exc:
        raise StepFailed(step, exc.returncode, log) from exc
    Progress.note(f"done in {format_seconds(elapsed)}")
    return elapsed


class _Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)


def run_swin_umamba(step: str, argv: list[str], log: Path, verbose: bool) -> float:
    """One of our own sub-commands, in this process (no second torch import); output to `log`."""
    import contextlib
    import traceback

    from swin_umamba.cli import main

    log.parent.mkdir(parents=True, exist_ok=True)
    shown = shlex.join(["swin-umamba", *argv])
    Progress.note(f"$ {shown}")
    Progress.note(f"log: {log}")
    start = time.monotonic()
    with open(log, "w") as stream:
        stream.write(f"$ {shown}\n")
        target = _Tee(stream, sys.stdout) if verbose else stream
        with contextlib.redirect_stdout(target), contextlib.redirect_stderr(target):
            try:
                returncode = int(main(argv) or 0)
            except Exception:  # anything our command did not turn into a message: keep the traceback in the log
                traceback.print_exc()
                returncode = 1
    elapsed = time.monotonic() - start
    if returncode != 0:
        raise StepFailed(step, returncode, log)
    Progress.note(f"done in {format_seconds(elapsed)}")
    return elapsed


# --------------------------------------------------------------------------------------------------
# the steps
# --------------------------------------------------------------------------------------------------
def plans_ready(run: Run) -> bool:
    """Plans written and every training case preprocessed for the 2d configuration."""
    plans_file = run.preprocessed / run.dataset_name / f"{PLANS}.json"
    dataset_json = run.raw / run.dataset_name / "dataset.json"
    try:
        plans = json.loads(plans_file.read_text())
        identifier = plans["configurations"][CONFIGURATION]["data_identifier"]
        expected = int(json.loads(dataset_json.read_text())["numTraining"])
    except (OSError, ValueError, KeyError):
        return False
    data = run.preprocessed / run.dataset_name / identifier
    return data.is_dir() and len(list(data.glob("*.pkl"))) >= expected


def usable_checkpoint(run: Run) -> Path | None:
    """The checkpoint of epoch stop_after - 1 if training got that far, else None.

    checkpoint_{E}.pth exists when E + 1 is a multiple of the trainer's extra_checkpoint_every;
    otherwise checkpoint_final.pth serves when it was written right after that epoch.
    """
    named = run.model_folder / run.checkpoint_name
    final = run.model_folder / "checkpoint_final.pth"
    if named.is_file() and final.is_file():
        return named
    if final.is_file() and checkpoint_epoch(final) == run.stop_after:
        return final
    return None


def step_plan(run: Run, progress: Progress, redo: bool) -> None:
    if not redo and plans_ready(run):
        progress.step("plan", f"skipped: plans and preprocessed {CONFIGURATION} data exist in "
                              f"{run.preprocessed / run.dataset_name}")
        return
    progress.step("plan", "nnU-Net fingerprint, plans and preprocessing (2d)")
    cmd = [nnunet_tool("nnUNetv2_plan_and_preprocess"), "-d", str(run.recipe.dataset_id), "-c", CONFIGURATION,
           "--verify_dataset_integrity"]
    if run.num_processes is not None:
        workers = str(max(1, run.num_processes))
        cmd += ["-npfp", workers, "-np", workers]
    run_command("plan", cmd, nnunet_environment(), run.logs / "1_plan.log", run.verbose)


def step_train(run: Run, progress: Progress, redo: bool) -> Path:
    if redo and run.model_folder.is_dir():
        stale = sorted(run.model_folder.glob("checkpoint_*.pth"))
        for path in stale:
            path.unlink()
        if stale:
            Progress.note(f"--restart-from: removed {len(stale)} checkpoint(s) from {run.model_folder}")
    checkpoint = None if redo else usable_checkpoint(run)
    if checkpoint is not None:
        progress.step("train", f"skipped: {checkpoint} exists")
        return checkpoint
    resume = any((run.model_folder / n).is_file()
                 for n in ("checkpoint_latest.pth", "checkpoint_final.pth", "checkpoint_best.pth"))
    what = "resuming from nnU-Net's latest checkpoint (--c)" if resume else "from the start"
    progress.step("train", f"{run.trainer}, {run.stop_after} epochs of the 1000-epoch cosine schedule, {what}")
    cmd = [nnunet_tool("nnUNetv2_train"), str(run.recipe.dataset_id), CONFIGURATION, FOLD, "-tr", run.trainer,
           "-p", PLANS, "-device", run.device]
    if run.num_gpus > 1:
        cmd += ["-num_gpus", str(run.num_gpus)]
    if resume:
        cmd.append("--c")
    Progress.note(f"{STOP_ENV_VAR}={run.stop_after}")
    run_command("train", cmd, nnunet_environment(**{STOP_ENV_VAR: str(run.stop_after)}), run.logs / "2_train.log",
                run.verbose)
    checkpoint = usable_checkpoint(run)
    if checkpoint is None:
        raise ReproduceError(
            f"training finished but {run.model_folder / run.checkpoint_name} is missing and checkpoint_final.pth "
            f"is not from epoch {run.stop_after - 1}: --stop-after must be a multiple of the trainer's "
            f"extra_checkpoint_every (50 for the paper's trainers), or the trainer's num_epochs is smaller")
    return checkpoint


def predictions_complete(run: Run, cases: list[str], file_ending: str) -> bool:
    return run.predictions.is_dir() and all((run.predictions / f"{c}{file_ending}").is_file() for c in cases)


def step_predict(run: Run, progress: Progress, checkpoint: Path, stamp: dict, state: dict, redo: bool,
                 cases: list[str], file_ending: str) -> None:
    if not redo and state.get("predict") == stamp and predictions_complete(run, cases, file_ending):
        progress.step("predict", f"skipped: {len(cases)} predictions from {checkpoint.name} in {run.predictions}")
        return
    if run.predictions.exists():
        shutil.rmtree(run.predictions)  # made by another checkpoint, or incomplete: start clean
    for step in ("predict", "instances", "evaluate"):
        state.pop(step, None)
    run.save_state(state)
    progress.step("predict", f"{len(cases)} test case(s) with {checkpoint.name}, fold {FOLD}, no test-time "
                             f"augmentation")
    cmd = [nnunet_tool("nnUNetv2_predict"), "-i", str(run.test_images), "-o", str(run.predictions),
           "-d", str(run.recipe.dataset_id), "-c", CONFIGURATION, "-tr", run.trainer, "-p", PLANS, "-f", FOLD,
           "-chk", checkpoint.name, "--disable_tta", "-device", run.device, "--disable_progress_bar"]
    if run.num_processes is not None:  # 0: nnU-Net's sequential mode, no worker processes
        cmd += ["-npp", str(run.num_processes), "-nps", str(run.num_processes)]
    run_command("predict", cmd, nnunet_environment(), run.logs / "3_predict.log", run.verbose)
    if not predictions_complete(run, cases, file_ending):
        raise ReproduceError(f"nnUNetv2_predict ended without writing every prediction into {run.predictions}")
    state["predict"] = stamp
    run.save_state(state)


def step_evaluate(run: Run, progress: Progress, stamp: dict, state: dict, redo: bool) -> None:
    evaluated = {**stamp, "test_labels": str(run.test_labels.resolve())}
    scored = run.predictions
    if run.recipe.task == "cells":
        if not redo and state.get("instances") == stamp and run.instances.is_dir():
            progress.step("instances", f"skipped: instance TIFFs in {run.instances}")
        else:
            progress.step("instances", "3-class predictions -> cell instances (8-connected interior components)")
            run_swin_umamba("instances", ["cells-to-instances", "--pred", str(run.predictions), "--out",
                                          str(run.instances), "--overwrite"],
                            run.logs / "4_instances.log", run.verbose)
            state["instances"] = stamp
            run.save_state(state)
        scored = run.instances
    number = 5 if run.recipe.task == "cells" else 4
    if not redo and state.get("evaluate") == evaluated and run.metrics_csv.is_file():
        progress.step("evaluate", f"skipped: {run.metrics_csv} is up to date")
        return
    progress.step("evaluate", f"paper metrics ({run.recipe.task}, --mode paper) against {run.test_labels}")
    argv = ["evaluate", "--task", run.recipe.task, "--gt", str(run.test_labels), "--pred", str(scored),
                "--out", str(run.metrics_csv), "--mode", "paper", "--quiet"]
    if run.num_processes:
        argv += ["--num-workers", str(run.num_processes)]
    run_swin_umamba("evaluate", argv, run.logs / f"{number}_evaluate.log", run.verbose)
    state["evaluate"] = evaluated
    run.save_state(state)


# --------------------------------------------------------------------------------------------------
# the comparison table
# --------------------------------------------------------------------------------------------------
def our_summary(run: Run) -> dict[str, float]:
    from swin_umamba.evaluation.runner import summarize

    with open(run.metrics_csv, newline="") as stream:
        rows = []
        for row in csv.DictReader(stream):
            parsed = {}
            for key, value in row.items():
                try:
                    parsed[key] = float(value)
                except (TypeError, ValueError):
                    parsed[key] = value
            rows.append(parsed)
    if not rows:
        raise ReproduceError(f"{run.metrics_csv} holds no case")
    return summarize(run.recipe.task, rows)


def comparison_rows(run: Run, ours: dict[str, float], checkpoint: str) -> list[dict]:
    rows = [{"method": method, "source": "published", **values} for method, values in run.recipe.published.items()]
    rows.append({"method": f"{PUBLISHED_NAME[run.network]}, this run ({run.trainer}, {checkpoint})",
                 "source": "this run", **{m: ours[m] for m in run.recipe.metrics}})
    return rows


def _value(value) -> str:
    return "" if value is None else f"{value:.4f}"


def write_comparison(run: Run, ours: dict[str, float], checkpoint: str, cases: int) -> str:
    """comparison.md and comparison.csv in the output folder; returns the markdown table."""
    metrics = run.recipe.metrics
    rows = comparison_rows(run, ours, checkpoint)
    reference = run.recipe.published.get(PUBLISHED_NAME[run.network], {})

    lines = [f"| Method | {' | '.join(metrics)} |", "| --- | " + " | ".join("---" for _ in metrics) + " |"]
    for row in rows:
        cells = [_value(row.get(m)) for m in metrics]
        if row["source"] == "this run":
            cells = [f"**{c}**" for c in cells]
        lines.append(f"| {row['method']} | {' | '.join(cells)} |")
    table = "\n".join(lines)
    differences = ", ".join(f"{m} {ours[m] - reference[m]:+.4f}" for m in metrics if m in reference)
    text = (f"# Dataset {run.recipe.dataset_id} {run.recipe.title}: this run beside the paper\n\n"
            f"{table}\n\n"
            f"This run: {run.trainer}, {run.stop_after} epochs of the 1000-epoch cosine schedule, "
            f"{checkpoint}, fold {FOLD}, --disable_tta, {cases} test case(s) scored with "
            f"`swin-umamba evaluate --mode paper` against {run.test_labels}.\n")
    if differences:
        text += f"Difference to the published {PUBLISHED_NAME[run.network]}: {differences}.\n"
    write_text_atomic(run.out / "comparison.md", text)

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["dataset", "method", "source", *metrics])
    for row in rows:
        writer.writerow([run.recipe.dataset_id, row["method"], row["source"], *[_value(row.get(m)) for m in metrics]])
    write_text_atomic(run.out / "comparison.csv", buffer.getvalue())
    if differences:
        table += f"\nDifference to the published {PUBLISHED_NAME[run.network]}: {differences}"
    return table


# --------------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------------
def build_run(args: argparse.Namespace) -> Run:
    recipe = RECIPES[args.dataset]
    raw, pre, res = nnunet_folders()
    dataset_name = resolve_dataset_name(raw, recipe.dataset_id)
    if args.stop_after is not None and args.stop_after < 1:
        raise ReproduceError("--stop-after must be at least 1")
    if args.num_processes is not None and args.num_processes < 0:
        raise ReproduceError("--num-processes must be 0 or more")
    stop_after = args.stop_after or recipe.stop_after
    trainer = args.trainer or TRAINERS[args.network or recipe.network]
    test_images = args.test_images or raw / dataset_name / "imagesTs"
    test_labels = args.test_labels or raw / dataset_name / "labelsTs"
    out = args.out or res / dataset_name / f"reproduce__{trainer}__{CONFIGURATION}__epoch{stop_after}"
    run = Run(recipe, dataset_name, raw, pre, res, trainer, args.network or recipe.network, stop_after,
              args.device, Path(test_images), Path(test_labels), Path(out), args.num_gpus, args.num_processes,
              args.verbose)
    for folder, what, option in ((run.test_images, "test images", "--test-images"),
                                 (run.test_labels, "test labels", "--test-labels")):
        if not folder.is_dir() or not any(folder.iterdir()):
            raise ReproduceError(f"{what} not found: {folder} is missing or empty; pass {option} DIR (the paper's "
                                 f"test set is described in docs/reproduction.md)")
    return run


def run_reproduce(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        run = build_run(args)
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
        file_ending = json.loads((run.raw / run.dataset_name / "dataset.json").read_text())["file_ending"]
        cases = case_ids(run.test_images, file_ending)
        if not cases:
            raise ReproduceError(f"no test image named <case>_0000{file_ending} in {run.test_images}")
    except ReproduceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    redo_from = STEPS.index(args.restart_from) if args.restart_from else len(STEPS)
    redo = {name: i >= redo_from for i, name in enumerate(STEPS)}
    steps = 5 if run.recipe.task == "cells" else 4
    print(f"Reproducing dataset {run.recipe.dataset_id} ({run.dataset_name}, {run.recipe.title}): "
          f"{run.trainer} ({PUBLISHED_NAME[run.network]}), {run.stop_after} epochs of a 1000-epoch schedule, "
          f"evaluated with {run.checkpoint_name}, device {run.device}")
    print(f"output: {run.out}")
    if args.dry_run:
        print_dry_run(run, cases, redo)
        return 0

    run.out.mkdir(parents=True, exist_ok=True)
    state = run.load_state()
    state["trainer"] = {"name": run.trainer, "network": kind, "imagenet": needs_imagenet}
    run.save_state(state)
    progress = Progress(steps)
    try:
        step_plan(run, progress, redo["plan"])
        checkpoint = step_train(run, progress, redo["train"])
        stamp = {"checkpoint": str(checkpoint.resolve()), "sha256": sha256_of(checkpoint),
                 "test_images": str(run.test_images.resolve())}
        state = run.load_state()
        step_predict(run, progress, checkpoint, stamp, state, redo["predict"], cases, file_ending)
        step_evaluate(run, progress, stamp, state, redo["evaluate"])
        ours = our_summary(run)
        table = write_comparison(run, ours, checkpoint.name, len(cases))
    except StepFailed as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        print(f"--- last lines of {exc.log} ---\n{log_tail(exc.log)}\n---", file=sys.stderr)
        print("Fix the cause and run the same command again: finished steps are skipped and training resumes.",
              file=sys.stderr)
        return 1
    except (ReproduceError, CommandError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to continue", file=sys.stderr)
        return 130

    print(f"\n{table}\n")
    print(f"Table: {run.out / 'comparison.md'} and {run.out / 'comparison.csv'}; per-case metrics: "
          f"{run.metrics_csv}")
    print(f"Total time: {format_seconds(time.monotonic() - started)}")
    return 0


def print_dry_run(run: Run, cases: list[str], redo: dict[str, bool]) -> None:
    """The commands the run would execute (nothing is started)."""
    env_line = f"{STOP_ENV_VAR}={run.stop_after} nnUNet_extTrainer={nnunet_environment()['nnUNet_extTrainer']}"
    plan = ("skip" if not redo["plan"] and plans_ready(run) else "run")
    checkpoint = None if redo["train"] else usable_checkpoint(run)
    print(f"plan ({plan}): nnUNetv2_plan_and_preprocess -d {run.recipe.dataset_id} -c {CONFIGURATION} "
          f"--verify_dataset_integrity")
    print(f"train ({'skip' if checkpoint else 'run'}): {env_line} nnUNetv2_train {run.recipe.dataset_id} "
          f"{CONFIGURATION} {FOLD} -tr {run.trainer} -device {run.device}")
    print(f"predict: nnUNetv2_predict -i {run.test_images} -o {run.predictions} -d {run.recipe.dataset_id} "
          f"-c {CONFIGURATION} -tr {run.trainer} -f {FOLD} -chk {run.checkpoint_name} --disable_tta "
          f"-device {run.device}  ({len(cases)} case(s))")
    scored = run.predictions
    if run.recipe.task == "cells":
        print(f"instances: swin-umamba cells-to-instances --pred {run.predictions} --out {run.instances}")
        scored = run.instances
    print(f"evaluate: swin-umamba evaluate --task {run.recipe.task} --gt {run.test_labels} --pred {scored} "
          f"--out {run.metrics_csv} --mode paper")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "reproduce",
        help="the paper's protocol for dataset 702, 703 or 704: plan, train, predict, evaluate, compare",
        description="Runs the published protocol for one dataset with nnU-Net's own commands: "
                    "nnUNetv2_plan_and_preprocess (2d), nnUNetv2_train fold all with the 1000-epoch cosine "
                    "schedule stopped after 100 (702), 350 (703) or 250 (704) epochs, nnUNetv2_predict with "
                    "that checkpoint and --disable_tta, (703: cell instances), the paper's metrics, and a table "
                    "of the numbers beside the published ones. nnUNet_raw, nnUNet_preprocessed and "
                    "nnUNet_results must be set; nnUNet_extTrainer is set for the nnU-Net commands. Running the "
                    "same command again continues where it stopped.",
    )
    p.add_argument("--dataset", type=int, required=True, choices=sorted(RECIPES),
                   help="702 AbdomenMR, 703 Microscopy (NeurIPSCell), 704 Endoscopy (Endovis17)")
    p.add_argument("--network", choices=sorted(TRAINERS),
                   help="plain: nnUNetTrainerSwinUMamba; dagger: nnUNetTrainerSwinUMambaD (Swin-UMamba†). "
                        "Default: the paper's best entry (702 plain, 703 and 704 dagger)")
    p.add_argument("--trainer", help="nnU-Net trainer class to use instead (e.g. a Scratch variant or a short "
                                     "test trainer); its network decides the published row compared with")
    p.add_argument("--stop-after", type=int, default=None,
                   help="epochs to train of the schedule (default: the paper's 100 / 350 / 250); the checkpoint "
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
    p.add_argument("--dry-run", action="store_true", help="print the commands and what would be skipped; run nothing")
    p.add_argument("--verbose", action="store_true", help="echo the nnU-Net output (it always goes to the logs)")
    p.set_defaults(func=run_reproduce)
    return p
