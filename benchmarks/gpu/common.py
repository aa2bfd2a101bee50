"""What every section of the GPU benchmark shares: the settings, the time budget, the shape cases
and small device helpers."""
from __future__ import annotations

import contextlib
import functools
import gc
import os
import time
from collections import Counter
from dataclasses import dataclass

import torch

from benchmarks import bench_network

NUM_CLASSES = 14  # 13 abdominal organs + background, as the AbdomenMR task
# nnU-Net 2.8.1's 2d plan (PlainConvUNet) for a synthetic dataset of 8 single-channel 60x256x256
# volumes, 3 labels, spacing 1x1x5, planned with nnUNetv2_plan_and_preprocess -c 2d
PLAIN_UNET_PLANNED_BATCH = 24
NNUNET_MIN_BATCH = 2  # nnU-Net never plans less; its 3d_fullres plans of large patches keep this
DRY_RUN_PATCH_SIDE = 32
DRY_RUN_DEPTH = 16  # a dry run's 3D patch: DRY_RUN_DEPTH x DRY_RUN_PATCH_SIDE x DRY_RUN_PATCH_SIDE
# the 3D case: a 3d_fullres patch of an anisotropic volume; nnU-Net's pooling plan for it gives the depth strides
PATCH_3D = (64, 160, 160)
SPACING_3D = (2.5, 0.8, 0.8)


@dataclass(frozen=True)
class ShapeCase:
    """One network at one patch: the scans, cross-scans and training iterations it runs are measured.
    ``patch`` is the full-size patch; a dry run shrinks it (``dry``). A 3D case also has the voxel
    ``spacing`` its depth strides (and PlainConvUNet's topology) come from, as nnU-Net plans them."""

    network: str  # a class name of bench_network.NETWORKS or bench_network3d.NETWORKS, or PlainConvUNet
    patch: tuple[int, ...]
    spacing: tuple[float, ...] | None = None
    depth_strides: tuple[int, ...] | None = None

    def label(self) -> str:
        return f"{self.network} {'x'.join(map(str, self.patch))}"

    def build(self, num_classes: int, deep_supervision: bool):
        return bench_network.build_network(self.network, self.patch, num_classes, deep_supervision,
                                           spacing=self.spacing, depth_strides=self.depth_strides)

    def with_network(self, network: str) -> "ShapeCase":
        """The same patch for another network (PlainConvUNet: no depth strides)."""
        strides = None if network == "PlainConvUNet" else self.depth_strides
        return ShapeCase(network, self.patch, self.spacing, strides)

    def with_patch(self, patch: tuple[int, ...]) -> "ShapeCase":
        return ShapeCase(self.network, tuple(patch), self.spacing, self.depth_strides)

    def dry(self) -> "ShapeCase":
        if len(self.patch) == 3:
            return self.with_patch((DRY_RUN_DEPTH, DRY_RUN_PATCH_SIDE, DRY_RUN_PATCH_SIDE))
        return self.with_patch((DRY_RUN_PATCH_SIDE,) * len(self.patch))


def cases_3d(patch=PATCH_3D, spacing=SPACING_3D) -> list[ShapeCase]:
    """The 3D networks at ``patch``, with the depth strides the trainers derive for it at ``spacing``."""
    from benchmarks import bench_network3d

    strides = bench_network3d.depth_strides(patch, spacing)
    return [ShapeCase(network, tuple(patch), tuple(spacing), strides[network]) for network in bench_network3d.NETWORKS]


# every case the sections measure; another patch (a larger 2D one) is one more entry
SHAPE_CASES = [ShapeCase(network, (256, 256)) for network in bench_network.NETWORKS] + cases_3d()


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

    def __init__(self, args, cases=None):
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        self.dry = args.dry_run
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
        cases = SHAPE_CASES if cases is None else cases
        if args.patch is not None:
            cases = [c.with_patch((args.patch,) * len(c.patch)) for c in cases]
        self.cases = [c.dry() if self.dry else c for c in cases]

    def batch(self, network: str, patch: tuple[int, ...]) -> int:
        return NNUNET_MIN_BATCH if self.dry else planned_batch(network, patch)

    def scan_shape(self, kd: int, length: int) -> tuple[int, int]:
        """Dry run: at most 8 channels and 16 steps (Triton's interpreter is slow)."""
        return (min(kd, 8), min(length, 16)) if self.dry else (kd, length)


def planned_batch(network: str, patch: tuple[int, ...]) -> int:
    """The batch size of the network's plans for ``patch`` and NUM_CLASSES classes (3D: PlainConvUNet
    and, where the memory model allows no more, ours at nnU-Net's least, NNUNET_MIN_BATCH)."""
    if network == "PlainConvUNet":
        return PLAIN_UNET_PLANNED_BATCH if len(patch) == 2 else NNUNET_MIN_BATCH
    from swin_umamba.nnunet_plans.memory_model import GIB, load_memory_model
    from swin_umamba.nnunet_plans.planner import DEFAULT_GPU_MEMORY_TARGET_GB
    from swin_umamba.network_registry import network_of_class

    name = network_of_class(network).name
    batch = load_memory_model().max_batch_size(name, list(patch), NUM_CLASSES, DEFAULT_GPU_MEMORY_TARGET_GB * GIB)
    return max(batch, NNUNET_MIN_BATCH)


@functools.lru_cache(maxsize=None)
def recorded_scan_calls(case: ShapeCase) -> tuple:
    """(batch, KD, L, G, N) of every selective scan of one forward of the case's network, batch 1."""
    net = case.build(4, deep_supervision=False).eval()
    return tuple(bench_network.record_scan_calls(net, torch.zeros(1, bench_network.IN_CHANNELS, *case.patch)))


def scan_shapes(settings) -> list[dict]:
    """One entry per shape case and distinct scan shape: KD, L, G, N, the calls per forward, the batch
    (a dry run: the longest scan of each case only)."""
    shapes = []
    for case in settings.cases:
        calls = Counter((kd, length, g, n) for _, kd, length, g, n in recorded_scan_calls(case))
        ordered = sorted(calls.items(), key=lambda item: -item[0][1])
        for (kd, length, g, n), count in ordered[:1] if settings.dry else ordered:
            kd_run, l_run = settings.scan_shape(kd, length)
            shapes.append({"network": case.network, "patch": list(case.patch),
                           "batch": settings.batch(case.network, case.patch), "KD": kd_run, "L": l_run, "G": g,
                           "N": n, "calls": count, "network_KD": kd, "network_L": length})
    return shapes


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
    from swin_umamba.environment import SCAN_BACKEND_VAR

    saved = os.environ.get(SCAN_BACKEND_VAR)
    if name is None:
        os.environ.pop(SCAN_BACKEND_VAR, None)
    else:
        os.environ[SCAN_BACKEND_VAR] = name
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(SCAN_BACKEND_VAR, None)
        else:
            os.environ[SCAN_BACKEND_VAR] = saved


@dataclass
class Run:
    """What a section gets: the settings, the budget, ``save()`` (writes the report so far), the report's
    sections (a later section reads an earlier one's results) and the output folder."""

    settings: Settings
    budget: Budget
    save: object
    sections: dict
    out_dir: str
