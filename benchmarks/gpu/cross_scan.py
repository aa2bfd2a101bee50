"""Section ``cross_scan``: SS2D's cross-scan (four directions from a feature map) and cross-merge (their
sum back in row-major order) at the shape cases' SS2D shapes, float16 on CUDA: the fused Triton
kernels where ``swin_umamba.ops`` has them, PyTorch eager, and torch.compile of the PyTorch version,
each checked against the PyTorch reference (``swin_umamba.ops.cross_scan``). The 3D cases' SS3D
cross-scan and cross-merge (``cross_scan_3d``, ``cross_merge_3d``: no fused kernel) at the volumes
their SS3D blocks see, recorded from one forward: PyTorch eager and torch.compile."""
from __future__ import annotations

import contextlib
import functools
import math
import traceback

import torch

from benchmarks import timing
from benchmarks.gpu.common import ShapeCase, error_text, release, scan_shapes, sync

NAME = "cross_scan"


def record_row(ctx, result: dict, row: dict, variant: str, width: int) -> None:
    """Keep one measured row, print its line (its timings, or its error) and save the report so far."""
    result["rows"].append(row)
    print(f"  {row['shape']:>{width}} {variant:>13}: "
          + (row["error"] if "error" in row else
             ", ".join(f"{k} {v:.3f}" for k, v in row.items() if k.endswith("_ms"))), flush=True)
    ctx.save()


