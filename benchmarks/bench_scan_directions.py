"""Cost of extra 3D scan directions: one SS3D VSS block with 4, 6 or 8 directions, forward and forward+backward.

    python -m benchmarks.bench_scan_directions --threads 2 [--rounds 5]

Shapes: encoder stages of SwinUMambaD3D at a 3d_fullres-like patch (batch 2, patch 32 x 128 x 128,
depth strides 2, 1, 1, 1): stage 0 (16 x 32 x 32 tokens, 96 channels) and stage 1 (16 x 16 x 16,
192 channels). 4 directions are SS2D's orders with depth outermost (what inflation reproduces);
6 add (h, w, d) and its reverse, 8 also (w, h, d) and its reverse (swin_umamba/ops/cross_scan.py).
The variants are called alternately, round by round (the order rotating), so drifts of a shared
machine hit all of them alike; reported: the median wall time per call and its ratio to 4 directions.
The scan runs on whatever backend swin_umamba.ops picks here (the compiled CPU kernel on the CPU).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from swin_umamba.nets.vmamba import VSSBlock
from swin_umamba.nets.vmamba3d import SCAN_DIRECTION_CHOICES, ss3d

STAGES = {"stage 0": (2, 16, 32, 32, 96), "stage 1": (2, 16, 16, 16, 192)}  # B, Z, H, W, C


def run(shape, rounds: int, backward: bool) -> dict[int, float]:
    torch.manual_seed(0)
    blocks = {k: VSSBlock(shape[-1], mixer=ss3d(k)) for k in SCAN_DIRECTION_CHOICES}
    x = torch.randn(*shape)

    def call(k):
        if backward:
            x.requires_grad_(True)
            blocks[k](x).square().mean().backward()
        else:
            with torch.no_grad():
                blocks[k](x)

    for k in blocks:  # warm-up (kernel build, allocator)
        call(k)
    times = {k: [] for k in blocks}
    order = list(blocks)
    for r in range(rounds):
        for k in order[r % len(order):] + order[: r % len(order)]:
            t0 = time.perf_counter()
            call(k)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per variant (default: 5)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"{'shape':34s} {'pass':9s} " + " ".join(f"{k} dirs (x4)".rjust(16) for k in SCAN_DIRECTION_CHOICES))
    for name, shape in STAGES.items():
        for backward in (False, True):
            t = run(shape, args.rounds, backward)
            label = f"{name} {'x'.join(map(str, shape[1:4]))} C={shape[4]} B={shape[0]}"
            cells = [f"{t[k]:7.2f}s ({t[k] / t[4]:.2f})".rjust(16) for k in SCAN_DIRECTION_CHOICES]
            print(f"{label:34s} {'fwd+bwd' if backward else 'fwd':9s} " + " ".join(cells), flush=True)
    print(f"load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
