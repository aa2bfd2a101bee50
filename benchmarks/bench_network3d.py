"""3D whole-network benchmark: SwinUMamba3D / SwinUMambaD3D vs their no-cost-scan floor vs nnU-Net's 3D PlainConvUNet.

    python -m benchmarks.bench_network3d --threads 2 [--patch 32,64,64] [--spacing 4,1,1] [--repeats 5]

One process per mode times five calls in turn, round after round, the order rotating every round
(``bench_network.alternate``): each Swin-UMamba network as shipped (``scan``), the same network with
the selective scan replaced by ``bench_network.floor_scan`` (``floor``), and nnU-Net's PlainConvUNet
(``plain``). The machine we measure on drifts by tens of percent within minutes, so the figures to
read are ratios of calls made seconds apart: ``x floor`` and ``x plain`` are medians over rounds of
the ratio of a round's two calls.

The default case is a 3d_fullres-like patch that a 2-core CPU times in minutes: 16x64x64 voxels at
a spacing of 4x1x1 (an anisotropic MR volume). nnU-Net's pooling plan for that patch and spacing
is (1,1,1), (1,2,2), (1,2,2), (2,2,2), (2,2,2): no depth pooling until the in-plane reduction
reaches 8. Our networks' depth strides come from that plan as the trainers derive them
(``swin_umamba.nets.depth_strides``): SwinUMamba3D (1, 1, 2, 2, 2), SwinUMambaD3D (1, 2, 2, 2).
PlainConvUNet is built from the same plan (``bench_network.plain_conv_unet_kwargs``).

Modes as in ``bench_network``: ``fwd`` is inference (eval, no_grad, no deep supervision); ``fwdbwd``
a training step without the optimizer (train mode, deep supervision, sum of the outputs' means,
backward). Batch 1, 1 input channel.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from benchmarks import bench_network, timing
from swin_umamba.nets.depth_strides import derive_depth_strides
from swin_umamba.network_registry import NETWORKS as REGISTRY
from swin_umamba.trainers.configuration import nnunet_pooling

PATCH = (16, 64, 64)
SPACING = (4.0, 1.0, 1.0)
NETWORKS = tuple(n.cls_3d.__name__ for n in REGISTRY.values())  # the 3D Swin-UMamba networks, by class name
MODES = ("fwd", "fwdbwd")
# the 3D goal, forward and forward+backward alike: <= 1.3x floor (2D's forward+backward target)
TARGET = {mode: bench_network.TARGET_FWDBWD for mode in MODES}


def depth_strides(patch, spacing) -> dict:
    """{class name: depth strides} as the trainers derive them from nnU-Net's pooling plan of ``patch``
    at ``spacing``."""
    pooling = nnunet_pooling(spacing, patch)
    return {n.cls_3d.__name__: derive_depth_strides(pooling, patch[0], n.cls_3d.IN_PLANE_STRIDES,
                                                    n.cls_3d.DEPTH_STRIDE_CHOICES) for n in REGISTRY.values()}


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(",") if v)


def build(network: str, patch, spacing, depth_strides, num_classes: int, backward: bool):
    net = bench_network.build_network(network, patch, num_classes, deep_supervision=backward, spacing=spacing,
                                      depth_strides=depth_strides)
    return net.train(backward)


def measure_mode(mode: str, patch=PATCH, spacing=SPACING, threads: int = 2,
                 warmup: int = 1, repeats: int = 5, num_classes: int = 4, seed: int = 0, log=print) -> dict:
    """Every network's ``scan`` and ``floor`` and PlainConvUNet, alternated in this process.

    Returns {"mode", "patch", "spacing", "depth_strides", "samples": {call: [[wall, cpu], ...]},
    "rows": [per network: medians and per-round ratios]}."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    strides = depth_strides(patch, spacing)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    backward = mode == "fwdbwd"
    x = torch.randn(1, bench_network.IN_CHANNELS, *patch)
    backend = bench_network._scan_backend()
    calls, params = {}, {}
    for network in NETWORKS:
        net = build(network, patch, spacing, strides[network], num_classes, backward)
        params[network] = sum(p.numel() for p in net.parameters()) / 1e6
        step = bench_network.training_step(net, x, backward)
        calls[f"{network} scan"] = step
        calls[f"{network} floor"] = bench_network.with_floor(step)
    plain = build("PlainConvUNet", patch, spacing, None, num_classes, backward)
    params["PlainConvUNet"] = sum(p.numel() for p in plain.parameters()) / 1e6
    calls["PlainConvUNet plain"] = bench_network.training_step(plain, x, backward)
    if log:
        log(f"  {mode}: {len(calls)} calls alternated, {1 + warmup} untimed + {repeats} timed rounds")
    samples = bench_network.alternate(calls, warmup, repeats)

    def wall(name):
        return [w for w, _ in samples[name]]

    def cpu(name):
        return [c for _, c in samples[name]]

    rows = []
    for network in NETWORKS:
        ours, floor, plain_w = wall(f"{network} scan"), wall(f"{network} floor"), wall("PlainConvUNet plain")
        x_floor_rounds = [a / b for a, b in zip(ours, floor)]
        x_plain_rounds = [a / b for a, b in zip(ours, plain_w)]
        x_floor = timing.median(x_floor_rounds)
        rows.append({
            "network": network, "depth_strides": list(strides[network]), "mode": mode,
            "patch": list(patch), "threads": threads, "scan_backend": backend, "params_M": params[network],
            "scan_s": timing.median(ours), "floor_s": timing.median(floor), "plain_s": timing.median(plain_w),
            "x_floor": x_floor, "x_floor_rounds": x_floor_rounds,
            "x_floor_min": min(x_floor_rounds), "x_floor_max": max(x_floor_rounds),
            "scan_share": 1.0 - 1.0 / x_floor,
            # process CPU time leaves out the time the process waited for a core: the steadier ratio on a busy machine
            "cpu_x_floor": timing.median([a / b for a, b in zip(cpu(f"{network} scan"), cpu(f"{network} floor"))]),
            "cpu_x_plain": timing.median([a / b for a, b in zip(cpu(f"{network} scan"), cpu("PlainConvUNet plain"))]),
            "x_plain": timing.median(x_plain_rounds), "x_plain_rounds": x_plain_rounds,
            "target": f"<= {TARGET[mode]:.2f}x floor", "verdict": bench_network.verdict(x_floor, TARGET[mode])})
    return {"mode": mode, "patch": list(patch), "spacing": list(spacing),
            "depth_strides": {k: list(v) for k, v in strides.items()},
            "plain_strides": [list(s) for s in bench_network.plain_conv_unet_kwargs(patch, spacing)["strides"]],
            "params_M": params, "samples": {k: [list(s) for s in v] for k, v in samples.items()}, "rows": rows}


