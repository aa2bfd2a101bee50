"""Tables and the plot of a paired comparison (see `paired`): Markdown, CSV and a PNG, written atomically.

    summary_rows(...)        one row per model and metric: mean, and for a baseline ours - baseline
    write_summary_csv(...)   those rows as CSV
    write_per_case_csv(...)  one row per case and metric: every model's value and ours - each baseline
    markdown_report(...)     both tables and the notes as Markdown
    write_paired_plot(...)   per-case values of ours and each baseline joined by a line, one panel each
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Mapping, Sequence

from swin_umamba.fileio import atomic_target, write_text_atomic

from .paired import CONFIDENCE, PairedComparison

SUMMARY_COLUMNS = ("model", "metric", "cases", "mean", "mean_difference", "ci_low", "ci_high", "p_value", "note")


def _number(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}"


def _p(value: float) -> str:
    if math.isnan(value):
        return ""
    return f"{value:.4f}" if value >= 1e-4 else f"{value:.1e}"


def summary_rows(ours: str, models: Sequence[str], metrics: Sequence[str],
                 means: Mapping[str, Mapping[str, float]], cases: Mapping[str, int],
                 comparisons: Sequence[PairedComparison]) -> list[dict]:
    """Rows of the summary table: for each metric, every model (ours first), its mean over the test
    cases and, for a baseline, the paired statistics of ours - that baseline."""
    by_key = {(c.metric, c.baseline): c for c in comparisons}
    rows = []
    for metric in metrics:
        for model in models:
            row = {"model": model, "metric": metric, "cases": cases[model], "mean": means[model][metric],
                   "mean_difference": None, "ci_low": None, "ci_high": None, "p_value": None, "note": ""}
            found = by_key.get((metric, model))
            if model != ours and found is not None:
                row.update(mean_difference=found.mean_difference, ci_low=found.ci_low, ci_high=found.ci_high,
                           p_value=found.p_value, note=found.note)
            rows.append(row)
    return rows


def _csv_text(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_summary_csv(path: Path, rows: Sequence[dict]) -> None:
    def cell(key: str, value):
        if key == "p_value":
            return "" if value is None or math.isnan(value) else repr(float(value))
        if isinstance(value, float):
            return "" if math.isnan(value) else repr(value)
        return "" if value is None else value

    write_text_atomic(path, _csv_text(SUMMARY_COLUMNS, [[cell(k, r[k]) for k in SUMMARY_COLUMNS] for r in rows]))


def per_case_columns(ours: str, models: Sequence[str]) -> list[str]:
    return ["case", "metric", *models, *(f"{ours} - {m}" for m in models if m != ours)]


def write_per_case_csv(path: Path, ours: str, models: Sequence[str], metrics: Sequence[str],
                       values: Mapping[str, Mapping[str, Mapping[str, float]]]) -> None:
    """values[model][metric][case]: full precision, NaN written as 'nan' (a metric undefined there)."""
    cases = sorted(values[ours][metrics[0]]) if metrics else []
    rows = []
    for metric in metrics:
        for case in cases:
            own = values[ours][metric][case]
            row = [case, metric, *(repr(float(values[m][metric][case])) for m in models)]
            row += [repr(float(own - values[m][metric][case])) for m in models if m != ours]
            rows.append(row)
    write_text_atomic(path, _csv_text(per_case_columns(ours, models), rows))


def _interval(row: dict) -> str:
    if row["mean_difference"] is None:
        return ""
    return f"{row['mean_difference']:+.4f} [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]"


def markdown_report(title: str, ours: str, rows: Sequence[dict], comparisons: Sequence[PairedComparison],
                    protocol_lines: Sequence[str] = ()) -> str:
    """The summary table, the per-case differences and the notes, as one Markdown document."""
    level = int(round(CONFIDENCE * 100))
    lines = [f"# {title}", ""]
    lines += list(protocol_lines) + ([""] if protocol_lines else [])
    lines += [f"| model | metric | cases | mean | ours - model, mean [{level} % bootstrap CI] | Wilcoxon p |",
              "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        name = f"**{row['model']}** (ours)" if row["model"] == ours else row["model"]
        p = "" if row["p_value"] is None else _p(row["p_value"])
        lines.append(f"| {name} | {row['metric']} | {row['cases']} | {_number(row['mean'])} | {_interval(row)} | {p} |")
    notes = [f"- {c.metric}, ours - {c.baseline}: {c.note}" for c in comparisons if c.note]
    if comparisons:
        first = comparisons[0]
        lines += ["", f"Differences are per case, ours minus the baseline, on the cases both models scored. "
                      f"Interval: percentile bootstrap of the mean over {first.resamples} resamples (seed "
                      f"{first.seed}). p: two-sided Wilcoxon signed-rank test (scipy.stats.wilcoxon)."]
    if notes:
        lines += ["", "Notes:", *notes]
    for metric in dict.fromkeys(c.metric for c in comparisons):
        chosen = [c for c in comparisons if c.metric == metric]
        lines += ["", f"## Per case: {metric}", "",
                  "| case | " + f"{ours} | " + " | ".join(f"{c.baseline} | ours - {c.baseline}" for c in chosen) + " |",
                  "| --- | --- | " + " | ".join("--- | ---" for _ in chosen) + " |"]
        for i, case in enumerate(chosen[0].cases):
            cells = [_number(chosen[0].ours_values[i])]
            for c in chosen:
                j = c.cases.index(case) if case in c.cases else None
                cells += ["", ""] if j is None else [_number(c.baseline_values[j]), f"{c.differences[j]:+.4f}"]
            lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_paired_plot(path: Path, comparisons: Sequence[PairedComparison]) -> None:
    """One panel per (metric, baseline): each case's baseline value (left) and ours (right), joined by a
    line; the means as black bars. Written atomically (Agg backend, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(c.metric for c in comparisons))
    baselines = list(dict.fromkeys(c.baseline for c in comparisons))
    if not comparisons:
        raise ValueError("nothing to plot: no comparison")
    fig, axes = plt.subplots(len(metrics), len(baselines), figsize=(3.6 * len(baselines), 3.4 * len(metrics)),
                             squeeze=False)
    for r, metric in enumerate(metrics):
        for k, baseline in enumerate(baselines):
            ax = axes[r][k]
            found = [c for c in comparisons if c.metric == metric and c.baseline == baseline]
            if not found:
                ax.set_axis_off()
                continue
            c = found[0]
            for a, b in zip(c.ours_values, c.baseline_values):
                colour = "tab:green" if a > b else ("tab:red" if a < b else "tab:grey")
                ax.plot([0, 1], [b, a], "-o", color=colour, alpha=0.7, markersize=4, linewidth=1)
            for x, mean in ((0, c.mean_baseline), (1, c.mean_ours)):
                if not math.isnan(mean):
                    ax.hlines(mean, x - 0.15, x + 0.15, colors="black", linewidth=2.5)
            ax.set_xticks([0, 1], [baseline, c.ours], fontsize=8)
            ax.set_xlim(-0.4, 1.4)
            ax.set_ylabel(metric)
            p = "n/a" if math.isnan(c.p_value) else _p(c.p_value)
            ax.set_title(f"{len(c.cases)} cases: {c.mean_difference:+.3f} "
                         f"[{c.ci_low:+.3f}, {c.ci_high:+.3f}], p {p}", fontsize=8)
            ax.grid(axis="y", alpha=0.3)
    fig.suptitle("per case, paired (green: ours higher, red: lower; bars: means)", fontsize=9)
    fig.tight_layout()
    try:
        with atomic_target(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)


def write_report(out: Path, names: Mapping[str, str], title: str, ours: str, models: Sequence[str],
                 metrics: Sequence[str], values: Mapping[str, Mapping[str, Mapping[str, float]]],
                 comparisons: Sequence[PairedComparison], protocol_lines: Sequence[str] = ()) -> str:
    """The four outputs in `out` under names["markdown"], ["summary"], ["per_case"] and ["plot"];
    values[model][metric][case]. Returns the Markdown."""
    from .modes import nanmean

    means = {m: {k: nanmean(values[m][k].values()) for k in metrics} for m in models}
    cases = {m: len(values[m][metrics[0]]) if metrics else 0 for m in models}
    rows = summary_rows(ours, models, metrics, means, cases, comparisons)
    markdown = markdown_report(title, ours, rows, comparisons, protocol_lines)
    write_summary_csv(Path(out) / names["summary"], rows)
    write_per_case_csv(Path(out) / names["per_case"], ours, models, metrics, values)
    write_paired_plot(Path(out) / names["plot"], comparisons)
    write_text_atomic(Path(out) / names["markdown"], markdown)
    return markdown
