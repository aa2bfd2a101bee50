"""Swin-UMamba's GPU figures in one command: scan kernels, cross-scan/merge, training iterations,
torch.compile's graph breaks and a short real nnUNetv2_train, each against its target.

    python benchmarks/gpu_bench.py [--out benchmarks/gpu_results] [--budget-s 450]
    python benchmarks/gpu_bench.py --device cpu --dry-run --out /tmp/dry   # every section, tiny, seconds

Sections (each one survives the failure of another: its error goes into the JSON and the run goes on):

``scan``
    The selective scans of SwinUMamba and SwinUMambaD, their shapes recorded from one forward of
    each network at a 256x256 patch and timed at the network's planned batch size: forward (no
    autograd) and forward+backward, for the Triton kernels (``selective_scan_triton``), mamba-ssm's
    CUDA kernel (``selective_scan_fn``; build it with ``build_mamba_scan.py``) and the PyTorch path
    (``scan_torch``), inputs u, delta, B, C in float32 and in float16 (A, D, delta_bias float32).
    Each backend's agreement with the reference scan in float64 (``selective_scan_ref``): the largest relative
    error over the output, the last state and the seven gradients, on a reduced shape of each scan
    (batch 1, KD <= 64, L <= 256). Target: Triton <= 1.25x mamba's time, forward and
    forward+backward, at every shape.
``cross_scan``
    SS2D's cross-scan (four directions from a feature map) and cross-merge (their sum back in
    row-major order) at the networks' SS2D shapes, float16: the fused Triton kernels where
    ``swin_umamba.ops`` has them, PyTorch eager, and torch.compile of the PyTorch version.
``training``
    One training iteration as nnU-Net's ``train_step`` does it (zero_grad, autocast float16 forward
    with deep supervision, DC+CE loss, GradScaler backward, grad clipping at 12, optimizer step,
    loss to the host) of SwinUMamba, SwinUMambaD and nnU-Net's PlainConvUNet at a 256x256 patch and
    the planned batch, eager and compiled, per scan backend: Triton compiled, mamba eager (the
    authors' configuration), Triton eager, PyTorch eager, mamba compiled. Mean time of ``--iters``
    iterations after ``--warmup`` (compiled: at least 3, the first includes compiling) and peak
    memory allocated. Targets: Triton compiled <= 0.8x mamba eager in time, <= 1.1x in peak memory.
``compile_counts``
    Graph breaks, recompiles and graphs of each compiled run of ``training`` over its first 3
    iterations (Dynamo's counters). Target: zero graph breaks and zero recompiles.
``nnunet_train``
    ``nnUNetv2_plan_and_preprocess`` and ``nnUNetv2_train`` of the demo dataset with
    ``nnUNetTrainerSwinUMamba_bench`` (tests/nnunet_trainers/: one epoch of 4 iterations),
    SWIN_UMAMBA_SCAN=triton and torch.compile on, in a temporary nnU-Net workspace: exit code, time
    and the last lines of its output and training log (full output in ``nnunet_train.log``).

The planned batch of the Swin-UMamba networks is the one ``swin-umamba plan`` gives a 256x256 patch
with 14 classes (nnU-Net's 8 GiB target, the measured memory model); PlainConvUNet's is nnU-Net's
own plan for such data. ``--budget-s``: no new measurement starts once the run would pass it; the
training section leaves ``--train-reserve-s`` of it to ``nnunet_train``; what does not fit is
listed with "skipped: out of time". ``--dry-run`` shrinks every shape and repeat count so that the
whole command runs on the CPU in seconds (Triton under its interpreter, compile with the ``eager``
backend); what needs CUDA is skipped with the reason. Writes ``gpu_bench.json`` and
``gpu_bench.md`` (``gpu_bench_dry_run.*`` for a dry run) into ``--out`` after every measurement.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _path in (HERE, ROOT):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import torch  # noqa: E402

import bench_network  # noqa: E402
import timing  # noqa: E402

from swin_umamba.ops import random_scan_grads, random_scan_inputs  # noqa: E402

SECTIONS = ("scan", "cross_scan", "training", "compile_counts", "nnunet_train")
DEFAULT_OUT = os.path.join(HERE, "gpu_results")
PATCH = 256
NUM_CLASSES = 14  # 13 abdominal organs + background, as the AbdomenMR task
# nnU-Net 2.8.1's 2d plan (PlainConvUNet) for a synthetic dataset of 8 single-channel 60x256x256
# volumes, 3 labels, spacing 1x1x5, planned with nnUNetv2_plan_and_preprocess -c 2d
PLAIN_UNET_PLANNED_BATCH = 24
TARGET_SCAN = 1.25          # Triton / mamba-ssm, forward and forward+backward, every shape
TARGET_TRAIN_TIME = 0.80    # SwinUMamba iteration, Triton compiled / mamba eager
TARGET_TRAIN_MEMORY = 1.10  # its peak memory, the same ratio
COMPILE_COUNT_ITERS = 3
ORACLE_MAX_KD, ORACLE_MAX_L = 64, 256  # the reduced shape of the agreement check
FWD_REL_TOL, GRAD_REL_TOL = 1e-4, 1e-3  # float32 inputs against the float64 oracle
BENCH_TRAINER = "nnUNetTrainerSwinUMamba_bench"
SCAN_INPUTS = ("u", "delta", "A", "B", "C", "D", "delta_bias")


# ------------------------------------------------------------------------------------------- set-up
class Budget:
    """Seconds since the start against ``total``."""

    def __init__(self, total: float):
        self.total, self.start = total, time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self, reserve: float = 0.0) -> float:
        return self.total - reserve - self.elapsed()


class Settings:
    """What the run measures, from the command line (a dry run shrinks everything)."""

    def __init__(self, args):
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        self.dry = args.dry_run
        self.patch = 32 if self.dry else args.patch
        self.warmup = 0 if self.dry else args.warmup
        self.iters = 1 if self.dry else args.iters
        self.scan_repeats = 1 if self.dry else args.scan_repeats
        self.scan_dtypes = ["float32"] if self.dry else args.scan_dtypes
        self.compile_backend = args.compile_backend or ("inductor" if self.cuda else "eager")
        # nnU-Net's float16 autocast on CUDA; none on the CPU (its low-precision convolutions are slow)
        self.amp_dtype = torch.float16 if self.cuda else None
        self.train_reserve = 0.0 if self.dry or "nnunet_train" not in args.sections else args.train_reserve_s
        self.train_timeout = args.train_timeout_s
        self.sections = args.sections
        self.triton_interpreter = None  # how Triton runs CPU tensors, when it does

    def batch(self, network: str) -> int:
        return 2 if self.dry else planned_batch(network, self.patch)

    def scan_shape(self, kd: int, length: int) -> tuple[int, int]:
        """Dry run: at most 8 channels and 16 steps (Triton's interpreter is slow)."""
        return (min(kd, 8), min(length, 16)) if self.dry else (kd, length)


def planned_batch(network: str, patch: int) -> int:
    """The batch size of the network's plans for a square patch of ``patch`` and NUM_CLASSES classes."""
    if network == "PlainConvUNet":
        return PLAIN_UNET_PLANNED_BATCH
    from nnunet_plans.memory_model import GIB, load_memory_model
    from nnunet_plans.planner import DEFAULT_GPU_MEMORY_TARGET_GB
    from swin_umamba.network_registry import NETWORKS

    name = next(n.name for n in NETWORKS.values() if n.class_name == network)
    batch = load_memory_model().max_batch_size(name, [patch, patch], NUM_CLASSES,
                                               DEFAULT_GPU_MEMORY_TARGET_GB * GIB)
    return max(batch, 2)  # nnU-Net's smallest batch


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release(device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def error_text(exc: BaseException) -> str:
    if isinstance(exc, torch.OutOfMemoryError):
        return f"OOM: {str(exc).splitlines()[0]}"
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"


@contextlib.contextmanager
def scan_backend_env(name: str | None):
    """SWIN_UMAMBA_SCAN=name inside the block (unset for None), restored after it."""
    from swin_umamba.ops import dispatch

    saved = os.environ.get(dispatch.ENV_VAR)
    if name is None:
        os.environ.pop(dispatch.ENV_VAR, None)
    else:
        os.environ[dispatch.ENV_VAR] = name
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(dispatch.ENV_VAR, None)
        else:
            os.environ[dispatch.ENV_VAR] = saved


# -------------------------------------------------------------------------------------------- scans
@functools.lru_cache(maxsize=None)
def recorded_scan_calls(network: str, patch: int) -> tuple:
    return tuple(bench_network.scan_calls(network, patch))


def ss2d_shapes(settings) -> list[dict]:
    """One entry per network and distinct scan shape: KD, L, G, N, the calls per forward, the batch
    (a dry run: the first shape of each network only)."""
    shapes = []
    for network in bench_network.NETWORKS:
        calls = Counter((kd, length, g, n) for _, kd, length, g, n in recorded_scan_calls(network, settings.patch))
        ordered = sorted(calls.items(), key=lambda item: -item[0][1])
        for (kd, length, g, n), count in ordered[:1] if settings.dry else ordered:
            kd_run, l_run = settings.scan_shape(kd, length)
            shapes.append({"network": network, "batch": settings.batch(network), "KD": kd_run, "L": l_run,
                           "G": g, "N": n, "calls": count, "network_KD": kd, "network_L": length})
    return shapes


def scan_functions(device) -> dict:
    """name -> (fn(u, delta, A, B, C, D, delta_bias, delta_softplus, return_last_state) or None, reason)."""
    from swin_umamba.ops import dispatch
    from swin_umamba.ops.scan_torch import scan_torch

    backends = {}
    try:
        from swin_umamba.ops import scan_triton

        ok, why = scan_triton.triton_available(device)
        backends["triton"] = (scan_triton.selective_scan_triton if ok else None, why)
    except Exception as exc:
        backends["triton"] = (None, f"the Triton scan does not import ({error_text(exc)})")
    if device.type != "cuda":
        backends["mamba"] = (None, "mamba-ssm's kernel needs CUDA")
    elif dispatch.mamba_scan_fn() is None:
        backends["mamba"] = (None, f"mamba-ssm does not import ({dispatch.mamba_error()})")
    else:
        raw = dispatch.mamba_scan_fn()

        def mamba(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False, return_last_state=False):
            return raw(u.contiguous(), delta.contiguous(), A.contiguous(), B.contiguous(), C.contiguous(), D=D,
                       z=None, delta_bias=delta_bias, delta_softplus=delta_softplus,
                       return_last_state=return_last_state)

        backends["mamba"] = (mamba, "")

    def torch_path(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False, return_last_state=False):
        # as the dispatcher calls it: float32 copies of the inputs
        return scan_torch(u.float(), delta.float(), A, B.float(), C.float(), D, delta_bias,
                          delta_softplus=delta_softplus, return_last_state=return_last_state)

    backends["torch"] = (torch_path, "")
    return backends


def scan_inputs(batch, kd, length, groups, n, dtype, device, seed):
    """SS2D-like inputs (u, delta, B, C in ``dtype``; A, D, delta_bias in float32, float64 stays)
    and an upstream gradient of the output."""
    params = torch.float64 if dtype == torch.float64 else torch.float32
    inputs = random_scan_inputs(batch, kd, length, groups, n, dtype=dtype, param_dtype=params, device=device,
                                seed=seed)
    return list(inputs), random_scan_grads(inputs, seed)[0]


def forward_backward(fn, inputs, gout):
    xs = [x.detach().clone().requires_grad_() for x in inputs]
    out, last = fn(*xs, delta_softplus=True, return_last_state=True)
    (out * gout.to(out.dtype)).sum().backward()
    return {"out": out.detach(), "last_state": last.detach(), **{f"d{n}": x.grad for n, x in zip(SCAN_INPUTS, xs)}}


def relative_errors(actual: dict, ref: dict) -> dict:
    """Per result: max |a - r| / max |r|, and whether ``a`` is finite."""
    res = {}
    for key, r in ref.items():
        a = actual[key].double()
        scale = r.abs().max().item()
        err = (a - r).abs().max().item()
        res[key] = {"rel": err / scale if scale else float("inf"), "finite": bool(torch.isfinite(a).all())}
    return res


def agreement(fn, shape: dict, device) -> dict:
    """The backend's float32 results against the float64 oracle on the reduced shape."""
    from swin_umamba.ops import selective_scan_ref

    kd, length = min(shape["KD"], ORACLE_MAX_KD), min(shape["L"], ORACLE_MAX_L)
    args = (1, kd, length, shape["G"], shape["N"])
    ref_inputs, ref_gout = scan_inputs(*args, torch.float64, device, seed=kd + length)
    ref = forward_backward(selective_scan_ref, ref_inputs, ref_gout)
    errs = relative_errors(forward_backward(fn, [t.float() for t in ref_inputs], ref_gout.float()), ref)
    fwd = max(errs["out"]["rel"], errs["last_state"]["rel"])
    grad = max(v["rel"] for k, v in errs.items() if k.startswith("d"))
    ok = fwd <= FWD_REL_TOL and grad <= GRAD_REL_TOL and all(v["finite"] for v in errs.values())
    return {"shape": f"1x{kd}x{length}", "fwd_rel": fwd, "grad_rel": grad, "ok": bool(ok), "errors": errs}


def time_scan(fn, inputs, gout, device, repeats: int, warmup: int) -> dict:
    xs = [x.detach().clone().requires_grad_() for x in inputs]

    def fwd():
        with torch.no_grad():
            fn(*[x.detach() for x in xs], delta_softplus=True)
        sync(device)

    def fwd_bwd():
        out = fn(*xs, delta_softplus=True)
        out.backward(gout.to(out.dtype))
        for x in xs:
            x.grad = None
        sync(device)

    return {"fwd_ms": 1e3 * timing.time_calls(fwd, warmup, repeats)["wall_s"],
            "fwdbwd_ms": 1e3 * timing.time_calls(fwd_bwd, warmup, repeats)["wall_s"]}


def scan_verdict(ratio) -> str:
    return "n/a" if ratio is None else ("PASS" if ratio <= TARGET_SCAN else "FAIL")


def section_scan(settings, budget, result, save):
    device = settings.device
    backends = scan_functions(device)
    result["backends"] = {name: ("available" if fn else f"not available: {why}") for name, (fn, why) in backends.items()}
    for name, status in result["backends"].items():
        print(f"  {name}: {status}", flush=True)
    result.update(target=f"triton / mamba <= {TARGET_SCAN}x, fwd and fwd+bwd, every shape",
                  agreement=[], rows=[], skipped=[])
    shapes = ss2d_shapes(settings)
    seen = set()
    for shape in shapes:  # agreement once per reduced shape
        key = (min(shape["KD"], ORACLE_MAX_KD), min(shape["L"], ORACLE_MAX_L), shape["G"], shape["N"])
        if key in seen:
            continue
        seen.add(key)
        for name, (fn, why) in backends.items():
            entry = {"backend": name}
            if fn is None:
                entry["error"] = f"skipped: {why}"
            else:
                try:
                    entry.update(agreement(fn, shape, device))
                except Exception as exc:
                    entry.update(error=error_text(exc), traceback=traceback.format_exc(limit=6))
            result["agreement"].append(entry)
            print(f"  agreement {name:>6} {entry.get('shape', key)}: "
                  + (f"fwd rel {entry['fwd_rel']:.1e}, grad rel {entry['grad_rel']:.1e}, "
                     f"{'ok' if entry['ok'] else 'FAIL'}" if "ok" in entry else entry["error"]), flush=True)
        save()
    deadline = 0.2 * budget.total  # the scans' share of the budget
    for dtype_name in settings.scan_dtypes:
        dtype = getattr(torch, dtype_name)
        for shape in shapes:
            row = {**shape, "dtype": dtype_name}
            if budget.elapsed() > deadline:
                row["error"] = "skipped: out of time"
                result["rows"].append(row)
                continue
            try:
                inputs, gout = scan_inputs(shape["batch"], shape["KD"], shape["L"], shape["G"], shape["N"], dtype,
                                           device, seed=shape["KD"])
            except Exception as exc:
                row["error"] = error_text(exc)
                result["rows"].append(row)
                continue
            for name, (fn, why) in backends.items():
                if fn is None:
                    continue
                try:
                    t = time_scan(fn, inputs, gout, device, settings.scan_repeats, settings.warmup + 1)
                    row[f"{name}_fwd_ms"], row[f"{name}_fwdbwd_ms"] = t["fwd_ms"], t["fwdbwd_ms"]
                except Exception as exc:
                    row[f"{name}_error"] = error_text(exc)
                release(device)
            for mode in ("fwd", "fwdbwd"):
                r = timing.ratio(row.get(f"triton_{mode}_ms"), row.get(f"mamba_{mode}_ms"))
                row[f"ratio_{mode}"], row[f"verdict_{mode}"] = r, scan_verdict(r)
            del inputs, gout
            release(device)
            result["rows"].append(row)
            print(f"  {row['network']:>12} {row['batch']}x{row['KD']}x{row['L']} {dtype_name}: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in row.items() if k.endswith("_ms")), flush=True)
            save()
    verdicts = [r.get(f"verdict_{m}") for r in result["rows"] for m in ("fwd", "fwdbwd")]
    result["verdict"] = ("n/a" if not verdicts or "n/a" in verdicts or None in verdicts
                         else "PASS" if all(v == "PASS" for v in verdicts) else "FAIL")


# -------------------------------------------------------------------------------------- cross-scan
def fused_cross_ops():
    """(cross_scan, cross_merge, reason): the fused Triton kernels of swin_umamba.ops, or Nones and why."""
    from swin_umamba.ops.scan_triton import triton_available

    ok, why = triton_available(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    if not ok:
        return None, None, f"not available ({why})"
    from swin_umamba.ops.cross_scan_triton import cross_merge_triton, cross_scan_triton

    return cross_scan_triton, cross_merge_triton, ""


def section_cross_scan(settings, budget, result, save):
    device = settings.device
    dtype = torch.float16 if settings.cuda else torch.float32
    from swin_umamba.ops.cross_scan import cross_merge_torch, cross_scan_torch

    fused_scan, fused_merge, why = fused_cross_ops()
    result.update(fused=("available" if fused_scan else why), dtype=str(dtype).replace("torch.", ""), rows=[])
    print(f"  fused Triton kernels: {result['fused']}", flush=True)
    variants = {"torch eager": (cross_scan_torch, cross_merge_torch)}
    try:
        variants["torch.compile"] = (torch.compile(cross_scan_torch, backend=settings.compile_backend),
                                     torch.compile(cross_merge_torch, backend=settings.compile_backend))
    except Exception as exc:
        result["compile_error"] = error_text(exc)
    if fused_scan is not None:
        variants["fused Triton"] = (fused_scan, fused_merge)
    stages = {}
    for s in ss2d_shapes(settings):
        d, side = s["network_KD"] // 4, math.isqrt(s["network_L"])
        stages.setdefault((s["batch"], d, side), s["network"])
    deadline = 0.3 * budget.total
    for (batch, d, side), network in stages.items():
        if settings.dry:
            d, side = min(d, 8), min(side, 8)
        x = torch.randn(batch, d, side, side, device=device, dtype=dtype)
        ys = torch.randn(batch, 4, d, side * side, device=device, dtype=dtype)
        ref_scan, ref_merge = cross_scan_torch(x), cross_merge_torch(ys, side, side)
        for variant, (scan, merge) in variants.items():
            row = {"network": network, "shape": f"{batch}x{d}x{side}x{side}", "variant": variant}
            if budget.elapsed() > deadline:
                row["error"] = "skipped: out of time"
                result["rows"].append(row)
                continue
            try:
                row["scan_max_abs_diff"] = (scan(x).float() - ref_scan.float()).abs().max().item()
                row["merge_max_abs_diff"] = (merge(ys, side, side).float() - ref_merge.float()).abs().max().item()
                xg, yg = x.clone().requires_grad_(), ys.clone().requires_grad_()

                def run(fn, arg, *rest, backward):
                    def call():
                        out = fn(arg, *rest)
                        if backward:
                            out.sum().backward()
                            arg.grad = None
                        sync(device)
                    return call

                for op, fn, args in (("scan", scan, (xg,)), ("merge", merge, (yg, side, side))):
                    for mode in ("fwd", "fwdbwd"):
                        call = run(fn, *args, backward=mode == "fwdbwd")
                        if mode == "fwd":
                            with torch.no_grad():
                                t = timing.time_calls(call, settings.warmup + 1, settings.scan_repeats)
                        else:
                            t = timing.time_calls(call, settings.warmup + 1, settings.scan_repeats)
                        row[f"{op}_{mode}_ms"] = 1e3 * t["wall_s"]
            except Exception as exc:
                row.update(error=error_text(exc), traceback=traceback.format_exc(limit=6))
            result["rows"].append(row)
            print(f"  {row['shape']:>16} {variant:>13}: "
                  + (row["error"] if "error" in row else
                     ", ".join(f"{k} {v:.3f}" for k, v in row.items() if k.endswith("_ms"))), flush=True)
            save()
        release(device)


# ---------------------------------------------------------------------------------------- training
def training_configs(cuda: bool) -> list[tuple[str, str | None, bool, str]]:
    """(network, scan backend or None, compiled, why it is skipped or "") in the order they run:
    what the targets compare first, so that a short budget still measures them."""
    swin = bench_network.NETWORKS
    needs = "" if cuda else "needs CUDA"
    configs = []
    for net in swin:
        configs += [(net, "mamba", False, needs), (net, "triton", True, needs)]
    configs += [("PlainConvUNet", None, False, ""), ("PlainConvUNet", None, True, "")]
    for net in swin:
        configs += [(net, "triton", False, needs), (net, "torch", False, needs)]
    if not cuda:  # the CPU's own backend, so that a dry run trains a Swin-UMamba network too
        configs.append((swin[-1], "auto", False, ""))
    configs += [(net, "mamba", True, needs) for net in swin]
    return configs


def build_loss(n_outputs: int):
    import numpy as np
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    loss = DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1,
                          weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
    weights = np.array([1 / (2 ** i) for i in range(n_outputs)])
    weights[-1] = 0  # nnU-Net's weights: the lowest resolution does not count
    return DeepSupervisionWrapper(loss, weights / weights.sum())


def optimizer_for(network: str, net):
    """The trainers' optimizers: nnU-Net's SGD for PlainConvUNet, the Swin-UMamba trainers' AdamW."""
    if network == "PlainConvUNet":
        return torch.optim.SGD(net.parameters(), lr=1e-2, weight_decay=3e-5, momentum=0.99, nesterov=True)
    return torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.05, eps=1e-5, betas=(0.9, 0.999))


def compile_counts() -> dict:
    from torch._dynamo.utils import counters

    breaks = dict(counters["graph_break"])
    return {"graph_breaks": sum(breaks.values()), "recompiles": sum(dict(counters["recompiles"]).values()),
            "unique_graphs": dict(counters["stats"]).get("unique_graphs", 0),
            "graph_break_reasons": dict(Counter(breaks).most_common(5))}


def train_iteration(settings, network: str, scan: str | None, compiled: bool) -> dict:
    from torch._dynamo.utils import counters

    from swin_umamba.ops import dispatch

    device, batch = settings.device, settings.batch(network)
    row = {"network": network, "scan": scan, "mode": "compiled" if compiled else "eager", "batch": batch,
           "amp": str(settings.amp_dtype).replace("torch.", "") if settings.amp_dtype else "none"}
    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    net = bench_network.build_network(network, (settings.patch, settings.patch), NUM_CLASSES,
                                      deep_supervision=True).to(device)
    if scan is not None:
        row["scan_used"] = dispatch.selective_scan_backend(device, 16)
        if scan != "auto" and row["scan_used"] != scan:
            raise RuntimeError(f"SWIN_UMAMBA_SCAN={scan} does not apply here: the scan used is {row['scan_used']}")
    with torch.no_grad():
        sizes = [o.shape[-1] for o in net(torch.zeros(1, 1, settings.patch, settings.patch, device=device))]
    scales = [settings.patch // s for s in sizes]
    loss_fn = build_loss(len(scales))
    opt = optimizer_for(network, net)
    scaler = torch.amp.GradScaler(device.type) if settings.amp_dtype == torch.float16 else None
    data = torch.randn(batch, 1, settings.patch, settings.patch, device=device)
    full = torch.randint(0, NUM_CLASSES, (batch, 1, settings.patch, settings.patch), device=device).float()
    target = [full[:, :, ::s, ::s].contiguous() for s in scales]
    call = torch.compile(net, backend=settings.compile_backend) if compiled else net
    row["params_M"] = round(sum(p.numel() for p in net.parameters()) / 1e6, 2)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=settings.amp_dtype, enabled=settings.amp_dtype is not None):
            loss = loss_fn(call(data), target)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
            opt.step()
        return float(loss.detach().cpu())

    warmup = max(settings.warmup, COMPILE_COUNT_ITERS) if compiled else settings.warmup
    t0 = time.perf_counter()
    step()
    sync(device)
    row["first_iter_s"] = round(time.perf_counter() - t0, 2)
    for i in range(1, warmup):
        step()
        if compiled and i == COMPILE_COUNT_ITERS - 1:
            row["compile_counts"] = compile_counts()
    if compiled and "compile_counts" not in row:  # a dry run's single warm-up iteration
        row["compile_counts"] = {**compile_counts(), "iterations": warmup}
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        losses = [step() for _ in range(settings.iters)]
        sync(device)
        elapsed = time.perf_counter() - t0
        row["peak_alloc_GiB"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
        row["peak_reserved_GiB"] = round(torch.cuda.max_memory_reserved(device) / 2**30, 3)
    else:
        with timing.PeakRSS() as mem:
            t0 = time.perf_counter()
            losses = [step() for _ in range(settings.iters)]
            elapsed = time.perf_counter() - t0
        row["peak_rss_MB"] = round(mem.mb, 1)
    row["ms_per_iter"] = round(1e3 * elapsed / settings.iters, 2)
    row["final_loss"] = losses[-1]
    return row


def estimated_seconds(settings, compiled: bool) -> float:
    """A guess of one configuration's time, to leave what does not fit for later sections."""
    if settings.dry:
        return 0.0
    return 100.0 if compiled else 15.0


def section_training(settings, budget, result, save):
    result.update(patch=[settings.patch, settings.patch], num_classes=NUM_CLASSES, warmup=settings.warmup,
                  iters=settings.iters, compile_backend=settings.compile_backend,
                  batches={n: settings.batch(n) for n in (*bench_network.NETWORKS, "PlainConvUNet")}, rows=[])
    for network, scan, compiled, skip in training_configs(settings.cuda):
        base = {"network": network, "scan": scan, "mode": "compiled" if compiled else "eager"}
        if skip:
            row = {**base, "error": f"skipped: {skip}"}
        elif budget.left(settings.train_reserve) < estimated_seconds(settings, compiled):
            row = {**base, "error": "skipped: out of time"}
        else:
            try:
                with scan_backend_env(scan if scan != "auto" else None):
                    row = train_iteration(settings, network, scan, compiled)
            except Exception as exc:
                row = {**base, "error": error_text(exc), "traceback": traceback.format_exc(limit=8)}
            release(settings.device)
        result["rows"].append(row)
        label = f"{network} [{scan or '-'}] {base['mode']}"
        print(f"  {label:>36}: " + (row["error"] if "error" in row else
                                    f"{row['ms_per_iter']:.1f} ms/iter, first iteration {row['first_iter_s']} s, "
                                    f"peak {row.get('peak_alloc_GiB', row.get('peak_rss_MB'))}"), flush=True)
        save()
    result["targets"] = training_targets(result["rows"])
    torch._dynamo.reset()


def training_targets(rows: list[dict]) -> list[dict]:
    """Per Swin-UMamba network: Triton compiled against mamba eager, time and peak memory."""
    def find(network, scan, mode):
        return next((r for r in rows if (r["network"], r["scan"], r["mode"]) == (network, scan, mode)
                     and "error" not in r), None)

    targets = []
    for network in bench_network.NETWORKS:
        ours, theirs = find(network, "triton", "compiled"), find(network, "mamba", "eager")
        for what, key, limit in (("time", "ms_per_iter", TARGET_TRAIN_TIME),
                                 ("peak memory", "peak_alloc_GiB", TARGET_TRAIN_MEMORY)):
            r = timing.ratio(ours.get(key) if ours else None, theirs.get(key) if theirs else None)
            targets.append({"network": network, "what": what, "ratio": r, "target": f"<= {limit}x",
                            "verdict": "n/a" if r is None else ("PASS" if r <= limit else "FAIL"),
                            "binding": network == "SwinUMamba"})
    return targets


def section_compile_counts(settings, budget, result, save, training):
    if not training.get("rows"):
        raise RuntimeError(f"no compiled runs: the training section {training.get('status', 'did not run')}"
                           + (f" ({training['error']})" if training.get("error") else ""))
    result.update(iterations=COMPILE_COUNT_ITERS, target="0 graph breaks and 0 recompiles", rows=[])
    for r in training["rows"]:
        if r["mode"] != "compiled":
            continue
        row = {"network": r["network"], "scan": r["scan"]}
        if "compile_counts" in r:
            c = r["compile_counts"]
            row.update(c, verdict="PASS" if c["graph_breaks"] == 0 and c["recompiles"] == 0 else "FAIL")
        else:
            row["error"] = r.get("error", "no counts")
        result["rows"].append(row)
    measured = [r["verdict"] for r in result["rows"] if "verdict" in r]
    result["verdict"] = "n/a" if not measured else ("PASS" if all(v == "PASS" for v in measured) else "FAIL")


# ------------------------------------------------------------------------------------ nnUNetv2_train
def nnunet_command(name: str, *args: str) -> list[str]:
    """An nnU-Net console command, through its entry point when the script is not on PATH."""
    entry = {"nnUNetv2_plan_and_preprocess":
             ("nnunetv2.experiment_planning.plan_and_preprocess_entrypoints", "plan_and_preprocess_entry"),
             "nnUNetv2_train": ("nnunetv2.run.run_training", "run_training_entry")}[name]
    script = shutil.which(name)
    if script:
        return [script, *args]
    return [sys.executable, "-c", f"import sys; sys.argv[0] = {name!r}; from {entry[0]} import {entry[1]} as f; f()",
            *args]


def tail_lines(text: str, n: int) -> list[str]:
    return [line for line in text.splitlines() if line.strip()][-n:]


def section_nnunet_train(settings, budget, result, save, out_dir):
    from swin_umamba.commands.setup import trainers_dir
    from swin_umamba.demo.layout import CONFIGURATION, DATASET_ID, DATASET_NAME, dataset_source
    from swin_umamba.ops.dispatch import ENV_VAR
    from swin_umamba.pretrained import WEIGHTS_ENV_VAR
    from tests.nnunet_workspace import NnUNetWorkspace
    from tests.synthetic_weights import write_model_only_checkpoint

    device = settings.device.type
    plan_cmd = nnunet_command("nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", CONFIGURATION,
                              "-np", "4", "-npfp", "4")
    train_cmd = nnunet_command("nnUNetv2_train", str(DATASET_ID), CONFIGURATION, "0", "-tr", BENCH_TRAINER,
                               "-device", device)
    result.update(trainer=BENCH_TRAINER, scan="triton", compile="nnUNet_compile=true",
                  commands=[" ".join(plan_cmd[:1] + plan_cmd[-8:]), " ".join(train_cmd[:1] + train_cmd[-7:])])
    if settings.dry:
        result.update(status="skipped", reason="dry run: a real nnUNetv2_train (minutes) runs only without --dry-run")
        return
    if not settings.cuda:
        result["note"] = "on the CPU: nnU-Net does not compile and SWIN_UMAMBA_SCAN=triton falls back"
    root = tempfile.mkdtemp(prefix="gpu_bench_nnunet_")
    ws = NnUNetWorkspace(Path(root), os.pathsep.join([str(trainers_dir()), os.path.join(ROOT, "tests", "nnunet_trainers")]))
    shutil.copytree(dataset_source(), ws.raw / DATASET_NAME)
    weights = ws.root / "vmamba_tiny_v0_synthetic.pth"
    write_model_only_checkpoint(weights)
    env = {**ws.env, ENV_VAR: "triton", "nnUNet_compile": "true", WEIGHTS_ENV_VAR: str(weights),
           "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
    log_path = os.path.join(out_dir, "nnunet_train.log")
    steps = []
    result["steps"] = steps
    try:
        with open(log_path + ".tmp", "w") as log:
            for name, cmd in (("plan_and_preprocess", plan_cmd), ("train", train_cmd)):
                timeout = budget.left() - 5
                step = {"step": name}
                steps.append(step)
                if timeout < 30:
                    step["error"] = "skipped: out of time"
                    break
                timeout = min(timeout, settings.train_timeout)
                t0 = time.perf_counter()
                try:
                    proc = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=timeout)
                    output, step["exit_code"] = proc.stdout + proc.stderr, proc.returncode
                except subprocess.TimeoutExpired as exc:
                    output = ((exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes)
                              else exc.stdout or "") + ((exc.stderr or b"").decode(errors="replace")
                                                       if isinstance(exc.stderr, bytes) else exc.stderr or "")
                    step.update(exit_code=None, error=f"timed out after {timeout:.0f} s")
                step["seconds"] = round(time.perf_counter() - t0, 1)
                step["last_lines"] = tail_lines(output, 12)
                log.write(f"==== {' '.join(cmd)}\n{output}\n")
                print(f"  {name}: exit code {step['exit_code']} in {step['seconds']} s", flush=True)
                for line in step["last_lines"][-4:]:
                    print(f"    {line}", flush=True)
                save()
                if step["exit_code"] != 0:
                    break
        os.replace(log_path + ".tmp", log_path)
        fold = ws.results / DATASET_NAME / f"{BENCH_TRAINER}__nnUNetPlans__{CONFIGURATION}" / "fold_0"
        logs = sorted(fold.glob("training_log_*.txt")) if fold.is_dir() else []
        if logs:
            result["training_log_last_lines"] = tail_lines(logs[-1].read_text(errors="replace"), 12)
        result["checkpoint_final"] = (fold / "checkpoint_final.pth").is_file()
        result["ended_cleanly"] = bool(steps and all(s.get("exit_code") == 0 for s in steps)
                                       and len(steps) == 2 and result["checkpoint_final"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------------------------ report
def tables(report: dict) -> list[tuple[str, list, list]]:
    """(title, columns, rows) of every table, for the terminal and for Markdown."""
    n = timing.number
    sections = report["sections"]
    out = []
    scan = sections.get("scan", {})
    if scan.get("rows"):
        cols = [("network", "<12", n("network", "")), ("batch x KD x L", ">16",
                                                          lambda r: f"{r['batch']}x{r['KD']}x{r['L']}"),
                ("calls", ">5", n("calls", "d")), ("dtype", "<7", n("dtype", ""))]
        for mode in ("fwd", "fwdbwd"):
            cols += [(f"{b} {mode} ms", ">12", n(f"{b}_{mode}_ms", ".3f")) for b in ("triton", "mamba", "torch")]
            cols += [(f"{mode} T/M", ">8", n(f"ratio_{mode}", ".2f")), (f"{mode}", ">6", n(f"verdict_{mode}", ""))]
        cols.append(("note", "<10", lambda r: r.get("error")))
        out.append((f"Selective scan (target: Triton/mamba <= {TARGET_SCAN}x)", cols, scan["rows"]))
    if scan.get("agreement"):
        cols = [("backend", "<7", n("backend", "")), ("reduced shape", ">14", n("shape", "")),
                ("fwd rel err", ">11", n("fwd_rel", ".1e")), ("grad rel err", ">12", n("grad_rel", ".1e")),
                ("ok", ">4", lambda r: None if "ok" not in r else ("ok" if r["ok"] else "FAIL")),
                ("note", "<10", lambda r: r.get("error"))]
        out.append((f"Scan agreement with the float64 oracle (float32 inputs; ok: fwd <= {FWD_REL_TOL:g}, "
                    f"grads <= {GRAD_REL_TOL:g})", cols, scan["agreement"]))
    cross = sections.get("cross_scan", {})
    if cross.get("rows"):
        cols = [("network", "<12", n("network", "")), ("B x D x H x W", ">16", n("shape", "")),
                ("variant", "<13", n("variant", ""))]
        cols += [(f"{op} {mode} ms", ">14", n(f"{op}_{mode}_ms", ".3f")) for op in ("scan", "merge")
                 for mode in ("fwd", "fwdbwd")]
        cols += [("max diff", ">9", lambda r: None if "scan_max_abs_diff" not in r else
                  f"{max(r['scan_max_abs_diff'], r['merge_max_abs_diff']):.1e}"), ("note", "<10", n("error", ""))]
        out.append((f"Cross-scan / cross-merge ({cross.get('dtype')}; fused Triton: {cross.get('fused')})",
                    cols, cross["rows"]))
    train = sections.get("training", {})
    if train.get("rows"):
        cols = [("network", "<13", n("network", "")), ("scan", "<6", n("scan", "")), ("mode", "<8", n("mode", "")),
                ("batch", ">5", n("batch", "d")), ("ms/iter", ">9", n("ms_per_iter", ".1f")),
                ("peak GiB", ">8", n("peak_alloc_GiB", ".2f")), ("first iter s", ">12", n("first_iter_s", ".1f")),
                ("note", "<10", n("error", ""))]
        out.append(("Training iteration (256x256 unless a dry run, AMP, deep supervision)", cols, train["rows"]))
    if train.get("targets"):
        cols = [("network", "<12", n("network", "")), ("Triton compiled / mamba eager", "<30", n("what", "")),
                ("ratio", ">6", n("ratio", ".2f")), ("target", ">8", n("target", "")),
                ("verdict", ">7", n("verdict", ""))]
        out.append(("Training targets", cols, train["targets"]))
    counts = sections.get("compile_counts", {})
    if counts.get("rows"):
        cols = [("network", "<13", n("network", "")), ("scan", "<6", n("scan", "")),
                ("graph breaks", ">12", n("graph_breaks", "d")), ("recompiles", ">10", n("recompiles", "d")),
                ("graphs", ">6", n("unique_graphs", "d")), ("verdict", ">7", n("verdict", "")),
                ("note", "<10", n("error", ""))]
        out.append((f"torch.compile over {COMPILE_COUNT_ITERS} iterations (target: 0 breaks, 0 recompiles)",
                    cols, counts["rows"]))
    nn = sections.get("nnunet_train", {})
    if nn.get("steps"):
        cols = [("step", "<20", n("step", "")), ("exit code", ">9", n("exit_code", "")),
                ("seconds", ">8", n("seconds", ".1f")), ("last line", "<40",
                                                         lambda r: (r.get("last_lines") or [None])[-1]),
                ("note", "<10", n("error", ""))]
        out.append((f"nnUNetv2_train ({nn.get('trainer')}, SWIN_UMAMBA_SCAN=triton, compiled): "
                    f"ended cleanly: {nn.get('ended_cleanly')}", cols, nn["steps"]))
    return out


def markdown(report: dict) -> str:
    meta = report["meta"]
    lines = [f"# GPU benchmark{' (dry run)' if meta['dry_run'] else ''}", "",
             f"{meta['device_name']}, torch {meta['torch']} (CUDA {meta['cuda']}), triton {meta['triton']}, "
             f"Python {meta['python']}; {meta['date']}; {meta['elapsed_s']:.0f} s of a {meta['budget_s']:.0f} s budget.",
             ""]
    for name in SECTIONS:
        sec = report["sections"].get(name, {"status": "not run"})
        status = sec.get("status", "running")
        extra = sec.get("error") or sec.get("reason") or ""
        lines.append(f"- `{name}`: {status}{' (' + extra + ')' if extra else ''}"
                     + (f", verdict {sec['verdict']}" if "verdict" in sec else ""))
    for title, cols, rows in tables(report):
        lines += ["", f"## {title}", "", timing.markdown_table(cols, rows)]
    return "\n".join(lines) + "\n"


def write_atomic(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def environment(settings, budget) -> dict:
    from swin_umamba.ops import dispatch

    try:
        import triton

        triton_version = triton.__version__
    except Exception as exc:
        triton_version = f"not importable ({error_text(exc)})"
    cuda = settings.cuda and torch.cuda.is_available()
    return {"device": str(settings.device), "device_name": torch.cuda.get_device_name(settings.device) if cuda
            else platform.processor() or platform.machine(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "triton": triton_version, "python": platform.python_version(),
            "mamba_available": dispatch.mamba_scan_fn() is not None, "mamba_import_error": dispatch.mamba_error(),
            "dry_run": settings.dry, "budget_s": budget.total, "sections": list(settings.sections),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "elapsed_s": 0.0,
            "triton_interpreter": settings.triton_interpreter}


def run(settings, budget, out_dir: str) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    stem = "gpu_bench_dry_run" if settings.dry else "gpu_bench"
    report = {"meta": environment(settings, budget), "sections": {}}
    paths = (os.path.join(out_dir, stem + ".json"), os.path.join(out_dir, stem + ".md"))

    def save():
        report["meta"]["elapsed_s"] = round(budget.elapsed(), 1)
        write_atomic(paths[0], json.dumps(report, indent=1, default=str))
        write_atomic(paths[1], markdown(report))

    meta = report["meta"]
    print(f"{meta['device_name']}, torch {meta['torch']} (CUDA {meta['cuda']}), triton {meta['triton']}; "
          f"mamba kernel: {meta['mamba_available']} {meta['mamba_import_error'] or ''}", flush=True)
    steps = {
        "scan": lambda res: section_scan(settings, budget, res, save),
        "cross_scan": lambda res: section_cross_scan(settings, budget, res, save),
        "training": lambda res: section_training(settings, budget, res, save),
        "compile_counts": lambda res: section_compile_counts(settings, budget, res, save,
                                                             report["sections"].get("training", {})),
        "nnunet_train": lambda res: section_nnunet_train(settings, budget, res, save, out_dir),
    }
    for name in SECTIONS:
        result = report["sections"].setdefault(name, {})
        if name not in settings.sections:
            result.update(status="skipped", reason="not among --sections")
            continue
        print(f"\n== {name} ({budget.elapsed():.0f} s of {budget.total:.0f} s)", flush=True)
        t0 = time.perf_counter()
        result["status"] = "running"
        try:
            steps[name](result)
            if result["status"] == "running":
                result["status"] = "ok"
        except Exception as exc:  # record it and go on with the next section
            result.update(status="error", error=error_text(exc), traceback=traceback.format_exc(limit=8))
            print(f"  error: {result['error']}", flush=True)
        result["seconds"] = round(time.perf_counter() - t0, 1)
        save()
    print()
    for title, cols, rows in tables(report):
        print(f"\n{title}")
        timing.print_table(cols, rows)
    print(f"\nwrote {paths[0]} and {paths[1]} ({budget.elapsed():.0f} s)")
    return report


def use_vectorised_interpreter() -> str:
    """Triton's interpreter calls a scan's or reduction's combine function once per element in Python;
    the test suite's replacements (tests/test_scan_triton.py) call it once per step on whole slices,
    in the same order, about 100x faster. A dry run uses them where they import."""
    try:
        from triton.runtime import interpreter

        from tests.test_scan_triton import _vectorised_generic_reduce, _vectorised_generic_scan
    except Exception as exc:
        return f"Triton's own interpreter ({error_text(exc)})"
    interpreter.ScanOps.generic_scan = _vectorised_generic_scan
    interpreter.ReduceOps.generic_reduce = _vectorised_generic_reduce
    return "Triton's interpreter with the vectorised scan and reduce of tests/test_scan_triton.py"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for the JSON and Markdown (default %(default)s)")
    parser.add_argument("--device", default="cuda", help="torch device (default %(default)s)")
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny shapes and single repeats: every section in seconds, also on the CPU")
    parser.add_argument("--budget-s", type=float, default=450.0,
                        help="no measurement starts after this many seconds (default %(default)s)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="sections to run (default: all)")
    parser.add_argument("--patch", type=int, default=PATCH, help="square patch side (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations (default %(default)s)")
    parser.add_argument("--iters", type=int, default=10, help="timed training iterations (default %(default)s)")
    parser.add_argument("--scan-repeats", type=int, default=10,
                        help="timed calls per scan and cross-scan measurement, median (default %(default)s)")
    parser.add_argument("--scan-dtypes", nargs="+", choices=("float32", "float16", "bfloat16"),
                        default=["float32", "float16"], help="dtypes of u, delta, B, C (default: %(default)s)")
    parser.add_argument("--compile-backend", default=None,
                        help="torch.compile backend (default: inductor on CUDA, eager on the CPU)")
    parser.add_argument("--train-reserve-s", type=float, default=150.0,
                        help="seconds of the budget the training section leaves to nnunet_train (default %(default)s)")
    parser.add_argument("--train-timeout-s", type=float, default=300.0,
                        help="at most this long for each nnU-Net command (default %(default)s)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here (use --device cpu --dry-run for a dry run)")
    settings = Settings(args)
    if device.type == "cpu":
        # Triton runs CPU tensors under its interpreter, which must be chosen before the kernels are defined
        os.environ["TRITON_INTERPRET"] = "1"
        settings.triton_interpreter = use_vectorised_interpreter() if args.dry_run else "Triton's own interpreter"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as nnU-Net's trainer sets it
    run(settings, Budget(args.budget_s), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