def print_table(results: list[dict], out=print) -> None:
    first = results[0]
    patch = "x".join(str(s) for s in first["patch"])
    out(f"3D networks at patch {patch} (spacing {first['spacing']}), batch 1, 1 input channel; "
        f"depth strides {first['depth_strides']}; PlainConvUNet strides {first['plain_strides']}")
    out("  median wall seconds; x floor / x plain = median over rounds of the ratio of a round's two calls "
        "(all calls of a mode alternated in one process); scan % = 1 - 1/(x floor); cpu x, cpu x plain = the same "
        "medians of ratios of process CPU time (steadier when the machine's load exceeds its cores)")
    rows = [r for res in results for r in res["rows"]]
    timing.print_table([
        ("network", ">14", lambda r: r["network"]), ("mode", ">6", lambda r: r["mode"]),
        ("ours s", ">8", timing.number("scan_s", ".3f")), ("floor s", ">8", timing.number("floor_s", ".3f")),
        ("x floor", ">8", timing.number("x_floor", ".3f")),
        ("rounds", ">13", lambda r: f"{r['x_floor_min']:.2f}-{r['x_floor_max']:.2f}"),
        ("scan %", ">7", lambda r: f"{100 * r['scan_share']:.1f}"),
        ("cpu x", ">6", timing.number("cpu_x_floor", ".2f")),
        ("plain s", ">8", timing.number("plain_s", ".3f")), ("x plain", ">8", timing.number("x_plain", ".2f")),
        ("cpu x plain", ">11", timing.number("cpu_x_plain", ".2f")),
        (" target", "<17", lambda r: " " + r["target"]), ("", "<4", lambda r: r["verdict"] or "")], rows, out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--patch", default=",".join(map(str, PATCH)), help="patch D,H,W (default %(default)s)")
    ap.add_argument("--spacing", default=",".join(map(str, SPACING)),
                    help="voxel spacing D,H,W: nnU-Net's pooling plan for it and the patch gives PlainConvUNet's "
                         "topology and the depth strides of our networks (default %(default)s)")
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated, of fwd, fwdbwd (default %(default)s)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds after the first (default %(default)s)")
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds (default %(default)s)")
    ap.add_argument("--classes", type=int, default=4, help="output classes (default %(default)s)")
    ap.add_argument("--out", help="write every measurement as JSON here")
    args = ap.parse_args(argv)
    patch, spacing = _ints(args.patch), _floats(args.spacing)
    if len(patch) != 3 or len(spacing) != 3:
        ap.error(f"--patch {args.patch!r} and --spacing {args.spacing!r} need three values each (D,H,W)")
    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad:
        ap.error(f"--modes: unknown {', '.join(bad)}; choose from {', '.join(MODES)}")
    print(timing.machine_line(args.threads), flush=True)
    results = [measure_mode(mode, patch, spacing, args.threads, args.warmup, args.repeats, args.classes,
                            log=lambda line: print(line, flush=True)) for mode in modes]
    print(timing.machine_line(args.threads))
    print_table(results)
    if args.out:
        from swin_umamba.fileio import write_text_atomic

        write_text_atomic(Path(args.out), json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
