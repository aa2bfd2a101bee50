"""`swin-umamba compare` end to end on the demo dataset, on CPU, with nnU-Net's real commands.

One run trains ours and both baselines at a tiny budget (test trainers: a 4-epoch schedule of one
iteration per epoch, stopped after 2 epochs), predicts the 4 test slices with each and writes the
report; the tests check the protocol each model was trained under and the report's contents.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from swin_umamba.comparison.baselines import REPORT_NAMES
from swin_umamba.demo.layout import DATASET_NAME
from swin_umamba.comparison.steps import per_case_values
from swin_umamba.evaluation.nnunet_dataset import rules_from_dataset_json
from swin_umamba.network_registry import SWIN_UMAMBA_D
from tests.nnunet_workspace import TEST_TRAINERS

OURS = "nnUNetTrainerSwinUMambaDScratch_compare"  # tests/nnunet_trainers/compare_trainers.py
BASELINE = "nnUNetTrainerProtocol_compare"
OURS_LABEL = SWIN_UMAMBA_D.paper_name  # the network OURS trains
MODELS = {OURS_LABEL: (OURS, "nnUNetPlans"), "nnU-Net": (BASELINE, "nnUNetPlans"),
          "nnU-Net ResEnc M": (BASELINE, "nnUNetResEncUNetMPlans")}
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(demo_workspace, tmp_path_factory):
    """The compare command, run by this process (its nnU-Net programs are processes of their own), in a
    copy of the session's planned demo workspace (its default plans are reused; the ResEnc M plans are
    made here), with only the test trainers on nnUNet_extTrainer: the command adds the package's own
    folder."""
    from swin_umamba.cli import main

    root = tmp_path_factory.mktemp("compare")
    ws = demo_workspace.copy_to(root)
    ws.env["nnUNet_extTrainer"] = str(TEST_TRAINERS)
    ws.out = root / "comparison"
    argv = ["compare", "-d", "990", "-tr", OURS, "-f", "0", "--stop-after", "2", "--baseline-trainer", BASELINE,
            "--device", "cpu", "--num-processes", "0", "--resamples", "2000", "--out", str(ws.out)]
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        ws.activate(patch, programs=True)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(argv)
    ws.stdout = stdout.getvalue()
    assert code == 0, f"compare failed:\n{ws.stdout[-5000:]}\n{stderr.getvalue()[-5000:]}"
    return ws


def _fold(ws, model: str) -> Path:
    trainer, plans = MODELS[model]
    return ws.results / DATASET_NAME / f"{trainer}__{plans}__2d" / "fold_0"


def test_every_model_ran_the_same_protocol(run):
    for model in MODELS:
        debug = json.loads((_fold(run, model) / "debug.json").read_text())
        assert (debug["num_epochs"], debug["schedule_epochs"]) == ("2", "4"), model
        assert (debug["num_iterations_per_epoch"], debug["num_val_iterations_per_epoch"]) == ("1", "1"), model
        final = torch.load(_fold(run, model) / "checkpoint_final.pth", map_location="cpu", weights_only=False)
        assert final["current_epoch"] == 2, model
    resenc = json.loads((_fold(run, "nnU-Net ResEnc M").parent / "plans.json").read_text())
    assert "ResidualEncoderUNet" in resenc["configurations"]["2d"]["architecture"]["network_class_name"]
    for model in MODELS:
        slug = "".join(c if c.isalnum() else "_" for c in model).strip("_")
        command = (run.out / "logs" / f"predict_{slug}.log").read_text().splitlines()[0]
        assert "--disable_tta" in command and "-f 0" in command and f"-tr {MODELS[model][0]}" in command
        assert f"-p {MODELS[model][1]}" in command and "-chk checkpoint_final.pth" in command
    assert "nnUNetv2_plan_experiment -d 990 -pl nnUNetPlannerResEncM" in \
        (run.out / "logs" / "plan_resenc.log").read_text().splitlines()[0]


def test_summary_table_has_a_row_per_model_and_metric(run):
    rows = list(csv.DictReader(open(run.out / REPORT_NAMES["summary"])))
    assert [(r["model"], r["metric"]) for r in rows] == [(m, k) for k in ("DSC", "NSD") for m in MODELS]
    for row in rows:
        assert row["cases"] == "4"
        if row["model"] == OURS_LABEL:
            assert row["mean_difference"] == "" and row["p_value"] == ""
        else:
            low, mean, high = (float(row[k]) for k in ("ci_low", "mean_difference", "ci_high"))
            assert low <= mean <= high and 0 <= float(row["p_value"]) <= 1
            assert "cannot reach 0.05" in row["note"] or "zero" in row["note"]  # 4 cases only
    markdown = (run.out / REPORT_NAMES["markdown"]).read_text()
    for model in MODELS:
        assert f"| {model} | DSC | 4 |" in markdown or f"| **{model}** (ours) | DSC | 4 |" in markdown
    assert "2000 resamples" in markdown and "stopped after 2 of 4 epochs" in markdown
    assert markdown.strip() in run.stdout


def test_per_case_values_are_the_evaluation_packages(run):
    rules = rules_from_dataset_json(run.raw / DATASET_NAME / "dataset.json")
    rows = list(csv.DictReader(open(run.out / REPORT_NAMES["per_case"])))
    assert len(rows) == 2 * 4
    for model in MODELS:
        slug = "".join(c if c.isalnum() else "_" for c in model).strip("_")
        values, _ = per_case_values("nnunet", run.raw / DATASET_NAME / "labelsTs",
                                    run.out / "predictions" / slug, "paper", rules)
        for row in rows:
            assert float(row[model]) == pytest.approx(values[row["metric"]][row["case"]], nan_ok=True)
    for row in rows:
        for baseline in ("nnU-Net", "nnU-Net ResEnc M"):
            assert float(row[f"{OURS_LABEL} - {baseline}"]) == pytest.approx(
                float(row[OURS_LABEL]) - float(row[baseline]), nan_ok=True)


def test_plot_is_a_png(run):
    path = run.out / REPORT_NAMES["plot"]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.size[0] > 600 and image.size[1] > 600  # 2 metrics x 2 baselines panels
