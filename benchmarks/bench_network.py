"""Whole-network benchmark: SwinUMamba / SwinUMambaD vs their scan-free floor vs nnU-Net's PlainConvUNet.

    python -m benchmarks.bench_network --threads 2 [--sizes 256,512] [--repeats 11] [--warmup 1]

Variants of each measurement (1 input channel, --classes output classes, batch 1 unless stated):

``scan``   the network as shipped (selective scan = swin_umamba.ops.selective_scan).
``floor``  the same network with ``swin_umamba.nets.vmamba.selective_scan`` replaced by
           :func:`floor_scan`, a near-zero-cost stand-in (y = u * D; backward gives every input
           a gradient, zeros for delta, A, B, C and delta_bias, so backward still reaches the
           producers of all of them): what everything except the scan costs.
``plain``  nnU-Net's PlainConvUNet as nnU-Net's default planner configures it for a 2D patch
           of the same size (:func:`plain_conv_unet_kwargs`).

Modes: ``fwd`` is inference (eval mode, torch.no_grad, deep supervision off, as nnU-Net's
predictor runs it); ``fwdbwd`` is a training step without the optimizer (train mode, deep
supervision on as in training, loss = sum of the means of all outputs, backward, gradients
reset to None before each call).

Every measurement runs in a fresh subprocess. Times of ``scan`` and ``floor`` come from one
process that alternates the two call by call (``warmup`` untimed rounds, then ``repeats``
timed ones, medians): the speed of a shared virtual machine drifts by tens of percent
between processes and minutes, and alternating makes such drifts hit both sides of the
ratio alike. Memory figures come from processes of their own (build the network and the
input, reset the RSS high-water mark, run one call: its peak RSS growth). PlainConvUNet is
timed in its own process, after its memory call.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
import warnings

import torch

from benchmarks import REPOSITORY_ROOT, timing
from swin_umamba.network_registry import NETWORKS as REGISTRY

NETWORKS = tuple(n.class_name for n in REGISTRY.values())  # the Swin-UMamba networks, by class name
IN_CHANNELS = 1


# the floor stand-in -------------------------------------------------------------------------------------
class _FloorScan(torch.autograd.Function):
    """y = u * D[:, None] in float32; backward gives u and D their true gradients and every other
    input a zero gradient of its own shape, so backward still runs through every producer of
    the scan's inputs (in_proj, conv2d, x_proj, dt_proj, A_logs, ...)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias):
        ctx.save_for_backward(u, D)
        ctx.shapes = [None if t is None else (t.shape, t.dtype) for t in (delta, A, B, C, delta_bias)]
        return u.float() * D.float()[:, None] if D is not None else u.float().clone()

    @staticmethod
    def backward(ctx, grad):
        u, D = ctx.saved_tensors
        du = grad * D.float()[:, None] if D is not None else grad.clone()
        dD = (grad * u.float()).sum((0, 2)) if D is not None and ctx.needs_input_grad[5] else None
        zeros = [None if s is None or not need else torch.zeros(s[0], dtype=s[1])
                 for s, need in zip(ctx.shapes, [ctx.needs_input_grad[i] for i in (1, 2, 3, 4, 6)])]
        d_delta, dA, dB, dC, d_bias = zeros
        return du, d_delta, dA, dB, dC, dD, d_bias


def floor_scan(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False, return_last_state=False):
    """Stand-in for selective_scan with its signature: float32 (batch, KD, L) = u * D.

    One pass over (batch, KD, L) forward; backward computes the true gradients of u and D
    and zero gradients for delta, A, B, C and delta_bias (see :class:`_FloorScan`). What
    remains of a network's time with this in place is what everything but the scan costs."""
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"u and delta must be (batch, KD, L), got {tuple(u.shape)} and {tuple(delta.shape)}")
    y = _FloorScan.apply(u, delta, A, B, C, D, delta_bias)
    if return_last_state:
        return y, u.new_zeros(u.shape[0], u.shape[1], A.shape[1], dtype=torch.float32)
    return y


