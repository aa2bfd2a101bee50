"""Peak GPU memory of one Swin-UMamba training step, as a function of batch and patch size.

The model (constants in `memory_model.json` beside this file, written by
benchmarks/measure_memory.py) is, for each network::

    allocated = fixed_bytes + B * H * W * (per_pixel_bytes + per_pixel_per_class_bytes * C)
    gpu_total = cuda_context_bytes + reserved_over_allocated * allocated

`allocated` is torch.cuda.max_memory_allocated() of a training step as nnU-Net
runs it (AMP autocast, deep supervision, forward + backward, AdamW step), B the
batch size, H x W the patch and C the number of segmentation heads.
`reserved_over_allocated` accounts for the caching allocator's blocks and
`cuda_context_bytes` for what CUDA holds outside PyTorch's allocator.

The 3D networks have their own entries (`networks_3d`), of the same form with
D * H * W voxels in place of H * W pixels; a 3D patch is estimated with them.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

DEFAULT_MODEL_PATH = Path(__file__).resolve().with_name("memory_model.json")


GIB = 1024 ** 3
DEFAULT_GPU_MEMORY_TARGET_GB = 8.0  # nnU-Net's ExperimentPlanner default (gpu_memory_target_in_gb=8)


class MemoryModelError(ValueError):
    """The memory model file is missing, malformed or lacks the requested network."""


@dataclass(frozen=True)
class NetworkMemory:
    fixed_bytes: float
    per_pixel_bytes: float
    per_pixel_per_class_bytes: float = 0.0
    reserved_over_allocated: float = 1.0

    def allocated_bytes(self, batch_size: int, patch_size: Sequence[int], num_classes: int) -> float:
        pixels = batch_size * math.prod(int(s) for s in patch_size)
        return self.fixed_bytes + pixels * (self.per_pixel_bytes + self.per_pixel_per_class_bytes * num_classes)


@dataclass(frozen=True)
class MemoryModel:
    networks: dict
    cuda_context_bytes: float
    provisional: bool
    provenance: dict = field(default_factory=dict)
    source: str = ""
    networks_3d: dict = field(default_factory=dict)
    provenance_3d: dict = field(default_factory=dict)

    def _entries(self, dims: int) -> dict:
        return self.networks_3d if dims == 3 else self.networks

    def has(self, name: str, dims: int = 2) -> bool:
        return name in self._entries(dims)

    def network(self, name: str, dims: int = 2) -> NetworkMemory:
        entries = self._entries(dims)
        if name not in entries:
            raise MemoryModelError(f"{self.source or 'memory model'} has no {dims}D entry for network {name!r} "
                                   f"(it has {sorted(entries)})")
        return entries[name]

    def estimate_bytes(self, network: str, batch_size: int, patch_size: Sequence[int], num_classes: int) -> float:
        """Whole-GPU memory of a training step: CUDA context plus the allocator's reserve. The patch's length
        (2 or 3) picks the 2D or the 3D entry."""
        net = self.network(network, len(patch_size))
        return self.cuda_context_bytes + net.reserved_over_allocated * net.allocated_bytes(
            batch_size, patch_size, num_classes)

    def max_batch_size(self, network: str, patch_size: Sequence[int], num_classes: int, target_bytes: float) -> int:
        """Largest batch whose estimate fits target_bytes (0 if not even one sample fits)."""
        base = self.estimate_bytes(network, 0, patch_size, num_classes)
        per_sample = self.estimate_bytes(network, 1, patch_size, num_classes) - base
        if base >= target_bytes:
            return 0
        batch = int((target_bytes - base) // per_sample)
        # guard against floating point at the boundary
        while batch > 0 and self.estimate_bytes(network, batch, patch_size, num_classes) > target_bytes:
            batch -= 1
        return batch

    def describe(self, dims: int = 2) -> str:
        provenance = self.provenance_3d if dims == 3 else self.provenance
        provisional = provenance.get("provisional", self.provisional) if dims == 3 else self.provisional
        state = "PROVISIONAL estimate, not measured on a GPU" if provisional else "measured"
        where = provenance.get("device", "unknown device")
        date = provenance.get("date", "undated")
        return f"{state} ({where}, {date}; {Path(self.source).name or 'in memory'})"


def _number(entry: dict, key: str, where: str, default=None) -> float:
    value = entry.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise MemoryModelError(f"{where}: '{key}' must be a non-negative number, got {value!r}")
    return float(value)


def parse_memory_model(data: dict, source: str = "") -> MemoryModel:
    where = source or "memory model"
    if not isinstance(data, dict) or not isinstance(data.get("networks"), dict) or not data["networks"]:
        raise MemoryModelError(f"{where}: expected an object with a non-empty 'networks' object")
    if not isinstance(data.get("provenance"), dict):
        raise MemoryModelError(f"{where}: a 'provenance' object (how the constants were obtained) is required")
    networks = _parse_entries(data["networks"], f"{where}: networks")
    section_3d = data.get("networks_3d", {})
    if not isinstance(section_3d, dict) or not isinstance(section_3d.get("networks", {}), dict):
        raise MemoryModelError(f"{where}: 'networks_3d' must be an object with a 'networks' object")
    networks_3d = _parse_entries(section_3d.get("networks", {}), f"{where}: networks_3d.networks")
    return MemoryModel(networks=networks,
                       cuda_context_bytes=_number(data, "cuda_context_bytes", where, 0.0),
                       provisional=bool(data.get("provisional", True)),
                       provenance=data["provenance"], source=source,
                       networks_3d=networks_3d, provenance_3d=dict(section_3d.get("provenance", {})))


def _parse_entries(entries: dict, where: str) -> dict:
    networks = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            raise MemoryModelError(f"{where}.{name} must be an object")
        w = f"{where}.{name}"
        networks[name] = NetworkMemory(
            fixed_bytes=_number(entry, "fixed_bytes", w),
            per_pixel_bytes=_number(entry, "per_pixel_bytes", w),
            per_pixel_per_class_bytes=_number(entry, "per_pixel_per_class_bytes", w, 0.0),
            reserved_over_allocated=_number(entry, "reserved_over_allocated", w, 1.0),
        )
        if networks[name].per_pixel_bytes <= 0:
            raise MemoryModelError(f"{w}: 'per_pixel_bytes' must be positive")
        if networks[name].reserved_over_allocated < 1.0:
            raise MemoryModelError(f"{w}: 'reserved_over_allocated' must be >= 1")
    return networks


def load_memory_model(path: str | Path | None = None) -> MemoryModel:
    path = Path(path) if path is not None else DEFAULT_MODEL_PATH
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise MemoryModelError(f"memory model {path} not found; write one with benchmarks/measure_memory.py") from None
    except json.JSONDecodeError as e:
        raise MemoryModelError(f"memory model {path} is not valid JSON: {e}") from None
    return parse_memory_model(data, str(path))
