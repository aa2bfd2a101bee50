"""This run's numbers beside the published ones: `comparison.md` and `comparison.csv` in the output folder."""
from __future__ import annotations

import csv

from swin_umamba.evaluation.files import write_csv_atomic
from swin_umamba.fileio import write_text_atomic
from swin_umamba.reproduction.recipes import FOLD, PUBLISHED_NAME, SCHEDULE_EPOCHS
from swin_umamba.reproduction.run import ReproduceError, Run


def our_summary(run: Run) -> dict[str, float]:
    """The paper's summary values of the per-case metrics in metrics.csv."""
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
    """comparison.md and comparison.csv in the output folder; returns the table to print."""
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
    difference_line = f"Difference to the published {PUBLISHED_NAME[run.network]}: {differences}"
    text = (f"# Dataset {run.recipe.dataset_id} {run.recipe.title}: this run beside the paper\n\n"
            f"{table}\n\n"
            f"This run: {run.trainer}, {run.stop_after} epochs of the {SCHEDULE_EPOCHS}-epoch cosine schedule, "
            f"{checkpoint}, fold {FOLD}, --disable_tta, {cases} test case(s) scored with "
            f"`swin-umamba evaluate --mode paper` against {run.test_labels}.\n")
    if differences:
        text += f"{difference_line}.\n"
    write_text_atomic(run.out / "comparison.md", text)

    columns = ["dataset", "method", "source", *metrics]
    write_csv_atomic(run.out / "comparison.csv", columns,
                     [{"dataset": run.recipe.dataset_id, "method": row["method"], "source": row["source"],
                       **{m: _value(row.get(m)) for m in metrics}} for row in rows])
    return f"{table}\n{difference_line}" if differences else table