@contextlib.contextmanager
def floor_installed():
    """Within the block, every SS2D of swin_umamba.nets calls floor_scan instead of the scan."""
    import swin_umamba.nets.vmamba as vmamba

    saved = vmamba.selective_scan
    vmamba.selective_scan = floor_scan
    try:
        yield
    finally:
        vmamba.selective_scan = saved


def record_scan_calls(net, x) -> list[tuple[int, int, int, int, int]]:
    """(batch, KD, L, G, N) of every selective scan in one no-grad forward of ``net`` on ``x``, in
    call order, recorded with the floor stand-in in place of the scan."""
    import swin_umamba.nets.vmamba as vmamba

    calls = []

    def recording(u, delta, A, B, *args, **kwargs):
        groups = B.shape[1] if B.dim() == 4 else 1
        calls.append((u.shape[0], u.shape[1], u.shape[2], groups, A.shape[1]))
        return floor_scan(u, delta, A, B, *args, **kwargs)

    saved = vmamba.selective_scan
    vmamba.selective_scan = recording
    try:
        with torch.no_grad():
            net(x)
    finally:
        vmamba.selective_scan = saved
    return calls


def scan_calls(network: str, size: int) -> list[tuple[int, int, int, int, int]]:
    """(batch, KD, L, G, N) of every selective scan in one forward pass of ``network`` at a square
    ``size`` and batch 1, in call order (:func:`record_scan_calls`)."""
    net = build_network(network, (size, size), 4, deep_supervision=False).eval()
    return record_scan_calls(net, torch.zeros(1, IN_CHANNELS, size, size))


# nnU-Net's default PlainConvUNet -----------------------------------------------------------------------
# nnU-Net's default ExperimentPlanner: features min(32 * 2**i, max), the max by dimensionality
PLAIN_BASE_FEATURES = 32
PLAIN_MAX_FEATURES = {2: 512, 3: 320}


