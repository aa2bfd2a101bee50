"""Selective-scan benchmark: the reference scan (the oracle) vs pure-PyTorch path vs compiled CPU kernel.

    python -m benchmarks.bench_scan --threads 2 [--repeats 3] [--skip-oracle-backward]

Shapes: the four SS2D calls of a 256x256 input (batch 1, G=4, N=16). The whole network's
forward makes 15 of them (2 at 768x4096, 2 at 1536x1024, 9 at 3072x256, 2 at 6144x64); the
"15 calls" row weights each shape by that count.

Reported per backend and shape: best-of-repeats wall time of the forward and of
forward+backward, process CPU time of the same run (on a busy machine wall time is inflated
by other processes; CPU time/threads is then a fairer estimate), the speed-up against the
oracle, and the growth of the process's peak RSS during the first run (ru_maxrss; only
growth beyond the previous peak is visible, so it is a lower bound, 0 when nothing new was needed).
"""
from __future__ import annotations

import argparse
import os
import resource
import time
import warnings

import torch

from swin_umamba.ops import random_scan_inputs, scan_cpu, selective_scan_ref
from swin_umamba.ops.scan_torch import scan_torch

SHAPES = [(768, 4096, 2), (1536, 1024, 2), (3072, 256, 9), (6144, 64, 2)]  # KD, L, calls per forward


def make_inputs(kd, L, groups=4, N=16, seed=0):
    """Inputs of one SS2D-shaped scan call (batch 1), as a list."""
    return list(random_scan_inputs(1, kd, L, groups, N, seed=seed))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(fn, inputs, backward, repeats):
    """(best wall s, best cpu s, peak RSS growth MB of the first run)."""
    best_wall = best_cpu = float("inf")
    rss_growth = 0.0
    for i in range(repeats):
        xs = [x.clone().requires_grad_(backward) for x in inputs]
        before = peak_rss_mb()
        w0, c0 = time.perf_counter(), time.process_time()
        if backward:
            fn(*xs[:5], D=xs[5], delta_bias=xs[6], delta_softplus=True).sum().backward()
        else:
            with torch.no_grad():
                fn(*xs[:5], D=xs[5], delta_bias=xs[6], delta_softplus=True)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        if i == 0:
            rss_growth = peak_rss_mb() - before
        best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    return best_wall, best_cpu, rss_growth


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--oracle-repeats", type=int, default=1)
    ap.add_argument("--skip-oracle-backward", action="store_true",
                    help="the oracle's autograd over a Python loop is slow (minutes in total)")
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--shapes", default="all",
                    help="comma-separated KDxL subset, e.g. 768x4096 (the 15-call total needs all)")
    args = ap.parse_args(argv)
    shapes = SHAPES if args.shapes == "all" else [
        s for s in SHAPES if f"{s[0]}x{s[1]}" in args.shapes.split(",")]
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kernel = scan_cpu.load_kernel()
    load_s = time.perf_counter() - t0
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, os.cpu_count {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.2f}")
    if kernel is None:
        print(f"CPU kernel unavailable: {scan_cpu.kernel_error()}")
    else:
        print(f"CPU kernel loaded in {load_s:.1f} s (build or cache hit), name {scan_cpu.extension_name()}")

    backends = [("oracle", selective_scan_ref)]
    if not args.skip_torch:
        backends.append(("torch", scan_torch))
    if kernel is not None:
        backends.append(("cpu_kernel", scan_cpu.scan_cpu_kernel))

    results = {}  # (backend, shape, mode) -> (wall, cpu, rss)
    for kd, L, _ in shapes:
        inputs = make_inputs(kd, L)
        for name, fn in backends:
            for backward in (False, True):
                if name == "oracle" and backward and args.skip_oracle_backward:
                    continue
                reps = args.oracle_repeats if name == "oracle" else args.repeats
                if name != "oracle":  # warm-up
                    measure(fn, inputs, backward, 1)
                results[(name, (kd, L), backward)] = measure(fn, inputs, backward, reps)
                w, c, r = results[(name, (kd, L), backward)]
                print(f"  done {name:10s} {kd}x{L} {'fwd+bwd' if backward else 'fwd'}: {w:.4f} s", flush=True)

    header = (f"{'shape (KDxL)':>14} {'mode':>8} {'backend':>10} {'wall s':>9} {'cpu s':>9} "
              f"{'x oracle':>9} {'+peakRSS MB':>11}")
    print()
    print(header)
    print("-" * len(header))
    for kd, L, _ in shapes:
        for backward in (False, True):
            ref = results.get(("oracle", (kd, L), backward))
            for name, _ in backends:
                key = (name, (kd, L), backward)
                if key not in results:
                    continue
                w, c, r = results[key]
                ratio = f"{ref[0] / w:9.1f}" if ref else f"{'-':>9}"
                print(f"{f'{kd}x{L}':>14} {'fwd+bwd' if backward else 'fwd':>8} {name:>10} {w:9.4f} {c:9.4f} "
                      f"{ratio} {r:11.1f}")
    print()
    print("total of the 15 scan calls of one 256x256 forward (2x768x4096, 2x1536x1024, 9x3072x256, 2x6144x64):")
    for name, _ in backends:
        for backward in (False, True):
            keys = [(name, (kd, L), backward) for kd, L, _ in SHAPES]
            if not all(k in results for k in keys):
                continue
            wall = sum(results[k][0] * n for k, (_, _, n) in zip(keys, SHAPES))
            cpu = sum(results[k][1] * n for k, (_, _, n) in zip(keys, SHAPES))
            print(f"  {name:10s} {'fwd+bwd' if backward else 'fwd':8s} wall {wall:8.3f} s   cpu {cpu:8.3f} s")


if __name__ == "__main__":
    main()
