"""nnU-Net's two baselines trained under our run's protocol, all three models predicted and scored per case,
and the paired report: what `swin-umamba compare` and `swin-umamba reproduce --baselines` share.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPORT_NAMES = {"markdown": "baselines.md", "summary": "baselines.csv", "per_case": "baselines_per_case.csv",
                "plot": "baselines_paired.png"}


@dataclass
class TestSet:
    images: Path
    labels: Path
    file_ending: str
    cases: list[str]
    task: str
    mode: str
    rules: object = None  # the nnunet task's DatasetRules (labels, file ending, tolerance)


BASELINE_STEPS = 7  # compare_with_baselines: ResEnc M plans, two trainings, the check, three predictions


def compare_with_baselines(steps, counter, ours, ours_checkpoint: Path, protocol, test: TestSet, out: Path,
                           baseline_trainer: str, resamples: int, seed: int,
                           ours_predictions: Path | None = None) -> str:
    """Plan the ResEnc M preset, train the two baselines under `protocol`, predict and score all three
    models, write the report.

    `ours` is the trained Swin-UMamba model (its checkpoint `ours_checkpoint`; its test predictions are
    made unless `ours_predictions` holds them already); `counter` (a StepCounter) numbers the
    BASELINE_STEPS steps. Returns the Markdown."""
    from swin_umamba.comparison.protocol import RESENC_PLANNER, RESENC_PLANS, baseline_models
    from swin_umamba.comparison.steps import per_case_values
    from swin_umamba.evaluation.paired import compare_paired
    from swin_umamba.evaluation.paired_report import write_report
    from swin_umamba.workflow.predictions import check_before_predicting

    baselines = baseline_models(baseline_trainer)
    counter.begin(f"plan the residual-encoder preset: {RESENC_PLANNER} -> {RESENC_PLANS}, {protocol.configuration}")
    if not steps.plan_resenc(protocol.configuration):
        counter.note(f"skipped: {RESENC_PLANS} and its preprocessed {protocol.configuration} data exist")
    checkpoints = {ours.label: ours_checkpoint}
    for model in baselines:
        counter.begin(f"train {model.label} ({model.trainer}, {model.plans}): {protocol.describe()}")
        checkpoints[model.label], trained = steps.train(model, protocol.configuration, protocol.fold,
                                                        protocol.stop_after, protocol.baseline_environment(),
                                                        f"train_{model.slug}")
        if not trained:
            counter.note(f"skipped: {checkpoints[model.label]} exists")

    models = [ours, *baselines]
    counter.begin(f"check the test images ({test.images}) and the checkpoints")
    check_before_predicting(test.images, {model.folder(steps.results, steps.dataset_name, protocol.configuration):
                                          checkpoints[model.label].name for model in models}, [protocol.fold])
    counter.note(f"{len(test.cases)} case(s), {len(models)} model(s): fine")

    values = {}
    for model in models:
        counter.begin(f"predict and score {model.label}: {len(test.cases)} case(s), {checkpoints[model.label].name}, "
                      "no TTA")
        predictions = out / "predictions" / model.slug
        if model is ours and ours_predictions is not None:
            predictions = ours_predictions
            counter.note(f"predictions of this run: {predictions}")
        elif not steps.predict(model, protocol, checkpoints[model.label], test.images, predictions, test.file_ending,
                               test.cases, f"predict_{model.slug}"):
            counter.note(f"prediction skipped: {predictions} holds this checkpoint's predictions")
        values[model.label], _ = per_case_values(test.task, test.labels, predictions, test.mode, rules=test.rules)

    metrics = list(values[ours.label])
    comparisons = [compare_paired(metric, ours.label, values[ours.label][metric], model.label,
                                  values[model.label][metric], resamples, seed)
                   for metric in metrics for model in baselines]
    protocol_lines = [f"Protocol: {protocol.describe()}.",
                      *(f"- {m.label}: `{m.trainer}`, plans `{m.plans}`, {checkpoints[m.label]}" for m in models),
                      f"Scored with `swin_umamba.evaluation`, task `{test.task}`, mode `{test.mode}`, against "
                      f"{test.labels}."]
    return write_report(out, REPORT_NAMES, f"Dataset {protocol.dataset_id}: {ours.label} against nnU-Net's "
                        "baselines, paired per case", ours.label, [m.label for m in models], metrics, values,
                        comparisons, protocol_lines)
