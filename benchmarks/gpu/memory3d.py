"""Section ``memory3d``: the calibration points of the planner's 3D memory model.

Peak memory of one training step of each 3D network (``benchmarks.measure_memory``'s step: AMP
float16, deep supervision, DC+CE, AdamW; every depth stride 1, the memory model's convention) at a
few patches, batch sizes and class counts, with the least-squares fit of the model's constants. The
points have the form of ``memory_model.json``'s measurements, so that ``networks_3d`` can be fitted
from them. A dry run accounts the memory at tiny patches on the CPU instead (as ``measure_memory``
does without CUDA) to show the path works.
"""
from __future__ import annotations

import gc
import traceback

import torch

from benchmarks import measure_memory, timing
from benchmarks.gpu.common import error_text, release
from swin_umamba.network_registry import NETWORKS

NAME = "memory3d"
PATCHES = ((16, 128, 128), (32, 128, 128), (32, 160, 160))
BATCHES = (1, 2)
CLASSES = (2, 16)  # two class counts separate the per-class term
DRY_PATCHES = ((8, 32, 32), (16, 32, 32))
DRY_BATCHES = (1, 2)
DRY_CLASSES = (2,)
MIN_POINT_S = 10  # a point is not started with less of the budget left


def run(ctx, result) -> None:
    settings, budget, device = ctx.settings, ctx.budget, ctx.settings.device
    patches, batches, classes = (DRY_PATCHES, DRY_BATCHES, DRY_CLASSES) if settings.dry else (PATCHES, BATCHES, CLASSES)
    result.update(method=("torch.cuda.max_memory_allocated of a training step after a warm-up step" if settings.cuda
                          else "CPU accounting (parameters and saved activations), not a measurement"),
                  depth_strides="every depth stride 1", points={}, fits={}, skipped=[])
    amp = torch.float16 if settings.cuda else None
    for name, network in NETWORKS.items():
        points = result["points"][name] = []
        for num_classes in classes:
            torch.manual_seed(0)
            net = measure_memory.build_network(name, 1, num_classes, dims=3).to(device).train()
            step = measure_memory.Step(net, device, amp)
            for patch in patches:
                for batch in batches:
                    label = f"{network.cls_3d.__name__} C={num_classes} {batch}x{'x'.join(map(str, patch))}"
                    if budget.left(settings.train_reserve) < MIN_POINT_S:
                        result["skipped"].append(f"{label}: out of time")
                        continue
                    point = {"batch_size": batch, "patch_size": list(patch), "num_classes": num_classes}
                    try:
                        if settings.cuda:
                            point.update(measure_memory.measure_cuda(step, batch, patch, 1, num_classes))
                        else:
                            point.update(measure_memory.account_cpu(step, batch, patch, 1, num_classes))
                    except torch.OutOfMemoryError:
                        result["skipped"].append(f"{label}: out of memory")
                        step.optimizer.zero_grad(set_to_none=True)
                        release(device)
                        break  # larger batches of this patch do not fit either
                    except Exception as exc:
                        result["skipped"].append(f"{label}: {error_text(exc)}")
                        result.setdefault("tracebacks", []).append(traceback.format_exc(limit=6))
                        continue
                    points.append(point)
                    print(f"  {label}: {point['allocated_bytes'] / measure_memory.GIB:.3f} GiB", flush=True)
                    ctx.save()
            del step, net
            gc.collect()
            release(device)
        if len(points) >= 3:
            result["fits"][name] = {"class": network.class_path_3d, **measure_memory.fit(points)}
    result["status"] = "ok" if all(len(p) >= 3 for p in result["points"].values()) else "partial"


def tables(result: dict) -> list[tuple[str, list, list]]:
    n = timing.number
    rows = [{"network": name, **p, "GiB": p["allocated_bytes"] / measure_memory.GIB,
             "reserved_GiB": p["reserved_bytes"] / measure_memory.GIB if "reserved_bytes" in p else None}
            for name, points in result.get("points", {}).items() for p in points]
    if not rows:
        return []
    cols = [("network", "<12", n("network", "")), ("classes", ">7", n("num_classes", "d")),
            ("batch", ">5", n("batch_size", "d")), ("patch", "<12", lambda r: "x".join(map(str, r["patch_size"]))),
            ("allocated GiB", ">13", n("GiB", ".3f")), ("reserved GiB", ">12", n("reserved_GiB", ".3f"))]
    out = [(f"3D memory-model points ({result.get('method')}; {result.get('depth_strides')})", cols, rows)]
    fits = [{"network": k, **v} for k, v in result.get("fits", {}).items()]
    if fits:
        out.append(("3D memory-model fit: allocated = fixed + B*D*H*W*(per voxel + per voxel per class * C)",
                    [("network", "<12", n("network", "")), ("fixed bytes", ">12", n("fixed_bytes", ".0f")),
                     ("per voxel", ">10", n("per_pixel_bytes", ".1f")),
                     ("per voxel per class", ">19", n("per_pixel_per_class_bytes", ".2f")),
                     ("max rel err", ">11", n("max_relative_error", ".3f"))], fits))
    return out
