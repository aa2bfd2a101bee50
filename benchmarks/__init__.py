"""Timing and memory measurements of swin-umamba; not installed. Run each from the repository root
as a module, e.g. ``python -m benchmarks.bench_scan --help`` (benchmarks/README.md lists them)."""
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent  # where ``python -m benchmarks.X`` runs
