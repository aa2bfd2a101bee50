"""Timing, memory and table helpers shared by the benchmarks (bench_network, bench_predict, run_all, gpu).

(bench_scan.py's ``measure`` is specific to the scan's signature; run_all.py uses it for the
scan rows and these helpers for everything else.)

Memory method: the peak resident set size (RSS) of the process, read from Linux's
/proc/self/status (VmHWM) after resetting the high-water mark to the current RSS through
/proc/self/clear_refs (after gc and glibc's malloc_trim, so that freed memory the allocator
kept does not hide the call's needs), so the figure covers the measured call only; where that reset is not
available the fallback is resource.getrusage(RUSAGE_SELF).ru_maxrss (process-lifetime peak).
"""
from __future__ import annotations

import os
import resource
import statistics
import time

PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20 if hasattr(os, "sysconf") else 4096 / 2**20


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def time_calls(fn, warmup: int, repeats: int) -> dict:
    """Call ``fn()`` ``warmup`` times untimed, then ``repeats`` times timed.

    Returns the median wall time, the median process CPU time (all threads) and every wall time."""
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return {"wall_s": median(walls), "cpu_s": median(cpus), "walls_s": walls}


def current_rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE_MB
    except OSError:
        return None


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Set the kernel's RSS high-water mark (VmHWM) to the current RSS. False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    hwm, rss = _status_mb("VmHWM"), _status_mb("VmRSS")
    return hwm is not None and rss is not None and hwm <= rss + 1.0


def lifetime_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def release_free_memory() -> None:
    """Hand memory the allocator keeps but does not use back to the OS (glibc malloc_trim), so a
    later call's peak RSS growth is not hidden by reuse of earlier, freed allocations."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakRSS:
    """Peak RSS growth, in MB, of the code run inside ``with PeakRSS() as m:`` (``m.mb`` after)."""

    def __enter__(self):
        import gc

        gc.collect()
        release_free_memory()
        self.reset = reset_peak_rss()
        self.method = ("VmHWM after clear_refs reset (Linux /proc)" if self.reset
                       else "resource.getrusage ru_maxrss (lifetime peak)")
        self.base = current_rss_mb() if self.reset else lifetime_peak_rss_mb()
        if self.base is None:
            self.base, self.reset = lifetime_peak_rss_mb(), False
            self.method = "resource.getrusage ru_maxrss (lifetime peak)"
        self.mb = None
        return self

    def __exit__(self, *exc):
        peak = _status_mb("VmHWM") if self.reset else None
        if peak is None:
            peak = lifetime_peak_rss_mb()
        self.mb = max(0.0, peak - self.base)
        return False


def machine_line(threads: int) -> str:
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"torch {torch.__version__}, torch threads {threads}, os.cpu_count {os.cpu_count()}, "
            f"load average (1 min) {load:.2f}")


def ratio(num, den):
    if num is None or den is None or den <= 0:
        return None
    return num / den


def fmt(value, spec: str, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}{spec}}"


def print_table(columns, rows, out=print) -> None:
    """A header line, a rule and one line per row. ``columns``: (title, align, cell) triples,
    ``align`` a format alignment and width such as ">9" or "<16", ``cell(row)`` the value
    shown (None prints as "-")."""
    head = " ".join(f"{title:{align}}" for title, align, _ in columns)
    out(head)
    out("-" * len(head))
    for row in rows:
        cells = ("-" if (v := cell(row)) is None else str(v) for _, _, cell in columns)
        out(" ".join(f"{text:{align}}" for text, (_, align, _) in zip(cells, columns)))


def markdown_table(columns, rows) -> str:
    """The rows of ``print_table``'s ``columns`` as a Markdown table (the alignment's ``<`` or
    ``>`` becomes the column's alignment; widths are ignored)."""
    def cell(row, fn):
        value = fn(row)
        return "-" if value is None else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(title for title, _, _ in columns) + " |",
             "|" + "|".join("---:" if align.startswith(">") else "---" for _, align, _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(row, fn) for _, _, fn in columns) + " |" for row in rows]
    return "\n".join(lines)


def number(key: str, spec: str):
    """A ``print_table`` cell: row[key] formatted with ``spec``, None when missing."""
    return lambda row: None if row.get(key) is None else format(row[key], spec)
