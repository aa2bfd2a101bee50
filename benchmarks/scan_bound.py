"""Lower bound of the selective scans' time on this machine, next to what the targets allow.

    python -m benchmarks.scan_bound [--threads 2] [--size 256]

The bound counts only the multiplies and fused multiply-adds (FMAs) that the scan cannot do
without, at the machine's measured peak rate of 8-lane FMA instructions, as if loads, stores,
the exponential's range reduction, the sums over the states, threads and memory cost nothing.
Per 8 state updates (one 8-lane register of float32), with the exponential as the kernel's
degree-5 polynomial (float32 accuracy; a table-driven exponential, a lookup of 2^(j/8) and a
degree-3 polynomial, would need one multiply-add fewer):

* forward, 9: dt*A (log2(e) folded into A), 5 for the polynomial, dt*u*B, the state's
  multiply-add, C*h;
* backward, 16: the forward's states recomputed from checkpoints (dt*A, 5, dt*u*B, state) and
  the reverse pass (dL/dh, dC, dB, dL/dh*B, the carried gradient, q = carry*h, A*q, dA);
* step sizes, per 8 (channel, step) pairs, once in the forward and once in the backward, 19:
  softplus(delta + bias) = max(x, 0) + log1p(exp(-|x|)) (exponential 6, log1p as 2 atanh(s)
  12) and dt*u.

It prints, per network and mode, that bound, the floor (the network with the scans replaced by
a no-cost stand-in, measured here), the scan time the target allows ((target - 1) x floor) and
whether the bound alone rules the target out. The peak rate comes from a small C program
(10 independent chains of 256-bit FMAs per thread, all threads at once), compiled here with
the system's C compiler; x86 with AVX2 and FMA only.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import warnings

import torch

from benchmarks import bench_network, timing

FMA_PER_8_UPDATES = {"fwd": 9, "fwdbwd": 9 + 16}
FMA_PER_8_STEPS = {"fwd": 19, "fwdbwd": 2 * 19}
TARGETS = {"fwd": bench_network.TARGET_FWD, "fwdbwd": bench_network.TARGET_FWDBWD}

_PEAK_SOURCE = r"""
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#define STEP(a) a = _mm256_fmadd_ps(a, m, c);
int main(int argc, char** argv) {
  const int threads = atoi(argv[1]);
  const long iters = atol(argv[2]);
  double start = omp_get_wtime();
  float sink = 0.0f;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
  {
    __m256 a0 = _mm256_set1_ps(1.0f), a1 = _mm256_set1_ps(1.1f), a2 = _mm256_set1_ps(1.2f),
           a3 = _mm256_set1_ps(1.3f), a4 = _mm256_set1_ps(1.4f), a5 = _mm256_set1_ps(1.5f),
           a6 = _mm256_set1_ps(1.6f), a7 = _mm256_set1_ps(1.7f), a8 = _mm256_set1_ps(1.8f),
           a9 = _mm256_set1_ps(1.9f);
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (long k = 0; k < iters; ++k) {
      STEP(a0) STEP(a1) STEP(a2) STEP(a3) STEP(a4) STEP(a5) STEP(a6) STEP(a7) STEP(a8) STEP(a9)
      __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5),
                       "+x"(a6), "+x"(a7), "+x"(a8), "+x"(a9));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(a8, a9));
    float lanes[8];
    _mm256_storeu_ps(lanes, s);
    sink += lanes[0];
  }
  double seconds = omp_get_wtime() - start;
  printf("%.6f %g\n", 10.0 * iters / seconds * 1e-9, sink);
  return 0;
}
"""


def peak_fma_rate(threads: int, repeats: int = 3) -> float:
    """Peak 8-lane FMA instructions per nanosecond and thread, with ``threads`` threads busy."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler found (set CC)")
    with tempfile.TemporaryDirectory() as tmp:
        source, binary = os.path.join(tmp, "peak.c"), os.path.join(tmp, "peak")
        with open(source, "w") as fh:
            fh.write(_PEAK_SOURCE)
        build = subprocess.run([compiler, "-O2", "-mavx2", "-mfma", "-fopenmp", source, "-o", binary],
                               capture_output=True, text=True)
        if build.returncode != 0:
            raise RuntimeError(f"could not build the FMA probe (x86 with AVX2 and FMA only):\n{build.stderr[-2000:]}")
        rates = []
        for _ in range(repeats):
            run = subprocess.run([binary, str(threads), "50000000"], capture_output=True, text=True, check=True)
            rates.append(float(run.stdout.split()[0]))
    return max(rates)


def scan_workload(network: str, size: int) -> tuple[int, int]:
    """(state updates, (channel, step) pairs) of one forward pass at batch 1: sums of KD*L*N
    and KD*L over the network's selective scans, recorded from a real forward."""
    calls = bench_network.scan_calls(network, size)
    updates = sum(batch * kd * length * n for batch, kd, length, _, n in calls)
    steps = sum(batch * kd * length for batch, kd, length, _, _ in calls)
    return updates, steps


def bound_ms(mode: str, updates: int, steps: int, rate_per_ns: float, threads: int) -> float:
    vector_ops = updates / 8 * FMA_PER_8_UPDATES[mode] + steps / 8 * FMA_PER_8_STEPS[mode]
    return vector_ops / (rate_per_ns * threads) * 1e-6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="threads of the FMA probe and the floor")
    parser.add_argument("--size", type=int, default=256, help="square patch size (default 256)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of each floor measurement")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    rate = peak_fma_rate(args.threads)
    print(timing.machine_line(args.threads))
    print(f"peak: {rate:.2f} 8-lane FMA instructions per ns and thread ({args.threads} threads busy), "
          f"{rate * 8 * args.threads:.0f} float32 multiply-adds per ns in all")
    rows = []
    for network in bench_network.NETWORKS:
        updates, steps = scan_workload(network, args.size)
        for mode in ("fwd", "fwdbwd"):
            floor = bench_network.measure(network, "floor", args.size, mode, threads=args.threads,
                                          repeats=args.repeats)["wall_s"]
            bound = bound_ms(mode, updates, steps, rate, args.threads)
            budget = (TARGETS[mode] - 1.0) * floor * 1e3
            rows.append({"network": network, "patch": f"{args.size}x{args.size}", "mode": mode,
                         "updates": updates / 1e6, "bound": bound, "floor": floor, "allowed": budget,
                         "target": f"<= {TARGETS[mode]:.2f}x",
                         "verdict": "ruled out" if bound > budget else "not ruled out"})
    text = timing.number
    timing.print_table([("network", ">12", text("network", "")), ("patch", ">8", text("patch", "")),
                        ("mode", ">7", text("mode", "")), ("updates M", ">10", text("updates", ".0f")),
                        ("bound ms", ">9", text("bound", ".1f")), ("floor s", ">8", text("floor", ".3f")),
                        ("allowed ms", ">11", text("allowed", ".1f")), ("target", ">9", text("target", "")),
                        ("by the bound alone", "<19", text("verdict", ""))], rows)


if __name__ == "__main__":
    main()
