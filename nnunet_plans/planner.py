"""nnU-Net experiment planner for Swin-UMamba: 2D only, patch a multiple of the stride, batch from a memory model.

Everything about the data (target spacing, transposition, normalisation,
resampling, batch dice) comes from nnU-Net's default ExperimentPlanner, which
plans the 2D configuration first. Only two decisions change:

* patch size: nnU-Net's 2D patch, each side rounded to the nearest multiple of
  the network's stride along it (its class's STRIDE, 32 for both networks), at
  least one stride and at most the multiple that covers the median image; if
  even a batch of 2 does not fit the memory target it is shrunk by one stride
  along the side that is largest relative to the median image (nnU-Net's own
  rule for shrinking).
* batch size: the largest batch the memory model (memory_model.py) fits into
  the GPU memory target, capped so one batch covers at most 5% of the dataset's
  voxels and never below 2 (nnU-Net's rules).

3D configurations are not planned: Swin-UMamba is a 2D network.
"""
from __future__ import annotations

import math
import shutil
from typing import Sequence

import numpy as np
from batchgenerators.utilities.file_and_folder_operations import join
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.paths import nnUNet_preprocessed
from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.label_handling.label_handling import LabelManager

from swin_umamba.network_registry import NETWORKS, SWIN_UMAMBA
from swin_umamba.nnunet_layout import PLANNING_REPORT_KEY
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
        self.report: dict = {}

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

    def adapt_2d_configuration(self, plan: dict, approximate_n_voxels_dataset: float) -> dict:
        """nnU-Net's 2D plan with our patch, batch size and a description of the network."""
        median = [float(i) for i in plan["median_image_size_in_voxels"]]
        nnunet_patch = [int(i) for i in plan["patch_size"]]
        target_bytes = self.UNet_vram_target_GB * GIB
        heads = self.num_segmentation_heads
        model = self.memory_model

        strides = NETWORKS[self.network].stride
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

        self.report = {
            "network": self.network,
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
            "memory_model": model.describe(),
            "memory_model_provisional": model.provisional,
        }
        plan = dict(plan)
        plan["patch_size"] = patch
        plan["batch_size"] = int(batch)
        # the Swin-UMamba trainers build their network themselves and ignore this entry; it documents the plan
        plan["architecture"] = {"network_class_name": NETWORKS[self.network].class_path, "arch_kwargs": {},
                                "_kw_requires_import": []}
        plan[PLANNING_REPORT_KEY] = dict(self.report)
        return plan

    def plan_experiment(self):
        """The 2D part of ExperimentPlanner.plan_experiment, then adapt_2d_configuration."""
        transpose_forward, transpose_backward = self.determine_transpose()
        fullres_spacing = self.determine_fullres_target_spacing()
        fullres_spacing_transposed = fullres_spacing[transpose_forward]
        new_shapes = [compute_new_shape(j, i, fullres_spacing) for i, j in
                      zip(self.dataset_fingerprint["spacings"], self.dataset_fingerprint["shapes_after_crop"])]
        new_median_shape_transposed = np.median(new_shapes, 0)[transpose_forward]
        approximate_n_voxels_dataset = float(np.prod(new_median_shape_transposed, dtype=np.float64) *
                                             self.dataset_json["numTraining"])

        plan_2d = self.get_plans_for_configuration(fullres_spacing_transposed[1:], new_median_shape_transposed[1:],
                                                   self.generate_data_identifier("2d"),
                                                   approximate_n_voxels_dataset, {})
        plan_2d["batch_dice"] = True
        plan_2d = self.adapt_2d_configuration(plan_2d, approximate_n_voxels_dataset)

        median_spacing = np.median(self.dataset_fingerprint["spacings"], 0)[transpose_forward]
        median_shape = np.median(self.dataset_fingerprint["shapes_after_crop"], 0)[transpose_forward]
        shutil.copy(join(self.raw_dataset_folder, "dataset.json"),
                    join(nnUNet_preprocessed, self.dataset_name, "dataset.json"))
        plans = {
            "dataset_name": self.dataset_name,
            "plans_name": self.plans_identifier,
            "original_median_spacing_after_transp": [float(i) for i in median_spacing],
            "original_median_shape_after_transp": [int(round(i)) for i in median_shape],
            "image_reader_writer": self.determine_reader_writer().__name__,
            "transpose_forward": [int(i) for i in transpose_forward],
            "transpose_backward": [int(i) for i in transpose_backward],
            "configurations": {"2d": plan_2d},
            "experiment_planner_used": self.__class__.__name__,
            "label_manager": "LabelManager",
            "foreground_intensity_properties_per_channel":
                self.dataset_fingerprint["foreground_intensity_properties_per_channel"],
        }
        self.plans = plans
        self.save_plans(plans)
        return plans


def explain(report: dict) -> str:
    """What the planner chose and why, for people."""
    r = report
    lines = [f"Swin-UMamba plan for network '{r['network']}':"]
    lines.append(f"  median image (after resampling): {' x '.join(f'{m:g}' for m in r['median_image_size_in_voxels'])}")
    why = f"nearest multiples of {list(NETWORKS[r['network']].stride)}, not beyond the median image"
    if r["patch_size"] != r["rounded_patch_size"]:
        why += f" ({r['rounded_patch_size']}), then shrunk until a batch of 2 fits the memory target"
    lines.append(f"  patch size: {r['patch_size']}  (nnU-Net's U-Net patch {r['nnunet_patch_size']} -> {why})")
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
