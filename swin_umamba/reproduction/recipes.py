"""What the Swin-UMamba paper did for each dataset, and the numbers it published.

Every run: nnU-Net's 2d configuration with its default plans, fold "all", a 1000-epoch cosine
schedule stopped after `stop_after` epochs, prediction without test-time augmentation.
"""
from __future__ import annotations

from dataclasses import dataclass, field

PLANS = "nnUNetPlans"
CONFIGURATION = "2d"
FOLD = "all"
SCHEDULE_EPOCHS = 1000  # the cosine schedule the published runs were stopped in
TRAINERS = {"plain": "nnUNetTrainerSwinUMamba", "dagger": "nnUNetTrainerSwinUMambaD"}
PUBLISHED_NAME = {"plain": "Swin-UMamba", "dagger": "Swin-UMamba†"}


@dataclass(frozen=True)
class Recipe:
    """What the paper did for one dataset (docs/recipe.md, docs/metrics.md)."""

    dataset_id: int
    title: str
    task: str  # swin-umamba evaluate --task
    metrics: tuple[str, ...]  # the summary values the paper reports
    stop_after: int  # epochs of the 1000-epoch schedule actually trained
    network: str  # "plain" or "dagger": the network of the paper's best entry
    converter: str  # the swin-umamba command that builds the raw dataset from the public release
    published: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> metric -> value


RECIPES = {
    702: Recipe(702, "AbdomenMR", "abdomen", ("DSC", "NSD"), 100, "plain", "convert-amos", {
        "nnU-Net": {"DSC": 0.7450},
        "U-Mamba_Enc": {"DSC": 0.7625},
        "Swin-UMamba": {"DSC": 0.7760, "NSD": 0.8421},
    }),
    703: Recipe(703, "Microscopy (NeurIPSCell)", "cells", ("F1",), 350, "dagger", "convert-neurips-cell", {
        "nnU-Net": {"F1": 0.5383},
        "U-Mamba_Enc": {"F1": 0.5607},
        "Swin-UMamba": {"F1": 0.5806},
        "Swin-UMamba†": {"F1": 0.5982},
    }),
    704: Recipe(704, "Endoscopy (Endovis17)", "endoscopy", ("DSC", "NSD"), 250, "dagger", "convert-endovis17", {
        "nnU-Net": {"DSC": 0.6264},
        "U-Mamba_Enc": {"DSC": 0.6303},
        "Swin-UMamba": {"DSC": 0.6767, "NSD": 0.6922},
        "Swin-UMamba†": {"DSC": 0.6783, "NSD": 0.6933},
    }),
}
