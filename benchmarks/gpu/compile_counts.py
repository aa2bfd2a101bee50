"""Section ``compile_counts``: graph breaks, recompiles and graphs of each compiled run of section
``training`` over its first iterations (Dynamo's counters, recorded there). Target: zero graph
breaks and zero recompiles."""
from __future__ import annotations

from benchmarks import timing
from benchmarks.gpu.training import COMPILE_COUNT_ITERS, NAME as TRAINING

NAME = "compile_counts"


def run(ctx, result) -> None:
    training = ctx.sections.get(TRAINING, {})
    if not training.get("rows"):
        raise RuntimeError(f"no compiled runs: the training section {training.get('status', 'did not run')}"
                           + (f" ({training['error']})" if training.get("error") else ""))
    result.update(iterations=COMPILE_COUNT_ITERS, target="0 graph breaks and 0 recompiles", rows=[])
    for r in training["rows"]:
        if r["mode"] != "compiled":
            continue
        row = {"network": r["network"], "patch": r["patch"], "scan": r["scan"]}
        if "compile_counts" in r:
            c = r["compile_counts"]
            row.update(c, verdict="PASS" if c["graph_breaks"] == 0 and c["recompiles"] == 0 else "FAIL")
        else:
            row["error"] = r.get("error", "no counts")
        result["rows"].append(row)
    measured = [r["verdict"] for r in result["rows"] if "verdict" in r]
    result["verdict"] = "n/a" if not measured else ("PASS" if all(v == "PASS" for v in measured) else "FAIL")


def tables(result: dict) -> list[tuple[str, list, list]]:
    n = timing.number
    if not result.get("rows"):
        return []
    cols = [("network", "<13", n("network", "")), ("patch", "<9", lambda r: "x".join(map(str, r["patch"]))),
            ("scan", "<6", n("scan", "")),
            ("graph breaks", ">12", n("graph_breaks", "d")), ("recompiles", ">10", n("recompiles", "d")),
            ("graphs", ">6", n("unique_graphs", "d")), ("verdict", ">7", n("verdict", "")),
            ("note", "<10", n("error", ""))]
    return [(f"torch.compile over {COMPILE_COUNT_ITERS} iterations (target: 0 breaks, 0 recompiles)",
             cols, result["rows"])]
