"""nnU-Net experiment planner for Swin-UMamba: patch a multiple of the stride per axis, batch from a memory model.

Everything about the data (target spacing, transposition, normalisation,
resampling, batch dice) and which configurations exist (2d; for 3D data
3d_fullres, and 3d_lowres with the cascade where nnU-Net would plan them) comes
from nnU-Net's default ExperimentPlanner. For each configuration only these
decisions change:

* network: the 2D network for 2d, its 3D form for the 3D configurations, with
  depth strides derived from nnU-Net's pooling of that configuration
  (nets/depth_strides.py) and recorded in the plans (`depth_strides`).
* patch size: nnU-Net's patch, each side rounded to the nearest multiple of
  the network's stride along it (32 in-plane; along depth, the product of the
  depth strides), at least one stride and at most the multiple that covers the
  median image; if even a batch of 2 does not fit the memory target it is
  shrunk by one stride along the side that is largest relative to the median
  image (nnU-Net's own rule for shrinking).
* batch size: the largest batch the memory model (memory_model.py, with its 3D
  entries for 3D patches) fits into the GPU memory target, capped so one batch
  covers at most 5% of the dataset's voxels and never below 2 (nnU-Net's rules).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.label_handling.label_handling import LabelManager

from swin_umamba.network_registry import NETS_MODULE, NETWORKS, SWIN_UMAMBA
from swin_umamba.nets.depth_strides import derive_depth_strides
from swin_umamba.nnunet_layout import DEPTH_STRIDES_KEY, PLANNING_REPORT_KEY
from swin_umamba.nnunet_plans.memory_model import DEFAULT_GPU_MEMORY_TARGET_GB, GIB, MemoryModel, load_memory_model



def default_plans_name(network: str) -> str:
    return NETWORKS[network].plans_name


def round_patch_to_stride(patch: Sequence[int], median_shape: Sequence[float], strides: Sequence[int]) -> list[int]:
    """Each side to its nearest multiple of its stride s (ties upwards), within [s, ceil(median/s)*s]."""
    rounded = []
    for p, m, stride in zip(patch, median_shape, strides):
        nearest = math.floor(p / stride + 0.5) * stride
        cover_median = max(stride, math.ceil(m / stride) * stride)
        rounded.append(int(min(max(stride, nearest), cover_median)))
    return rounded


def shrink_patch(patch: Sequence[int], median_shape: Sequence[float], strides: Sequence[int]) -> list[int] | None:
    """The patch one stride smaller along the side largest relative to the median image; None at the minimum."""
    patch = list(patch)
    order = np.argsort([p / m for p, m in zip(patch, median_shape)])[::-1]
    for axis in order:
        if patch[axis] > strides[axis]:
            patch[axis] -= strides[axis]
            return patch
    return None


class SwinUMambaPlanner(ExperimentPlanner):
    def __init__(self, dataset_name_or_id, gpu_memory_target_in_gb: float = DEFAULT_GPU_MEMORY_TARGET_GB,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: str | None = None,
                 overwrite_target_spacing=None, suppress_transpose: bool = False,
                 network: str = SWIN_UMAMBA.name, memory_model: MemoryModel | str | None = None):
        if network not in NETWORKS:
            raise ValueError(f"unknown network {network!r}; choose one of {sorted(NETWORKS)}")
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name,
                         plans_name or default_plans_name(network), overwrite_target_spacing, suppress_transpose)
        self.network = network
        self.memory_model = memory_model if isinstance(memory_model, MemoryModel) else load_memory_model(memory_model)
        self.memory_model.network(network)  # fail early if the model lacks it
        self.report: dict = {}  # the 2d configuration's
        self.reports: dict[str, dict] = {}  # every configuration's

    @staticmethod
    def static_estimate_VRAM_usage(patch_size, input_channels, output_channels, arch_class_name, arch_kwargs,
                                   arch_kwargs_req_import):
        """nnU-Net's U-Net size estimate (it decides nnU-Net's patch), without setting torch's thread count to
        nnUNet_n_proc_DA, which fails when that is 0."""
        net = get_network_from_plans(arch_class_name, arch_kwargs, arch_kwargs_req_import, input_channels,
                                     output_channels, allow_init=False)
        return net.compute_conv_feature_map_size(patch_size)

    @property
    def num_segmentation_heads(self) -> int:
        return LabelManager(self.dataset_json["labels"], self.dataset_json.get("regions_class_order")
                            ).num_segmentation_heads

    def network_for(self, plan: dict) -> tuple[type, tuple[int, ...] | None, tuple[int, ...]]:
        """(class, depth strides or None, stride per axis) of our network for one of nnU-Net's configurations:
        the 2D network for a 2D patch; for a 3D patch the 3D network with depth strides derived from nnU-Net's
        pooling (nets/depth_strides.py)."""
        network = NETWORKS[self.network]
        patch = [int(i) for i in plan["patch_size"]]
        if len(patch) == 2:
            return network.cls, None, network.stride
        cls = network.cls_3d
        pooling = plan["architecture"]["arch_kwargs"]["strides"]
        depth_strides = derive_depth_strides(pooling, patch[0], cls.IN_PLANE_STRIDES, cls.DEPTH_STRIDE_CHOICES)
        return cls, depth_strides, tuple(cls.strides_of(depth_strides)[0])

    def adapt_configuration(self, plan: dict, approximate_n_voxels_dataset: float) -> tuple[dict, dict]:
        """nnU-Net's plan of one configuration with our patch, batch size, depth strides (3D) and a description of
        the network; and the report of what was chosen."""
        median = [float(i) for i in plan["median_image_size_in_voxels"]]
        nnunet_patch = [int(i) for i in plan["patch_size"]]
        target_bytes = self.UNet_vram_target_GB * GIB
        heads = self.num_segmentation_heads
        model = self.memory_model
        cls, depth_strides, strides = self.network_for(plan)

        patch = round_patch_to_stride(nnunet_patch, median, strides)
        rounded = list(patch)
        while model.max_batch_size(self.network, patch, heads, target_bytes) < self.UNet_min_batch_size:
            smaller = shrink_patch(patch, median, strides)
            if smaller is None:
                break
            patch = smaller
        fits = model.max_batch_size(self.network, patch, heads, target_bytes)
        cap = round(approximate_n_voxels_dataset * self.max_dataset_covered / np.prod(patch, dtype=np.float64))
        batch = max(min(fits, cap), self.UNet_min_batch_size)
        estimate = model.estimate_bytes(self.network, batch, patch, heads)

        report = {
            "network": self.network,
            "network_class": cls.__name__,
            "stride": list(strides),
            "nnunet_patch_size": nnunet_patch,
            "nnunet_batch_size": int(plan["batch_size"]),
            "median_image_size_in_voxels": median,
            "rounded_patch_size": rounded,
            "patch_size": patch,
            "num_segmentation_heads": heads,
            "gpu_memory_target_gb": float(self.UNet_vram_target_GB),
            "batch_size_memory_allows": int(fits),
            "batch_size_5_percent_cap": int(cap),
            "batch_size": int(batch),
            "estimated_gpu_memory_gb": round(estimate / GIB, 3),
            "exceeds_target": bool(estimate > target_bytes),
            "memory_model": model.describe(len(patch)),
            "memory_model_provisional": "PROVISIONAL" in model.describe(len(patch)),
        }
        plan = dict(plan)
        plan["patch_size"] = patch
        plan["batch_size"] = int(batch)
        if depth_strides is not None:
            report["depth_strides"] = list(depth_strides)
            report["nnunet_depth_pooling"] = [int(s[0]) for s in plan["architecture"]["arch_kwargs"]["strides"]]
            plan[DEPTH_STRIDES_KEY] = list(depth_strides)
        # the Swin-UMamba trainers build their network themselves and ignore this entry; it documents the plan
        plan["architecture"] = {"network_class_name": f"{NETS_MODULE}.{cls.__name__}", "arch_kwargs": {},
                                "_kw_requires_import": []}
        plan[PLANNING_REPORT_KEY] = dict(report)
        return plan, report

    def adapt_2d_configuration(self, plan: dict, approximate_n_voxels_dataset: float) -> dict:
        plan, self.report = self.adapt_configuration(plan, approximate_n_voxels_dataset)
        self.reports["2d"] = self.report
        return plan

    def plan_experiment(self):
        """nnU-Net's ExperimentPlanner.plan_experiment (its data decisions and its configurations: 2d, and for 3D
        data 3d_fullres, 3d_lowres where the images are large, and the cascade), then each configuration's
        patch, batch and network adapted (adapt_configuration). The cascade's 3d_cascade_fullres inherits
        from 3d_fullres."""
        plans = super().plan_experiment()
        fullres_spacing = self.determine_fullres_target_spacing()
        new_shapes = [compute_new_shape(j, i, fullres_spacing) for i, j in
                      zip(self.dataset_fingerprint["spacings"], self.dataset_fingerprint["shapes_after_crop"])]
        median_shape = np.median(new_shapes, 0)[self.determine_transpose()[0]]
        approximate_n_voxels_dataset = float(np.prod(median_shape, dtype=np.float64) *
                                             self.dataset_json["numTraining"])
        self.reports = {}
        for name, plan in plans["configurations"].items():
            if "patch_size" not in plan:  # inherits everything it plans from another configuration
                continue
            plans["configurations"][name], self.reports[name] = self.adapt_configuration(
                plan, approximate_n_voxels_dataset)
        self.report = self.reports["2d"]
        plans["experiment_planner_used"] = self.__class__.__name__
        self.plans = plans
        self.save_plans(plans)
        return plans


def explain(report: dict) -> str:
    """What the planner chose and why, for people."""
    r = report
    lines = [f"Swin-UMamba plan for network '{r['network']}' ({r.get('network_class', r['network'])}):"]
    lines.append(f"  median image (after resampling): {' x '.join(f'{m:g}' for m in r['median_image_size_in_voxels'])}")
    why = f"nearest multiples of {r.get('stride', list(NETWORKS[r['network']].stride))}, not beyond the median image"
    if r["patch_size"] != r["rounded_patch_size"]:
        why += f" ({r['rounded_patch_size']}), then shrunk until a batch of 2 fits the memory target"
    lines.append(f"  patch size: {r['patch_size']}  (nnU-Net's U-Net patch {r['nnunet_patch_size']} -> {why})")
    if "depth_strides" in r:
        lines.append(f"  depth strides: {r['depth_strides']}  (nnU-Net pools the first axis per stage "
                     f"{r['nnunet_depth_pooling']}; matched by in-plane reduction)")
    lines.append(f"  batch size: {r['batch_size']}  (memory target {r['gpu_memory_target_gb']:g} GiB allows "
                 f"{r['batch_size_memory_allows']}; 5% of the dataset's voxels caps it at "
                 f"{r['batch_size_5_percent_cap']}; minimum 2; nnU-Net's U-Net had {r['nnunet_batch_size']})")
    lines.append(f"  estimated GPU memory of a training step: {r['estimated_gpu_memory_gb']:.2f} GiB "
                 f"for {r['num_segmentation_heads']} segmentation heads")
    if r["exceeds_target"]:
        lines.append("  WARNING: even the smallest plan exceeds the memory target; expect out-of-memory errors "
                     "or raise --gpu-memory-target-gb")
    lines.append(f"  memory model: {r['memory_model']}")
    if r["memory_model_provisional"]:
        lines.append("  NOTE: the memory model is provisional (not measured on a GPU); batch sizes are estimates")
    return "\n".join(lines)