def plain_conv_unet_kwargs(patch, spacing=None) -> dict:
    """PlainConvUNet arguments as nnU-Net's default ExperimentPlanner chooses them for a 2D or 3D
    patch at ``spacing`` (default 1 per axis): topology from nnU-Net's own get_pool_and_conv_props,
    features min(32 * 2**i, 512 in 2D / 320 in 3D), 2 convs per stage, conv bias,
    InstanceNorm(affine), LeakyReLU."""
    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props
    from torch import nn

    from swin_umamba.trainers.configuration import NNUNET_MIN_FEATURE_MAP_SIZE

    dims = len(patch)
    if dims not in PLAIN_MAX_FEATURES:
        raise ValueError(f"patch {list(patch)}: expected 2 or 3 axes")
    spacing = tuple(spacing) if spacing is not None else (1.0,) * dims
    _, strides, kernels, planned_patch, _ = get_pool_and_conv_props(spacing, tuple(patch), NNUNET_MIN_FEATURE_MAP_SIZE,
                                                                   999999)
    if [int(s) for s in planned_patch] != [int(s) for s in patch]:
        raise ValueError(f"nnU-Net's topology needs patch {[int(s) for s in planned_patch]} instead of {list(patch)}")
    n_stages = len(strides)
    return {
        "n_stages": n_stages,
        "features_per_stage": tuple(min(PLAIN_BASE_FEATURES * 2**i, PLAIN_MAX_FEATURES[dims]) for i in range(n_stages)),
        "conv_op": nn.Conv2d if dims == 2 else nn.Conv3d,
        "kernel_sizes": kernels,
        "strides": strides,
        "n_conv_per_stage": (2,) * n_stages,
        "n_conv_per_stage_decoder": (2,) * (n_stages - 1),
        "conv_bias": True,
        "norm_op": nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d,
        "norm_op_kwargs": {"eps": 1e-5, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": nn.LeakyReLU,
        "nonlin_kwargs": {"inplace": True},
    }


def build_network(name: str, patch, num_classes: int, deep_supervision: bool, spacing=None, depth_strides=None):
    """A network by class name: PlainConvUNet (nnU-Net's default plans for ``patch`` at ``spacing``)
    or a class of swin_umamba.nets (the 3D ones take ``depth_strides``)."""
    if name == "PlainConvUNet":
        from dynamic_network_architectures.architectures.unet import PlainConvUNet
        from dynamic_network_architectures.initialization.weight_init import InitWeights_He

        net = PlainConvUNet(IN_CHANNELS, num_classes=num_classes, deep_supervision=deep_supervision,
                            **plain_conv_unet_kwargs(patch, spacing))
        net.apply(InitWeights_He(1e-2))
        return net
    import swin_umamba.nets as nets

    if depth_strides is not None:
        return getattr(nets, name)(IN_CHANNELS, num_classes, depth_strides, deep_supervision=deep_supervision)
    return getattr(nets, name)(IN_CHANNELS, num_classes, deep_supervision=deep_supervision)


def training_step(net, x, backward: bool):
    """``call()`` running one inference forward (no_grad) or one training step without the optimizer
    (loss = sum of the means of all outputs, backward, gradients reset to None first)."""
    def call():
        if backward:
            net.zero_grad(set_to_none=True)
            out = net(x)
            outs = out if isinstance(out, (list, tuple)) else [out]
            sum(o.float().mean() for o in outs).backward()
        else:
            with torch.no_grad():
                net(x)

    return call


def alternate(calls: dict, warmup: int, repeats: int) -> dict:
    """Time every ``calls[name]()`` in turn, round after round, the order rotating by one each round
    (with two calls: swapping), so that a drift of the machine's speed hits all of them alike.
    The first round and ``warmup`` more are untimed. Returns {name: [(wall s, cpu s), ...]}, one per
    timed round."""
    names = list(calls)
    samples = {name: [] for name in names}
    for i in range(1 + warmup + repeats):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            w0, c0 = time.perf_counter(), time.process_time()
            calls[name]()
            if i > warmup:
                samples[name].append((time.perf_counter() - w0, time.process_time() - c0))
    return samples


def with_floor(call):
    """``call`` run with the floor stand-in installed."""
    def floored():
        with floor_installed():
            call()

    return floored


# measurements in this process ---------------------------------------------------------------------------
def _prepare(network: str, size: int, mode: str, batch: int, threads: int, num_classes: int, seed: int):
    """(network, call) for one measurement: ``call()`` runs one forward or training step."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    if mode not in ("fwd", "fwdbwd"):
        raise ValueError(f"mode {mode!r}: expected fwd or fwdbwd")
    backward = mode == "fwdbwd"
    net = build_network(network, (size, size), num_classes, deep_supervision=backward)
    net.train(backward)
    call = training_step(net, torch.randn(batch, IN_CHANNELS, size, size), backward)
    return net, call


def _scan_backend() -> str:
    """The CPU scan backend, built/loaded here so that no timed call includes the build."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from swin_umamba.ops import selective_scan_backend

        return selective_scan_backend("cpu")


def _variant_scope(variant: str):
    return floor_installed() if variant == "floor" else contextlib.nullcontext()


def _result(network, variant, size, mode, batch, net, num_classes, backend, **fields) -> dict:
    base = {"network": network, "variant": variant, "size": size, "mode": mode, "batch": batch,
            "threads": torch.get_num_threads(), "classes": num_classes, "scan_backend": backend,
            "params_M": sum(p.numel() for p in net.parameters()) / 1e6,
            "peak_rss_mb": None, "memory_method": None, "wall_s": None, "cpu_s": None, "walls_s": None}
    base.update(fields)
    return base


def measure(network: str, variant: str, size: int, mode: str, batch: int = 1, threads: int = 2,
            warmup: int = 1, repeats: int = 5, num_classes: int = 4, seed: int = 0) -> dict:
    """Peak memory of the first call, then (repeats > 0) the median time of ``repeats`` calls
    after ``warmup`` more, of one (network, variant, size, mode, batch) in this process.

    ``network`` is SwinUMamba / SwinUMambaD (variant ``scan`` or ``floor``) or PlainConvUNet
    (variant ``plain``). repeats=0 measures the memory only."""
    if (network == "PlainConvUNet") != (variant == "plain"):
        raise ValueError(f"variant {variant!r} does not apply to {network}")
    backend = _scan_backend() if variant == "scan" else ("floor stand-in" if variant == "floor" else "none")
    net, call = _prepare(network, size, mode, batch, threads, num_classes, seed)
    with _variant_scope(variant):
        with timing.PeakRSS() as mem:
            call()
        timed = timing.time_calls(call, warmup, repeats) if repeats > 0 else {}
    return _result(network, variant, size, mode, batch, net, num_classes, backend,
                   peak_rss_mb=mem.mb, memory_method=mem.method, wall_s=timed.get("wall_s"),
                   cpu_s=timed.get("cpu_s"), walls_s=timed.get("walls_s"), warmup=warmup, repeats=repeats)


def measure_interleaved(network: str, size: int, mode: str, batch: int = 1, threads: int = 2,
                        warmup: int = 1, repeats: int = 5, num_classes: int = 4, seed: int = 0) -> list[dict]:
    """Times of ``scan`` and ``floor`` for one network in this process, alternating the two
    call by call (the order swaps every round); one result per variant, without memory."""
    if network not in NETWORKS:
        raise ValueError(f"{network} has no scan to replace (expected one of {', '.join(NETWORKS)})")
    backends = {"scan": _scan_backend(), "floor": "floor stand-in"}
    net, call = _prepare(network, size, mode, batch, threads, num_classes, seed)
    samples = alternate({"scan": call, "floor": with_floor(call)}, warmup, repeats)
    results = [_result(network, variant, size, mode, batch, net, num_classes, backends[variant],
                       wall_s=timing.median([w for w, _ in runs]), cpu_s=timing.median([c for _, c in runs]),
                       walls_s=[w for w, _ in runs], warmup=warmup, repeats=repeats)
               for variant, runs in samples.items()]
    # the ratio of each round's two calls, made seconds apart
    results[0]["x_floor_rounds"] = [ws / wf for (ws, _), (wf, _) in zip(samples["scan"], samples["floor"])]
    return results


def measure_in_subprocess(network, variant, size, mode, batch=1, threads=2, warmup=1, repeats=5,
                          num_classes=4, timeout=None) -> list[dict]:
    """:func:`measure` (or, for variant ``pair``, :func:`measure_interleaved`) in a fresh Python
    process (clean allocator and RSS for the memory figure); a list of results."""
    cmd = [sys.executable, "-m", "benchmarks.bench_network", "--worker", "--network", network, "--variant", variant,
           "--sizes", str(size), "--mode", mode, "--batch", str(batch), "--threads", str(threads),
           "--warmup", str(warmup), "--repeats", str(repeats), "--classes", str(num_classes)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=REPOSITORY_ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    results = json.loads(lines[-1])
    for result in results:
        result["process_s"] = time.perf_counter() - t0
    return results


def plan(sizes, memory_batch: int = 2):
    """The measurements of the network section: (network, variant, size, mode, batch, timed);
    variant ``pair`` times scan and floor together (:func:`measure_interleaved`)."""
    jobs = []
    for size in sizes:
        for mode in ("fwd", "fwdbwd"):
            for network in NETWORKS:
                jobs.append((network, "pair", size, mode, 1, True))
                for variant in ("scan", "floor"):
                    jobs.append((network, variant, size, mode, 1, False))
            jobs.append(("PlainConvUNet", "plain", size, mode, 1, True))
        if memory_batch and memory_batch != 1:
            for network in NETWORKS:
                for variant in ("scan", "floor"):
                    jobs.append((network, variant, size, "fwdbwd", memory_batch, False))
            jobs.append(("PlainConvUNet", "plain", size, "fwdbwd", memory_batch, False))
    return jobs


def run_suite(sizes, threads=2, warmup=1, repeats=5, memory_batch=2, num_classes=4, repeats_large=None,
              log=print) -> list[dict]:
    """Every measurement of :func:`plan`, each in its own process. ``repeats_large`` (default
    ``repeats``) applies to patches larger than 256x256."""
    results = []
    for network, variant, size, mode, batch, timed in plan(sizes, memory_batch):
        reps = (repeats if size <= 256 or repeats_large is None else repeats_large) if timed else 0
        for res in measure_in_subprocess(network, variant, size, mode, batch, threads, warmup if timed else 0,
                                         reps, num_classes):
            results.append(res)
            if log:
                figures = [f"{res['wall_s']:.3f} s" if res["wall_s"] is not None else "",
                           f"+{res['peak_rss_mb']:.0f} MB" if res["peak_rss_mb"] is not None else ""]
                log(f"  done {network:13s} {res['variant']:5s} {size}x{size} {mode:6s} batch {batch}: "
                    f"{', '.join(f for f in figures if f)} ({res['process_s']:.0f} s)")
    return results


def _merged_index(results: list[dict]) -> dict:
    """Results by (network, variant, size, mode, batch); the time and the memory of one key come
    from different processes and are merged here (a field's first non-empty value wins)."""
    index = {}
    for r in results:
        merged = index.setdefault((r["network"], r["variant"], r["size"], r["mode"], r["batch"]), {})
        for key, value in r.items():
            if merged.get(key) is None:
                merged[key] = value
    return index


# targets (docs/performance.md): threads 2, batch 1 unless stated
TARGET_FWD = 1.15      # network forward / floor forward
TARGET_FWDBWD = 1.30   # network forward+backward / floor forward+backward
TARGET_MEMORY = 1.50   # forward+backward peak RSS growth at batch TARGET_MEMORY_BATCH / floor's
TARGET_MEMORY_BATCH = 2


def verdict(value, limit):
    return None if value is None else ("PASS" if value <= limit else "FAIL")


def summarise(results: list[dict]) -> dict:
    """Ratios and verdicts: {"time": [...], "memory": [...]} rows, one per network/size/mode(/batch)."""
    index = _merged_index(results)
    sizes = sorted({r["size"] for r in results})
    time_rows, memory_rows = [], []
    for size in sizes:
        for mode in ("fwd", "fwdbwd"):
            plain = index.get(("PlainConvUNet", "plain", size, mode, 1))
            for network in NETWORKS:
                ours, floor = index.get((network, "scan", size, mode, 1)), index.get((network, "floor", size, mode, 1))
                if not ours or not floor or ours["wall_s"] is None:
                    continue
                rounds = ours.get("x_floor_rounds")
                x_floor = timing.median(rounds) if rounds else timing.ratio(ours["wall_s"], floor["wall_s"])
                limit = TARGET_FWD if mode == "fwd" else TARGET_FWDBWD
                time_rows.append({
                    "network": network, "size": size, "mode": mode, "batch": 1, "threads": ours["threads"],
                    "scan_s": ours["wall_s"], "floor_s": floor["wall_s"], "x_floor": x_floor,
                    "scan_share": None if x_floor is None else 1.0 - 1.0 / x_floor,
                    "cpu_x_floor": timing.ratio(ours["cpu_s"], floor["cpu_s"]),
                    "plain_s": plain and plain["wall_s"],
                    "x_plain": timing.ratio(ours["wall_s"], plain and plain["wall_s"]),
                    "target": f"<= {limit:.2f}x floor", "verdict": verdict(x_floor, limit)})
        batches = sorted({r["batch"] for r in results if r["size"] == size})
        for batch in batches:
            for mode in ("fwd", "fwdbwd"):
                plain = index.get(("PlainConvUNet", "plain", size, mode, batch))
                for network in NETWORKS:
                    ours = index.get((network, "scan", size, mode, batch))
                    floor = index.get((network, "floor", size, mode, batch))
                    if not ours or not floor:
                        continue
                    x_floor = timing.ratio(ours["peak_rss_mb"], floor["peak_rss_mb"])
                    has_target = mode == "fwdbwd" and batch == TARGET_MEMORY_BATCH
                    memory_rows.append({
                        "network": network, "size": size, "mode": mode, "batch": batch,
                        "scan_mb": ours["peak_rss_mb"], "floor_mb": floor["peak_rss_mb"], "x_floor": x_floor,
                        "plain_mb": plain and plain["peak_rss_mb"],
                        "x_plain": timing.ratio(ours["peak_rss_mb"], plain and plain["peak_rss_mb"]),
                        "target": f"<= {TARGET_MEMORY:.2f}x floor" if has_target else "",
                        "verdict": verdict(x_floor, TARGET_MEMORY) if has_target else None})
    method = next((r["memory_method"] for r in results if r.get("memory_method")), "")
    classes = next((r["classes"] for r in results), None)
    backend = next((r["scan_backend"] for r in results if r["variant"] == "scan"), None)
    threads = next((r["threads"] for r in results), None)
    return {"time": time_rows, "memory": memory_rows, "memory_method": method, "classes": classes,
            "scan_backend": backend, "threads": threads}


def print_tables(summary: dict, out=print) -> None:
    out(f"Networks ({summary.get('threads')} threads, scan backend {summary.get('scan_backend')}): "
        f"1 input channel, {summary['classes']} classes, square patch HxW, batch 1; "
        f"fwd = eval + no_grad, no deep supervision; fwdbwd = train mode, deep supervision, sum-of-means loss, "
        f"backward. Times are medians of wall seconds; ours and floor alternate call by call in one process.")
    out("  x floor = ours / same network with the scan replaced by a no-cost stand-in (median over rounds of the "
        "ratio of a round's two calls); scan share = 1 - 1/(x floor);"
        " cpu x = same ratio of process CPU time; x plain = ours / nnU-Net's default 2D PlainConvUNet")
    patch = ("patch", ">8", lambda r: f"{r['size']}x{r['size']}")
    target = [(" target", "<17", lambda r: " " + r["target"]), ("", "<4", lambda r: r["verdict"] or "")]
    timing.print_table([("network", ">12", lambda r: r["network"]), patch, ("mode", ">6", lambda r: r["mode"]),
                        ("ours s", ">8", timing.number("scan_s", ".3f")),
                        ("floor s", ">8", timing.number("floor_s", ".3f")),
                        ("x floor", ">8", timing.number("x_floor", ".3f")),
                        ("scan %", ">7", lambda r: None if r["scan_share"] is None else f"{100 * r['scan_share']:.1f}"),
                        ("cpu x", ">6", timing.number("cpu_x_floor", ".2f")),
                        ("plain s", ">8", timing.number("plain_s", ".3f")),
                        ("x plain", ">8", timing.number("x_plain", ".2f")), *target], summary["time"], out)
    out("")
    out(f"Peak memory: growth of the process's peak RSS during the first call over the RSS after building the "
        f"network and the input, each in a fresh process; method: {summary['memory_method']}")
    timing.print_table([("network", ">12", lambda r: r["network"]), patch, ("mode", ">6", lambda r: r["mode"]),
                        ("batch", ">5", lambda r: r["batch"]), ("ours MB", ">8", timing.number("scan_mb", ".0f")),
                        ("floor MB", ">9", timing.number("floor_mb", ".0f")),
                        ("x floor", ">8", timing.number("x_floor", ".3f")),
                        ("plain MB", ">9", timing.number("plain_mb", ".0f")),
                        ("x plain", ">8", timing.number("x_plain", ".2f")), *target], summary["memory"], out)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="256,512", help="comma-separated square patch sizes")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--repeats-large", type=int, default=5, help="repeats for patches larger than 256x256")
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--memory-batch", type=int, default=2)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--network", help=argparse.SUPPRESS)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.worker:
        if args.variant == "pair":
            results = measure_interleaved(args.network, sizes[0], args.mode, args.batch, args.threads,
                                          args.warmup, args.repeats, args.classes)
        else:
            results = [measure(args.network, args.variant, sizes[0], args.mode, args.batch, args.threads,
                               args.warmup, args.repeats, args.classes)]
        print(json.dumps(results))
        return 0
    results = run_suite(sizes, args.threads, args.warmup, args.repeats, args.memory_batch, args.classes,
                        args.repeats_large)
    print_tables(summarise(results))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0

if __name__ == "__main__":
    sys.exit(main())
