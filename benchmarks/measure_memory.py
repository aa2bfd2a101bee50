"""Measure the training memory of the Swin-UMamba networks and write the planner's memory model.

On a CUDA machine this runs real nnU-Net-style training steps (AMP autocast, as
nnUNetTrainer.train_step: float16 + GradScaler by default; deep supervision with
nnU-Net's DC+CE loss and weights; gradient clipping; AdamW step) for each
network, number of classes, patch and batch size, records
torch.cuda.max_memory_allocated / max_memory_reserved of a step taken after a
warm-up step (so AdamW's state exists), fits

    allocated = fixed + B*H*W * (per_pixel + per_pixel_per_class * C)

by least squares and writes the JSON the planner reads
(swin_umamba/nnunet_plans/memory_model.json)::

    python -m benchmarks.measure_memory --out nnunet_plans/memory_model.json

With --dims 3 it measures the 3D networks instead (patches DxHxW, every depth
stride 1: the most memory per voxel, so the estimate errs on the safe side for
data whose depth nnU-Net pools) and replaces the `networks_3d` section of the
existing model file --out, keeping its 2D part::

    python -m benchmarks.measure_memory --dims 3 --out nnunet_plans/memory_model.json

The shipped 3D section is such a run's CPU accounting (provisional). benchmarks/gpu_device_run.sh does
not run this yet: the GPU calibration of the 3D figures is the command above on a lent GPU.

Without CUDA (or with --device cpu) it is a dry run at tiny sizes: the same
training step runs once per network in float32 to show it works, and the model
is fitted to an *accounting* of the memory instead of a measurement: parameter
memory (fp32 weights, gradients, two AdamW moments, an fp16 copy for autocast)
plus the bytes of the distinct activation tensors autograd saves for backward
(saved-tensor hooks, float32). Such a file is marked "provisional": true.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from swin_umamba.network_registry import NETWORKS

# every network is measured at each patch: a multiple of all their strides
NETWORK_STRIDE = math.lcm(*(s for n in NETWORKS.values() for s in n.stride))

GIB = 1024 ** 3


def parse_patch(text: str) -> tuple[int, ...]:
    """HxW, or DxHxW for --dims 3 (any depth: the 3D networks are measured with every depth stride 1)."""
    try:
        sides = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"patch {text!r}: expected HxW or DxHxW, e.g. 256x256 or 16x128x128") from None
    if len(sides) not in (2, 3) or min(sides) <= 0 or any(s % NETWORK_STRIDE for s in sides[-2:]):
        raise argparse.ArgumentTypeError(
            f"patch {text!r}: HxW or DxHxW, height and width positive multiples of {NETWORK_STRIDE}")
    return sides


def build_network(name: str, in_channels: int, num_classes: int, dims: int = 2) -> torch.nn.Module:
    network = NETWORKS[name]
    if dims == 3:
        no_depth_pooling = tuple(c[0] for c in network.cls_3d.DEPTH_STRIDE_CHOICES)
        return network.cls_3d(in_channels, num_classes, no_depth_pooling, deep_supervision=True)
    return network.network_class()(in_channels, num_classes, deep_supervision=True)


def build_loss(network: torch.nn.Module):
    """nnU-Net's loss for label (not region) datasets, wrapped for deep supervision as nnUNetTrainer does."""
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    loss = DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1,
                          weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
    weights = np.array([1 / (2 ** i) for i in range(len(network.OUTPUT_SCALES))])
    weights[-1] = 0
    return DeepSupervisionWrapper(loss, weights / weights.sum())


def make_batch(network, batch: int, patch, in_channels: int, num_classes: int, device):
    data = torch.randn(batch, in_channels, *patch, device=device)
    scales = [tuple(s) if isinstance(s, (tuple, list)) else (s,) * len(patch) for s in network.OUTPUT_SCALES]
    target = [torch.randint(0, num_classes, (batch, 1, *(math.ceil(p / f) for p, f in zip(patch, s))),
                            device=device).float() for s in scales]
    return data, target