def fused_cross_ops():
    """(cross_scan, cross_merge, reason): the fused Triton kernels of swin_umamba.ops, or Nones and why."""
    from swin_umamba.ops.scan_triton import triton_available

    ok, why = triton_available(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    if not ok:
        return None, None, f"not available ({why})"
    from swin_umamba.ops.cross_scan_triton import cross_merge_triton, cross_scan_triton

    return cross_scan_triton, cross_merge_triton, ""


@functools.lru_cache(maxsize=None)
def volumes_3d(case: ShapeCase) -> tuple:
    """(D, Z, H, W, K) of every SS3D cross-scan in one forward of a 3D case's network, batch 1, in call order."""
    import swin_umamba.nets.vmamba3d as vmamba3d

    net = case.build(4, deep_supervision=False).eval()
    seen = []
    original = vmamba3d.cross_scan_3d

    def recording(x, directions=4):
        seen.append((*x.shape[1:], directions))
        return original(x, directions)

    vmamba3d.cross_scan_3d = recording
    try:
        with torch.no_grad():
            net(torch.zeros(1, 1, *case.patch))
    finally:
        vmamba3d.cross_scan_3d = original
    return tuple(seen)


def time_pair(scan, merge, x, ys, sizes, settings, device) -> dict:
    """Median ms of scan(x) and merge(ys, *sizes), forward (no_grad) and forward+backward."""
    xg, yg = x.clone().requires_grad_(), ys.clone().requires_grad_()
    row = {}
    for op, fn, arg, rest in (("scan", scan, xg, ()), ("merge", merge, yg, sizes)):
        for mode in ("fwd", "fwdbwd"):
            def call(fn=fn, arg=arg, rest=rest, backward=mode == "fwdbwd"):
                out = fn(arg, *rest)
                if backward:
                    out.sum().backward()
                    arg.grad = None
                sync(device)

            with torch.no_grad() if mode == "fwd" else contextlib.nullcontext():
                t = timing.time_calls(call, settings.warmup + 1, settings.scan_repeats)
            row[f"{op}_{mode}_ms"] = 1e3 * t["wall_s"]
    return row


def eager_and_compiled(scan, merge, settings, result, error_key: str) -> dict:
    """{"torch eager": (scan, merge), "torch.compile": both compiled}; a compile that fails is recorded
    under `error_key` in `result` and leaves the eager pair alone."""
    variants = {"torch eager": (scan, merge)}
    try:
        variants["torch.compile"] = (torch.compile(scan, backend=settings.compile_backend),
                                     torch.compile(merge, backend=settings.compile_backend))
    except Exception as exc:
        result[error_key] = error_text(exc)
    return variants


def run_3d(ctx, result, dtype, deadline) -> None:
    """SS3D's cross-scan and cross-merge at each 3D case's volumes: PyTorch eager and torch.compile."""
    from swin_umamba.ops.cross_scan import cross_merge_3d, cross_scan_3d

    settings, budget, device = ctx.settings, ctx.budget, ctx.settings.device
    variants = eager_and_compiled(cross_scan_3d, cross_merge_3d, settings, result, "compile_error_3d")
    volumes = {}
    for case in settings.cases:
        if len(case.patch) == 3:
            for volume in volumes_3d(case):
                volumes.setdefault((settings.batch(case.network, case.patch), *volume), case.network)
    for (batch, d, z, h, w, k), network in volumes.items():
        if settings.dry:
            d = min(d, 8)
        x = torch.randn(batch, d, z, h, w, device=device, dtype=dtype)
        ys = torch.randn(batch, k, d, z * h * w, device=device, dtype=dtype)
        ref_scan, ref_merge = cross_scan_3d(x, k), cross_merge_3d(ys, z, h, w)
        for variant, (scan, merge) in variants.items():
            row = {"network": network, "shape": f"{batch}x{d}x{z}x{h}x{w}", "directions": k, "variant": variant}
            if budget.elapsed() > deadline:
                row["error"] = "skipped: out of time"
                result["rows"].append(row)
                continue
            try:
                row["scan_max_abs_diff"] = (scan(x, k).float() - ref_scan.float()).abs().max().item()
                row["merge_max_abs_diff"] = (merge(ys, z, h, w).float() - ref_merge.float()).abs().max().item()
                row.update(time_pair(functools.partial(scan, directions=k), merge, x, ys, (z, h, w), settings,
                                     device))
            except Exception as exc:
                row.update(error=error_text(exc), traceback=traceback.format_exc(limit=6))
            record_row(ctx, result, row, variant, width=20)
        release(device)


def run(ctx, result) -> None:
    settings, budget, device = ctx.settings, ctx.budget, ctx.settings.device
    dtype = torch.float16 if settings.cuda else torch.float32
    from swin_umamba.ops.cross_scan import cross_merge_torch, cross_scan_torch

    fused_scan, fused_merge, why = fused_cross_ops()
    result.update(fused=("available" if fused_scan else why), dtype=str(dtype).replace("torch.", ""), rows=[])
    print(f"  fused Triton kernels: {result['fused']}", flush=True)
    variants = eager_and_compiled(cross_scan_torch, cross_merge_torch, settings, result, "compile_error")
    if fused_scan is not None:
        variants["fused Triton"] = (fused_scan, fused_merge)
    stages = {}
    for s in scan_shapes(settings):
        if len(s["patch"]) != 2:  # the four directions of a 2D feature map
            continue
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
            record_row(ctx, result, row, variant, width=16)
        release(device)
    run_3d(ctx, result, dtype, deadline)


def tables(result: dict) -> list[tuple[str, list, list]]:
    n = timing.number
    if not result.get("rows"):
        return []
    cols = [("network", "<12", n("network", "")), ("B x D x (Z x) H x W", ">20", n("shape", "")),
            ("variant", "<13", n("variant", ""))]
    cols += [(f"{op} {mode} ms", ">14", n(f"{op}_{mode}_ms", ".3f")) for op in ("scan", "merge")
             for mode in ("fwd", "fwdbwd")]
    cols += [("max diff", ">9", lambda r: None if "scan_max_abs_diff" not in r else
              f"{max(r['scan_max_abs_diff'], r['merge_max_abs_diff']):.1e}"), ("note", "<10", n("error", ""))]
    return [(f"Cross-scan / cross-merge ({result.get('dtype')}; fused Triton: {result.get('fused')})",
             cols, result["rows"])]
