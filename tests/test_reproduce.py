"""`swin-umamba reproduce` end to end on a miniature Dataset703 (cells), on CPU, with nnU-Net's real commands.

The module builds one workspace; the `first_run` fixture runs the whole protocol once, on first
use, with a short test trainer (a 4-epoch cosine schedule stopped after 2 epochs, so
checkpoint_1.pth is evaluated). The tests check its outputs, a re-run that skips every finished
step, and the error paths; each passes alone. The command runs in this process (no Python start-up);
the nnU-Net programs it starts are processes of their own.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from swin_umamba.fileio import sha256_of
from swin_umamba.reproduction.recipes import RECIPES
from swin_umamba.workflow.predictions import read_prediction_stamp
from tests.nnunet_workspace import NnUNetWorkspace
from swin_umamba.commands.setup import trainers_dir
from swin_umamba.preprocessing.neurips_cell import convert_neurips_cell

REPO = Path(__file__).resolve().parent.parent
TRAINER = "nnUNetTrainerSwinUMambaDScratch_repro"  # tests/nnunet_trainers/short_trainers.py
DATASET = "Dataset703_NeurIPSCell"


def _cells(rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """An instance map with a few square cells away from the border."""
    inst = np.zeros((size, size), np.uint16)
    for k, (y, x) in enumerate([(4, 4), (4, 18), (18, 10)], start=1):
        dy, dx = rng.integers(0, 4, size=2)
        inst[y + dy:y + dy + 8, x + dx:x + dx + 8] = k
    return inst


def _image(inst: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    base = np.where(inst > 0, 200, 30).astype(np.float64)
    noisy = base[..., None] + rng.normal(0, 10, size=inst.shape + (3,))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def make_miniature_703(root: Path, raw: Path) -> None:
    """A 4-image training set and a 2-image test set of 32x32 RGB cells, converted like the real release."""
    rng = np.random.default_rng(703)
    folders = {name: root / "release" / name for name in ("images", "labels", "test_images", "test_labels")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    for split, count, offset in (("", 4, 1), ("test_", 2, 100)):
        for i in range(offset, offset + count):
            inst = _cells(rng)
            Image.fromarray(_image(inst, rng)).save(folders[f"{split}images"] / f"cell_{i:05d}.png")
            tifffile.imwrite(folders[f"{split}labels"] / f"cell_{i:05d}_label.tiff", inst)
    convert_neurips_cell(folders["images"], folders["labels"], raw, test_images=folders["test_images"],
                         test_labels=folders["test_labels"], verify=False)


class Workspace(NnUNetWorkspace):
    def __init__(self, root: Path):
        # only the test trainers: the command must add the package's folder itself
        super().__init__(root, str(REPO / "tests" / "nnunet_trainers"),
                         unset=("SWIN_UMAMBA_PRETRAINED", "SWIN_UMAMBA_STOP_AFTER_EPOCHS"))
        make_miniature_703(root, self.raw)
        self.out = root / "reproduction"
        self.env["nnUNet_compile"] = "f"

    def arguments(self, *extra: str, out: Path | None = None) -> list[str]:
        return ["reproduce", "--dataset", "703", "--trainer", TRAINER, "--stop-after", "2", "--device", "cpu",
                "--num-processes", "0", "--out", str(out or self.out), *extra]

    def reproduce_in_process(self, monkeypatch, capsys, *extra: str, out: Path | None = None):
        """(exit code, stdout, stderr) of the command run by this process (no Python start-up; its nnU-Net
        programs are processes of their own)."""
        from swin_umamba.cli import main

        self.activate(monkeypatch, programs=True)
        capsys.readouterr()
        code = main(self.arguments(*extra, out=out))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    @property
    def fold(self) -> Path:
        return self.results / DATASET / f"{TRAINER}__nnUNetPlans__2d" / "fold_all"


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("reproduce"))


@pytest.fixture(scope="module")
def first_run(ws) -> subprocess.CompletedProcess:
    """The whole protocol, the command run by this process (its nnU-Net programs are processes of their own)."""
    from swin_umamba.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        ws.activate(patch, programs=True)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(ws.arguments())
    proc = subprocess.CompletedProcess(ws.arguments(), code, stdout.getvalue(), stderr.getvalue())
    assert code == 0, f"reproduce failed ({code}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return proc


def _comparison(ws) -> list[dict]:
    with open(ws.out / "comparison.csv", newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.mark.slow
def test_whole_protocol_writes_the_table_with_ours_and_the_published_numbers(ws, first_run):
    for step in ("[1/5] plan", "[2/5] train", "[3/5] predict", "[4/5] instances", "[5/5] evaluate"):
        assert step in first_run.stdout, step
    assert "done in" in first_run.stdout and "Total time" in first_run.stdout

    with open(ws.out / "metrics.csv", newline="") as stream:
        per_case = list(csv.DictReader(stream))
    assert sorted(r["Name"] for r in per_case) == ["cell_00100", "cell_00101"]
    our_f1 = float(np.mean([float(r["F1"]) for r in per_case]))

    rows = {r["method"]: r for r in _comparison(ws)}
    for method, values in RECIPES[703].published.items():
        assert rows[method]["source"] == "published"
        assert float(rows[method]["F1"]) == pytest.approx(values["F1"])
    assert float(rows["Swin-UMamba†"]["F1"]) == pytest.approx(0.5982)
    assert float(rows["nnU-Net"]["F1"]) == pytest.approx(0.5383)
    ours = [r for r in rows.values() if r["source"] == "this run"]
    assert len(ours) == 1 and TRAINER in ours[0]["method"] and "checkpoint_1.pth" in ours[0]["method"]
    assert ours[0]["method"].startswith("Swin-UMamba†")  # the SwinUMambaD network is compared with the dagger row
    assert float(ours[0]["F1"]) == pytest.approx(our_f1, abs=1e-4)

    markdown = (ws.out / "comparison.md").read_text()
    assert "| Method | F1 |" in markdown and "0.5982" in markdown and "0.5806" in markdown
    assert f"**{our_f1:.4f}**" in markdown
    assert f"**{our_f1:.4f}**" in first_run.stdout  # the table is printed at the end too
    assert len(list((ws.out / "instances").glob("*_label.tiff"))) == 2


@pytest.mark.slow
def test_training_stopped_early_and_predictions_came_from_the_named_checkpoint(ws, first_run):
    checkpoint = ws.fold / "checkpoint_1.pth"
    assert checkpoint.is_file() and (ws.fold / "checkpoint_final.pth").is_file()
    assert not (ws.fold / "checkpoint_2.pth").exists(), "SWIN_UMAMBA_STOP_AFTER_EPOCHS=2 must end after epoch 1"
    assert torch.load(checkpoint, map_location="cpu", weights_only=False)["current_epoch"] == 2
    training_log = "".join(p.read_text() for p in ws.fold.glob("training_log_*.txt"))
    assert "stopping after epoch 1 of a 4-epoch" in training_log

    stamp = read_prediction_stamp(ws.out / "predictions")
    assert Path(stamp["folds"]["all"]["checkpoint"]) == checkpoint.resolve()
    assert stamp["folds"]["all"]["sha256"] == sha256_of(checkpoint)
    command = (ws.out / "logs" / "3_predict.log").read_text().splitlines()[0]
    assert "nnUNetv2_predict" in command and "-chk checkpoint_1.pth" in command
    assert "--disable_tta" in command and "-f all" in command and f"-tr {TRAINER}" in command
    assert sorted(p.name for p in (ws.out / "predictions").glob("*.png")) == ["cell_00100.png", "cell_00101.png"]
    train_command = (ws.out / "logs" / "2_train.log").read_text().splitlines()[0]
    assert "nnUNetv2_train 703 2d all" in train_command and "--c" not in train_command.split()


@pytest.mark.slow
def test_running_again_skips_every_finished_step(ws, first_run, monkeypatch, capsys):
    checkpoint = ws.fold / "checkpoint_1.pth"
    before = checkpoint.stat().st_mtime_ns
    code, out, err = ws.reproduce_in_process(monkeypatch, capsys)
    assert code == 0, err[-3000:]
    for step in ("plan", "train", "predict", "instances", "evaluate"):
        assert f"{step}: skipped" in out, step
    assert checkpoint.stat().st_mtime_ns == before
    assert "Swin-UMamba†" in out and "0.5982" in out


@pytest.mark.slow
def test_a_failing_step_shows_its_log_tail_and_exits_non_zero(ws, first_run, tmp_path, monkeypatch, capsys):
    out = tmp_path / "reproduction"
    shutil.copytree(ws.out, out)  # a copy of the finished run: the module's run stays as the first run left it
    labels = tmp_path / "labels"
    labels.mkdir()
    tifffile.imwrite(labels / "cell_09999_label.tiff", np.zeros((32, 32), np.uint16))  # no such prediction
    code, stdout, stderr = ws.reproduce_in_process(monkeypatch, capsys, "--test-labels", str(labels), out=out)
    assert code == 1
    assert "'evaluate' failed" in stderr and "last lines of" in stderr
    assert "cell_09999" in stderr  # the evaluate error, from the log tail
    assert "evaluate: skipped" not in stdout and "predict: skipped" in stdout


def _fake_nnunet_folders(root: Path, monkeypatch, dataset_name: str) -> None:
    """nnU-Net's three folders under `root`, with one file in the data set's imagesTs and labelsTs."""
    for sub in ("imagesTs", "labelsTs"):
        (root / "raw" / dataset_name / sub).mkdir(parents=True)
        (root / "raw" / dataset_name / sub / "x").touch()
    for var, sub in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "pre"), ("nnUNet_results", "res")):
        monkeypatch.setenv(var, str(root / sub))


def test_missing_nnunet_folders_are_named(tmp_path, monkeypatch, capsys):
    from swin_umamba.cli import main

    _fake_nnunet_folders(tmp_path, monkeypatch, DATASET)
    monkeypatch.delenv("nnUNet_preprocessed")
    monkeypatch.delenv("nnUNet_results")
    assert main(["reproduce", "--dataset", "703", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "nnUNet_preprocessed" in err and "nnUNet_results" in err and "export" in err


def test_dry_run_shows_the_papers_commands(tmp_path, monkeypatch, capsys):
    from swin_umamba.cli import main

    _fake_nnunet_folders(tmp_path, monkeypatch, "unused")
    make_miniature_703(tmp_path, tmp_path / "raw")
    assert main(["reproduce", "--dataset", "703", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "-tr nnUNetTrainerSwinUMambaD " in out and "(Swin-UMamba†)" in out
    assert "SWIN_UMAMBA_STOP_AFTER_EPOCHS=350" in out and "-chk checkpoint_349.pth --disable_tta" in out
    assert str(trainers_dir()) in out  # registered for the nnU-Net commands


@pytest.mark.parametrize("dataset, network, trainer, stop, checkpoint", [
    (702, None, "nnUNetTrainerSwinUMamba", 100, "checkpoint_99.pth"),
    (703, None, "nnUNetTrainerSwinUMambaD", 350, "checkpoint_349.pth"),
    (704, None, "nnUNetTrainerSwinUMambaD", 250, "checkpoint_249.pth"),
    (704, "plain", "nnUNetTrainerSwinUMamba", 250, "checkpoint_249.pth"),
])
def test_the_papers_trainer_and_checkpoint_per_dataset(tmp_path, monkeypatch, dataset, network, trainer, stop,
                                                       checkpoint):
    from swin_umamba.cli import build_parser
    from swin_umamba.commands.reproduce import build_run

    name = {702: "Dataset702_AbdomenMR", 703: "Dataset703_NeurIPSCell", 704: "Dataset704_Endovis17"}[dataset]
    _fake_nnunet_folders(tmp_path, monkeypatch, name)
    argv = ["reproduce", "--dataset", str(dataset)] + (["--network", network] if network else [])
    run = build_run(build_parser().parse_args(argv))
    assert (run.trainer, run.stop_after, run.checkpoint_name) == (trainer, stop, checkpoint)
    assert run.model_folder == tmp_path / "res" / name / f"{trainer}__nnUNetPlans__2d" / "fold_all"
    assert run.test_labels == tmp_path / "raw" / name / "labelsTs"


def test_training_resumes_with_c_and_is_skipped_when_the_checkpoint_exists(tmp_path, monkeypatch):
    """The resume decision of the train step (nnU-Net's own --c is exercised in test_e2e_cli)."""
    from swin_umamba.reproduction import steps
    from swin_umamba.reproduction.run import Run
    from swin_umamba.workflow import nnunet_runner
    from swin_umamba.workflow.progress import StepCounter

    run = Run(RECIPES[704], "Dataset704_Endovis17", tmp_path / "raw", tmp_path / "pre",
              tmp_path / "res", "nnUNetTrainerSwinUMambaD", "dagger", 250, "cpu", tmp_path / "ts",
              tmp_path / "ls", tmp_path / "out")
    calls = []

    def fake_run_command(step, cmd, env, log, verbose):
        calls.append((cmd, env[steps.STOP_ENV_VAR], env["nnUNet_extTrainer"]))
        run.model_folder.mkdir(parents=True, exist_ok=True)
        for name in ("checkpoint_249.pth", "checkpoint_final.pth"):
            (run.model_folder / name).touch()
        return 0.0

    monkeypatch.setattr(steps, "run_command", fake_run_command)
    monkeypatch.setattr(nnunet_runner, "nnunet_tool", lambda name: name)
    progress = StepCounter(4)

    assert steps.step_train(run, progress, redo=False) == run.model_folder / "checkpoint_249.pth"
    cmd, stop, ext = calls[-1]
    assert cmd[:6] == ["nnUNetv2_train", "704", "2d", "all", "-tr", "nnUNetTrainerSwinUMambaD"]
    assert "--c" not in cmd and stop == "250" and str(trainers_dir()) in ext.split(os.pathsep)

    steps.step_train(run, progress, redo=False)  # the checkpoint exists: nothing runs
    assert len(calls) == 1

    (run.model_folder / "checkpoint_249.pth").unlink()
    (run.model_folder / "checkpoint_final.pth").unlink()
    (run.model_folder / "checkpoint_latest.pth").touch()  # an interrupted run
    steps.step_train(run, progress, redo=False)
    assert len(calls) == 2 and calls[-1][0][-1] == "--c"

    steps.step_train(run, progress, redo=True)  # --restart-from train: old checkpoints go, no --c
    assert len(calls) == 3 and "--c" not in calls[-1][0]
    assert not (run.model_folder / "checkpoint_latest.pth").exists()


@pytest.mark.slow
def test_a_damaged_test_image_stops_the_run_before_prediction(ws, first_run, tmp_path, monkeypatch, capsys):
    images = tmp_path / "imagesTs"
    images.mkdir()
    for path in sorted((ws.raw / DATASET / "imagesTs").iterdir()):
        (images / path.name).write_bytes(path.read_bytes())
    damaged = sorted(images.iterdir())[0]
    damaged.write_bytes(b"")
    code, stdout, stderr = ws.reproduce_in_process(monkeypatch, capsys, "--test-images", str(images))
    assert code == 1
    assert str(damaged) in stderr and "empty (0 bytes)" in stderr and "fix:" in stderr
    assert "nnUNetv2_predict" not in stdout  # never started


@pytest.mark.slow
def test_baselines_get_this_runs_protocol_model_and_predictions(ws, first_run, monkeypatch, capsys):
    """--baselines hands compare_with_baselines (whose real run tests/test_compare.py checks) this run's
    schedule and stop, its model, the evaluated checkpoint, its test set and its predictions."""
    from swin_umamba.comparison import baselines
    from swin_umamba.comparison.baselines import BASELINE_STEPS, REPORT_NAMES

    calls = []

    def recorded(steps, counter, ours, checkpoint, protocol, test, out, trainer, resamples, seed, ours_predictions):
        calls.append(dict(steps=steps, ours=ours, checkpoint=checkpoint, protocol=protocol, test=test, out=out,
                          trainer=trainer, ours_predictions=ours_predictions))
        for _ in range(BASELINE_STEPS):
            counter.begin("baseline step")
        return "| the baselines' table |"

    monkeypatch.setattr(baselines, "compare_with_baselines", recorded)
    code, stdout, stderr = ws.reproduce_in_process(monkeypatch, capsys, "--baselines", "--baseline-trainer",
                                                   "nnUNetTrainerProtocol_compare")
    assert code == 0, f"{stdout[-4000:]}\n{stderr[-4000:]}"
    (call,) = calls
    assert "predict: skipped" in stdout and "[12/12]" in stdout and "| the baselines' table |" in stdout
    assert all(str(ws.out / name) in stdout for name in REPORT_NAMES.values())
    protocol = call["protocol"]
    assert (protocol.schedule_epochs, protocol.iterations_per_epoch, protocol.stop_after, protocol.fold,
            protocol.configuration) == (4, 1, 2, "all", "2d")
    assert (call["ours"].trainer, call["ours"].plans, call["ours"].label) == (TRAINER, "nnUNetPlans", "Swin-UMamba†")
    assert call["checkpoint"] == ws.fold / "checkpoint_1.pth" and call["out"] == ws.out
    assert call["ours_predictions"] == ws.out / "predictions" and call["trainer"] == "nnUNetTrainerProtocol_compare"
    test = call["test"]
    assert (test.images, test.labels, test.task) == (ws.raw / DATASET / "imagesTs", ws.raw / DATASET / "labelsTs",
                                                     "cells")
    assert sorted(test.cases) == ["cell_00100", "cell_00101"]
    steps = call["steps"]
    assert (steps.dataset_id, steps.dataset_name, steps.results, steps.device) == (703, DATASET, ws.results, "cpu")


@pytest.mark.slow
def test_comparisons_per_case_scores_of_this_run_are_its_own_metrics(ws, first_run):
    """What the baseline comparison scores per case for our model (cells: F1 and DSC) is what this run's
    evaluation wrote."""
    from swin_umamba.comparison.steps import per_case_values

    values, _ = per_case_values("cells", ws.raw / DATASET / "labelsTs", ws.out / "predictions")
    assert set(values) == {"F1", "DSC"}
    with open(ws.out / "metrics.csv", newline="") as stream:
        ours = {r["Name"]: float(r["F1"]) for r in csv.DictReader(stream)}
    assert values["F1"] == pytest.approx(ours) and len(ours) == 2
