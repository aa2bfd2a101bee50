"""From an nnU-Net configuration to the network a Swin-UMamba trainer builds: 2D or 3D, depth strides, patch.

A configuration with a 2D patch builds the trainer's 2D network; one with a 3D patch (3d_fullres,
3d_lowres, 3d_cascade_fullres) its 3D network. The 3D networks take one depth stride per
downsampling stage: recorded in the configuration under DEPTH_STRIDES_KEY (`swin-umamba plan` writes
them; so does the trainer into its model folder's plans.json, which prediction reads), or derived
from nnU-Net's pooling plan (nets/depth_strides.py): the plans' arch_kwargs 'strides', or, for plans
without them, nnU-Net's own topology rule on the configuration's spacing and patch size.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from torch import nn

from swin_umamba.nets.depth_strides import derive_depth_strides
from swin_umamba.nnunet_layout import DEPTH_STRIDES_KEY, PLANNING_REPORT_KEY
from swin_umamba.trainers.common import ConfigurationError

# nnU-Net's ExperimentPlanner stops pooling an axis whose feature map would fall below this
NNUNET_MIN_FEATURE_MAP_SIZE = 4


@dataclass(frozen=True)
class NetworkChoice:
    """What a trainer builds for one configuration."""

    network_class: type[nn.Module]
    depth_strides: tuple[int, ...] | None  # None for 2D
    stride: tuple[int, ...]  # per spatial axis, the multiple a patch side must be
    output_scales: tuple[tuple[int, ...], ...]  # per deep-supervision head, its downsampling per axis

    def build(self, in_channels: int, num_classes: int, deep_supervision: bool) -> nn.Module:
        if self.depth_strides is None:
            return self.network_class(in_channels, num_classes, deep_supervision=deep_supervision)
        return self.network_class(in_channels, num_classes, self.depth_strides, deep_supervision=deep_supervision)


def nnunet_pooling(spacing: Sequence[float], patch_size: Sequence[int]) -> list[list[int]]:
    """nnU-Net's per-stage strides for this spacing and patch (its ExperimentPlanner's topology rule)."""
    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props

    _, pool_op_kernel_sizes, _, _, _ = get_pool_and_conv_props(
        list(spacing), list(patch_size), NNUNET_MIN_FEATURE_MAP_SIZE, 999999)
    return [[int(v) for v in stage] for stage in pool_op_kernel_sizes]


def depth_strides_for(configuration: dict, network_class_3d: type[nn.Module], configuration_name: str
                      ) -> tuple[int, ...]:
    """The depth strides of `network_class_3d` for a 3D configuration (its dict in the plans)."""
    recorded = configuration.get(DEPTH_STRIDES_KEY)
    if recorded is not None:
        try:
            network_class_3d.strides_of(recorded)
        except ValueError as e:
            raise ConfigurationError(
                f"configuration '{configuration_name}' of the plans records {DEPTH_STRIDES_KEY}={recorded}, which "
                f"{network_class_3d.__name__} cannot take: {e} Remove the entry to derive them from nnU-Net's "
                f"pooling, or plan again with `swin-umamba plan`.") from None
        return tuple(int(s) for s in recorded)
    patch = [int(s) for s in configuration["patch_size"]]
    pooling = configuration.get("architecture", {}).get("arch_kwargs", {}).get("strides")
    if not pooling or any(len(stage) != 3 for stage in pooling):
        pooling = nnunet_pooling(configuration["spacing"], patch)
    return derive_depth_strides(pooling, patch[0], network_class_3d.IN_PLANE_STRIDES,
                                network_class_3d.DEPTH_STRIDE_CHOICES)


def network_choice(plans: dict, configuration_name: str, network_class: type[nn.Module],
                   network_class_3d: type[nn.Module]) -> NetworkChoice:
    """The network (2D or 3D) and its strides for a configuration of these plans."""
    configuration = PlansManager(plans).get_configuration(configuration_name).configuration
    return choose_network(configuration, configuration_name, network_class, network_class_3d)


def choose_network(configuration: dict, configuration_name: str, network_class: type[nn.Module],
                   network_class_3d: type[nn.Module]) -> NetworkChoice:
    """The network (2D or 3D) and its strides for one configuration (its dict, inheritance resolved)."""
    patch = configuration["patch_size"]
    if len(patch) == 2:
        return NetworkChoice(network_class, None, tuple(network_class.STRIDE),
                             tuple(tuple(s for _ in range(2)) for s in network_class.OUTPUT_SCALES))
    if len(patch) != 3:
        raise ConfigurationError(
            f"configuration '{configuration_name}' has the patch size {list(patch)}: Swin-UMamba trains 2D "
            f"patches (the 2d configuration) and 3D ones (3d_fullres, 3d_lowres, 3d_cascade_fullres).")
    depth_strides = depth_strides_for(configuration, network_class_3d, configuration_name)
    stride, scales = network_class_3d.strides_of(depth_strides)
    return NetworkChoice(network_class_3d, depth_strides, tuple(stride), tuple(tuple(s) for s in scales))


def trainable_plans(plans: dict, configuration_name: str, choice: NetworkChoice) -> dict:
    """The plans with the configuration's patch rounded up to multiples of the network's stride per axis, and,
    in 3D, the depth strides recorded.

    Returns a copy when anything changes, so that the model folder's plans.json (what prediction reads)
    holds the patch and depth strides the network was trained with."""
    configuration = PlansManager(plans).get_configuration(configuration_name).configuration
    patch = [int(s) for s in configuration["patch_size"]]
    rounded = [-(-n // s) * s for n, s in zip(patch, choice.stride)]
    changes = {}
    if rounded != patch:
        changes["patch_size"] = rounded
    if choice.depth_strides is not None and configuration.get(DEPTH_STRIDES_KEY) != list(choice.depth_strides):
        changes[DEPTH_STRIDES_KEY] = list(choice.depth_strides)
    if not changes:
        return plans
    plans = copy.deepcopy(plans)
    plans["configurations"][configuration_name].update(changes)
    return plans


def memory_verdict(plans: dict, configuration_name: str, choice: NetworkChoice, batch_size: int,
                   num_heads: int) -> str | None:
    """A warning for the training log when the memory model expects this batch and patch to exceed the plans'
    GPU memory target (what `swin-umamba plan` recorded, else nnU-Net's default); None when it fits or the
    memory model has no figures for this network."""
    from swin_umamba.network_registry import network_of_class
    from swin_umamba.nnunet_plans.memory_model import DEFAULT_GPU_MEMORY_TARGET_GB, GIB, load_memory_model

    network = network_of_class(choice.network_class.__name__)
    configuration = PlansManager(plans).get_configuration(configuration_name).configuration
    patch = [int(s) for s in configuration["patch_size"]]
    model = load_memory_model()
    if network is None or not model.has(network.name, len(patch)):
        return None
    planned = configuration.get(PLANNING_REPORT_KEY, {})
    target_gb = float(planned.get("gpu_memory_target_gb", DEFAULT_GPU_MEMORY_TARGET_GB))
    estimate = model.estimate_bytes(network.name, batch_size, patch, num_heads)
    if estimate <= target_gb * GIB:
        return None
    dataset = plans.get("dataset_name", "DATASET")
    return (f"WARNING: the memory model estimates {estimate / GIB:.1f} GiB of GPU memory for a training step of "
            f"batch {batch_size} x patch {patch} with {choice.network_class.__name__}, above the plans' target of "
            f"{target_gb:g} GiB ({model.describe()}); expect out-of-memory errors. Plans sized for this network: "
            f"swin-umamba plan -d {dataset} --network {network.name} (then train with -p {network.plans_name}).")