class Step:
    """One training step as nnUNetTrainer.train_step, with the Swin-UMamba trainers' AdamW."""

    def __init__(self, network, device, amp_dtype):
        self.network = network
        self.device = device
        self.loss = build_loss(network)
        self.optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4, weight_decay=0.05, eps=1e-5)
        self.amp = device.type == "cuda"
        self.amp_dtype = amp_dtype
        self.scaler = torch.amp.GradScaler("cuda") if self.amp and amp_dtype == torch.float16 else None

    def __call__(self, data, target) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        if self.amp:
            with torch.autocast("cuda", dtype=self.amp_dtype):
                output = self.network(data)
                loss = self.loss(output, target)
        else:
            output = self.network(data)
            loss = self.loss(output, target)
        del output
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.optimizer.step()
        return float(loss.detach())


# --- CUDA: measurement -------------------------------------------------------------------------------------------

def measure_cuda(step: Step, batch: int, patch, in_channels: int, num_classes: int) -> dict:
    device = step.device
    data, target = make_batch(step.network, batch, patch, in_channels, num_classes, device)
    step(data, target)  # warm-up: AdamW state, cuDNN/cuBLAS workspaces, autotuning
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    step(data, target)
    torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    free, total = torch.cuda.mem_get_info(device)
    result = {
        "allocated_bytes": torch.cuda.max_memory_allocated(device),
        "reserved_bytes": torch.cuda.max_memory_reserved(device),
        # memory the device reports in use that PyTorch's allocator does not hold: CUDA context, libraries
        "outside_allocator_bytes": (total - free) - torch.cuda.memory_reserved(device),
        "step_seconds": round(seconds, 4),
    }
    del data, target
    return result


# --- CPU: dry run by accounting ------------------------------------------------------------------------------------

def parameter_bytes(network) -> int:
    """fp32 weights + fp32 gradients + AdamW's two fp32 moments + the fp16 copies autocast caches."""
    n = sum(p.numel() for p in network.parameters())
    return n * (4 + 4 + 8 + 2)


