"""The CPU scan kernel's time inside a network's step, next to the same kernel calls alone.

    python -m benchmarks.scan_in_network [--network SwinUMambaD] [--size 256] [--mode fwdbwd]
                                         [--threads 2] [--repeats 5]

Asks whether the scans cost more inside the network than on their own (caches cold after the
other layers, data-dependent slow paths such as denormal numbers, the allocator's page faults):
every call of the compiled kernel during ``repeats`` steps of the network (after one untimed
step) is timed; the arguments of the first timed step's calls are kept, and afterwards the same
calls are timed alone, in the same order, ``repeats`` times. Per scan shape and direction it
prints the calls per step, the median milliseconds per step inside the network and alone, and
nanoseconds per state update and thread; then the step's time, the kernel's share of it and the
step's minor page faults inside the kernel and elsewhere.
"""
from __future__ import annotations

import argparse
import contextlib
import resource
import time
import warnings
from collections import defaultdict

import torch

from benchmarks import bench_network, timing
from swin_umamba.network_registry import SWIN_UMAMBA_D

DIRECTIONS = {"forward": "fwd", "backward": "bwd"}


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def call_key(op: str, args) -> tuple:
    """(direction, batch, KD, L, N) of one kernel call; args[0] is u, args[2] is A."""
    batch, kd, length = args[0].shape
    return DIRECTIONS[op], batch, kd, length, args[2].shape[1]


class KernelRecorder:
    """Stands in for the loaded kernel (``swin_umamba.ops.scan_cpu._kernel``) while
    :func:`recording` is active: passes every call through, adds its wall time to
    ``seconds[call_key]`` and its minor page faults to ``faults``, and, while ``capture`` is set,
    keeps a copy of its arguments in ``captured``."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.seconds: dict = defaultdict(float)
        self.calls: dict = defaultdict(int)
        self.faults = 0
        self.capture = False
        self.captured: list = []

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()
        self.faults = 0

    def _call(self, op: str, args):
        if self.capture:
            self.captured.append((op, [a.clone() if torch.is_tensor(a) else a for a in args]))
        faults, start = minor_faults(), time.perf_counter()
        result = getattr(self.kernel, op)(*args)
        key = call_key(op, args)
        self.seconds[key] += time.perf_counter() - start
        self.calls[key] += 1
        self.faults += minor_faults() - faults
        return result

    def forward(self, *args):
        return self._call("forward", args)

    def backward(self, *args):
        return self._call("backward", args)


@contextlib.contextmanager
def recording():
    """Within the block, the CPU scan's calls of its compiled kernel go through a KernelRecorder."""
    from swin_umamba.ops import scan_cpu

    kernel = scan_cpu.load_kernel()
    if kernel is None:
        raise RuntimeError(f"the CPU scan kernel could not be built: {scan_cpu.kernel_error()}")
    recorder = KernelRecorder(kernel)
    scan_cpu._kernel = recorder
    try:
        yield recorder
    finally:
        scan_cpu._kernel = kernel


def time_alone(kernel, captured, repeats: int) -> list[dict]:
    """Seconds per call key of the captured calls run back to back, one dict per repeat."""
    rounds = []
    for _ in range(repeats):
        seconds = defaultdict(float)
        for op, args in captured:
            start = time.perf_counter()
            getattr(kernel, op)(*args)
            seconds[call_key(op, args)] += time.perf_counter() - start
        rounds.append(seconds)
    return rounds


def measure(network: str, size: int, mode: str, threads: int, repeats: int) -> dict:
    """Kernel times per call key inside ``repeats`` steps of the network and alone."""
    bench_network._scan_backend()  # build/load outside the timed steps
    _, step = bench_network._prepare(network, size, mode, 1, threads, 4, 0)
    inside, steps, faults = [], [], []
    with recording() as recorder:
        step()  # untimed: first-call allocations
        for i in range(repeats):
            recorder.reset()
            recorder.capture = i == 0
            start, faults0 = time.perf_counter(), minor_faults()
            step()
            steps.append(time.perf_counter() - start)
            faults.append((recorder.faults, minor_faults() - faults0 - recorder.faults))
            recorder.capture = False
            inside.append(dict(recorder.seconds))
        calls = dict(recorder.calls)
        alone = time_alone(recorder.kernel, recorder.captured, repeats)
    return {"calls": calls, "inside": inside, "alone": alone, "step_s": steps, "faults": faults,
            "threads": threads}


def rows_of(result: dict) -> list[dict]:
    threads, rows = result["threads"], []
    for key in sorted(result["calls"], key=lambda k: (k[0] != "fwd", k[3] * -1)):
        direction, batch, kd, length, n = key
        calls = result["calls"][key]
        inside = timing.median([r.get(key, 0.0) for r in result["inside"]])
        alone = timing.median([r.get(key, 0.0) for r in result["alone"]])
        updates = calls * batch * kd * length * n / threads
        rows.append({"shape": f"{batch}x{kd}x{length}", "direction": direction, "calls": calls,
                     "inside": inside * 1e3, "alone": alone * 1e3, "ratio": timing.ratio(inside, alone),
                     "ns_inside": inside / updates * 1e9, "ns_alone": alone / updates * 1e9})
    return rows


def report(result: dict, out=print) -> None:
    text = timing.number
    rows = rows_of(result)
    timing.print_table([("batch x KD x L", ">15", text("shape", "")), ("dir", ">4", text("direction", "")),
                        ("calls", ">6", text("calls", "d")), ("in net ms", ">10", text("inside", ".1f")),
                        ("alone ms", ">9", text("alone", ".1f")), ("in/alone", ">9", text("ratio", ".3f")),
                        ("ns/upd in", ">10", text("ns_inside", ".3f")),
                        ("ns/upd alone", ">13", text("ns_alone", ".3f"))], rows, out=out)
    step = timing.median(result["step_s"])
    kernel = timing.median([sum(r.values()) for r in result["inside"]])
    alone = timing.median([sum(r.values()) for r in result["alone"]])
    out(f"step {step:.3f} s (median of {len(result['step_s'])}); kernel inside it {kernel * 1e3:.0f} ms "
        f"({kernel / step:.0%} of the step), the same calls alone {alone * 1e3:.0f} ms")
    out("minor page faults per step (inside the kernel / elsewhere): "
        + ", ".join(f"{k}/{o}" for k, o in result["faults"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", default=SWIN_UMAMBA_D.class_name, choices=bench_network.NETWORKS)
    parser.add_argument("--size", type=int, default=256, help="square patch size (default 256)")
    parser.add_argument("--mode", default="fwdbwd", choices=("fwd", "fwdbwd"),
                        help="inference forward or training step (default fwdbwd)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps, and timed repeats alone (default 5)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: need at least 1")
    warnings.simplefilter("ignore")
    print(timing.machine_line(args.threads))
    print(f"{args.network} {args.size}x{args.size} {args.mode}, batch 1; kernel: swin_umamba.ops.scan_cpu; "
          "ns/upd = ns per state update and thread")
    report(measure(args.network, args.size, args.mode, args.threads, args.repeats))


if __name__ == "__main__":
    main()