def saved_activation_bytes(step: Step, batch: int, patch, in_channels: int, num_classes: int) -> int:
    """Bytes of the distinct non-parameter tensors autograd keeps for backward (forward and loss)."""
    network = step.network
    param_storages = {p.untyped_storage().data_ptr() for p in network.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in param_storages:
            seen[ptr] = max(seen.get(ptr, 0), storage.nbytes())
        return t

    data, target = make_batch(network, batch, patch, in_channels, num_classes, step.device)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        output = network(data)
        loss = step.loss(output, target)
    # outputs and loss stay alive until backward as well
    outputs = sum(o.untyped_storage().nbytes() for o in output if o.untyped_storage().data_ptr() not in seen)
    del loss, output
    return sum(seen.values()) + outputs


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def account_cpu(step: Step, batch: int, patch, in_channels: int, num_classes: int) -> dict:
    activations = saved_activation_bytes(step, batch, patch, in_channels, num_classes)
    return {"allocated_bytes": parameter_bytes(step.network) + activations, "saved_activation_bytes": activations}


# --- fit ------------------------------------------------------------------------------------------------------------

def fit(points: list[dict]) -> dict:
    """Least squares allocated = fixed + P*(per_pixel + per_pixel_per_class*C), P = B*H*W (B*D*H*W in 3D)."""
    pixels = np.array([p["batch_size"] * math.prod(p["patch_size"]) for p in points], dtype=np.float64)
    classes = np.array([p["num_classes"] for p in points], dtype=np.float64)
    y = np.array([p["allocated_bytes"] for p in points], dtype=np.float64)
    with_classes = len(set(classes.tolist())) > 1
    columns = [np.ones_like(pixels), pixels] + ([pixels * classes] if with_classes else [])
    coef, *_ = np.linalg.lstsq(np.stack(columns, 1), y, rcond=None)
    fixed, per_pixel = float(coef[0]), float(coef[1])
    per_class = float(coef[2]) if with_classes else 0.0
    if per_class < 0:  # noise: refit without the class term
        coef, *_ = np.linalg.lstsq(np.stack(columns[:2], 1), y, rcond=None)
        fixed, per_pixel, per_class = float(coef[0]), float(coef[1]), 0.0
    predicted = fixed + pixels * (per_pixel + per_class * classes)
    rel = np.abs(predicted - y) / y
    return {"fixed_bytes": round(max(fixed, 0.0)), "per_pixel_bytes": round(per_pixel, 2),
            "per_pixel_per_class_bytes": round(per_class, 3), "max_relative_error": round(float(rel.max()), 4)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where to write the memory model JSON")
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None,
                        help="default: cuda when available, else a cpu dry run")
    parser.add_argument("--networks", nargs="+", choices=sorted(NETWORKS), default=sorted(NETWORKS))
    parser.add_argument("--patches", nargs="+", type=parse_patch, default=None,
                        help="HxW patches (multiples of 32); default 128x128 256x256 384x384 512x512 on cuda, "
                             "32x32 64x64 on cpu")
    parser.add_argument("--batches", nargs="+", type=int, default=None,
                        help="batch sizes; default 1 2 4 8 on cuda, 1 2 on cpu")
    parser.add_argument("--num-classes", nargs="+", type=int, default=[2, 16],
                        help="segmentation heads to measure (two values separate the per-class term)")
    parser.add_argument("--in-channels", type=int, default=1)
    parser.add_argument("--dims", type=int, choices=[2, 3], default=2,
                        help="2: the 2D networks, a new model file; 3: the 3D networks, written into the "
                             "networks_3d section of the existing model file --out (default 2)")
    parser.add_argument("--amp-dtype", choices=["float16", "bfloat16"], default="float16",
                        help="autocast dtype on cuda (nnU-Net's autocast('cuda') default is float16)")
    parser.add_argument("--context-bytes", type=float, default=None,
                        help="cpu dry run only: CUDA context to assume (default 512 MiB)")
    parser.add_argument("--reserved-over-allocated", type=float, default=1.1,
                        help="cpu dry run only: allocator overhead factor to assume (default 1.1)")
    args = parser.parse_args(argv)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    on_cuda = device.type == "cuda"
    if args.dims == 3:
        patches = args.patches or ([(16, 64, 64), (32, 128, 128), (64, 128, 128)] if on_cuda else
                                   [(4, 32, 32), (8, 32, 32), (4, 64, 64)])
        if not args.out.is_file():
            parser.error(f"--dims 3 writes into an existing memory model file; {args.out} does not exist")
    else:
        patches = args.patches or ([(128, 128), (256, 256), (384, 384), (512, 512)] if on_cuda else
                                   [(32, 32), (64, 64)])
    if any(len(p) != args.dims for p in patches):
        parser.error(f"--dims {args.dims} takes {'DxHxW' if args.dims == 3 else 'HxW'} patches")
    batches = sorted(set(args.batches or ([1, 2, 4, 8] if on_cuda else [1, 2])))
    amp_dtype = getattr(torch, args.amp_dtype)
    if on_cuda:
        torch.backends.cudnn.benchmark = True  # as nnUNetTrainer

    from swin_umamba.ops import selective_scan_backend

    networks_out, raw = {}, {}
    context_seen = []
    for name in args.networks:
        points = []
        for num_classes in args.num_classes:
            torch.manual_seed(0)
            network = build_network(name, args.in_channels, num_classes, args.dims).to(device).train()
            step = Step(network, device, amp_dtype)
            if not on_cuda and num_classes == args.num_classes[0]:
                # show that the real step runs (float32, smallest configuration), then account
                data, target = make_batch(network, batches[0], patches[0], args.in_channels, num_classes, device)
                t0 = time.perf_counter()
                step(data, target)
                print(f"{name} C={num_classes}: cpu training step {batches[0]}x{patches[0]} ran in "
                      f"{time.perf_counter() - t0:.1f}s, peak RSS {peak_rss_bytes() / GIB:.2f} GiB", flush=True)
                del data, target
            for patch in patches:
                for batch in batches:
                    point = {"batch_size": batch, "patch_size": list(patch), "num_classes": num_classes}
                    try:
                        if on_cuda:
                            point.update(measure_cuda(step, batch, patch, args.in_channels, num_classes))
                            context_seen.append(point["outside_allocator_bytes"])
                        else:
                            point.update(account_cpu(step, batch, patch, args.in_channels, num_classes))
                    except torch.cuda.OutOfMemoryError:
                        print(f"{name} C={num_classes} {batch}x{patch}: out of memory, larger batches skipped",
                              flush=True)
                        step.optimizer.zero_grad(set_to_none=True)
                        gc.collect()
                        torch.cuda.empty_cache()
                        break
                    points.append(point)
                    print(f"{name} C={num_classes} batch {batch} patch {'x'.join(map(str, patch))}: "
                          f"{point['allocated_bytes'] / GIB:.3f} GiB"
                          + (f" allocated, {point['reserved_bytes'] / GIB:.3f} GiB reserved" if on_cuda else
                             " (accounted)"), flush=True)
            del step, network
            gc.collect()
            if on_cuda:
                torch.cuda.empty_cache()
        if len(points) < 3:
            print(f"{name}: fewer than 3 usable points, cannot fit", file=sys.stderr)
            return 1
        class_path = NETWORKS[name].class_path_3d if args.dims == 3 else NETWORKS[name].class_path
        entry = {"class": class_path, **fit(points)}
        if on_cuda:
            entry["reserved_over_allocated"] = round(max(p["reserved_bytes"] / p["allocated_bytes"] for p in points), 3)
        else:
            entry["reserved_over_allocated"] = args.reserved_over_allocated
        networks_out[name] = entry
        raw[name] = points
        print(f"{name}: {json.dumps(entry)}", flush=True)

    if on_cuda:
        context = float(np.median(context_seen))
        total = torch.cuda.get_device_properties(device).total_memory
        device_text = f"{torch.cuda.get_device_name(device)} ({total / GIB:.1f} GiB)"
        method = (f"measured: torch.cuda.max_memory_allocated/max_memory_reserved of a training step after a warm-up "
                  f"step (autocast {args.amp_dtype}{' + GradScaler' if amp_dtype == torch.float16 else ''}, deep "
                  f"supervision, nnU-Net DC+CE loss, grad clipping, AdamW), least-squares fit")
    else:
        context = float(args.context_bytes if args.context_bytes is not None else 512 * 1024 ** 2)
        device_text = f"cpu ({platform.processor() or platform.machine()}), accounting only"
        method = ("PROVISIONAL cpu accounting, not a GPU measurement: fixed = parameters x 18 bytes (fp32 weights, "
                  "grads, 2 AdamW moments, fp16 autocast copy); per pixel = distinct float32 tensors autograd saves "
                  "for backward (forward + loss), with no reduction for AMP, which is taken to cover backward's "
                  "transient buffers; cuda_context_bytes and reserved_over_allocated are assumed values")
    provenance = {
        "method": method,
        "device": device_text,
        "torch": torch.__version__,
        "selective_scan_backend": selective_scan_backend(device.type),
        "amp_dtype": args.amp_dtype if on_cuda else "none (float32 accounting)",
        "in_channels": args.in_channels,
        "date": datetime.date.today().isoformat(),
        "command": "python -m benchmarks.measure_memory " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    if args.dims == 3:
        result = json.loads(args.out.read_text())
        result["networks_3d"] = {
            "provenance": {**provenance, "provisional": not on_cuda,
                           "depth_strides": "every depth stride 1 (no depth pooling: the most memory per voxel)"},
            "model": "as the 2D model, with B*D*H*W voxels in place of B*H*W pixels; cuda_context_bytes shared",
            "networks": networks_out,
            "measurements": raw,
        }
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote the networks_3d section of {args.out}")
        return 0
    result = {
        "schema": 1,
        "provisional": not on_cuda,
        "provenance": provenance,
        "model": "gpu_bytes = cuda_context_bytes + reserved_over_allocated * (fixed_bytes + B*H*W*(per_pixel_bytes + "
                 "per_pixel_per_class_bytes*C)); B batch, HxW patch, C segmentation heads",
        "cuda_context_bytes": round(context),
        "networks": networks_out,
        "measurements": raw,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
