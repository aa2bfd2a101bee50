"""What the Swin-UMamba paper did for each dataset, and the numbers it published.

Every run: nnU-Net's 2d configuration with its default plans, fold "all", a 1000-epoch cosine
schedule stopped after `stop_after` epochs, prediction without test-time augmentation.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from swin_umamba.network_registry import BY_ALIAS, SWIN_UMAMBA, SWIN_UMAMBA_D
from swin_umamba.nnunet_layout import DEFAULT_PLANS

PLANS = DEFAULT_PLANS
CONFIGURATION = "2d"
FOLD = "all"
SCHEDULE_EPOCHS = 1000  # the cosine schedule the published runs were stopped in
# --network of `swin-umamba reproduce` -> the paper's trainer for it, and its row in the paper's tables
TRAINERS = {alias: network.trainer for alias, network in BY_ALIAS.items()}
PUBLISHED_NAME = {alias: network.paper_name for alias, network in BY_ALIAS.items()}


@dataclass(frozen=True)
class Recipe:
    """What the paper did for one dataset (docs/recipe.md, docs/metrics.md)."""

    dataset_id: int
    title: str
    task: str  # swin-umamba evaluate --task
    metrics: tuple[str, ...]  # the summary values the paper reports
    stop_after: int  # epochs of the 1000-epoch schedule actually trained
    network: str  # the alias of the network of the paper's best entry ("plain" or "dagger")
    converter: str  # the swin-umamba command that builds the raw dataset from the public release
    published: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> metric -> value


RECIPES = {
    702: Recipe(702, "AbdomenMR", "abdomen", ("DSC", "NSD"), 100, SWIN_UMAMBA.alias, "convert-amos", {
        "nnU-Net": {"DSC": 0.7450},
        "U-Mamba_Enc": {"DSC": 0.7625},
        SWIN_UMAMBA.paper_name: {"DSC": 0.7760, "NSD": 0.8421},
    }),
    703: Recipe(703, "Microscopy (NeurIPSCell)", "cells", ("F1",), 350, SWIN_UMAMBA_D.alias,
                "convert-neurips-cell", {
        "nnU-Net": {"F1": 0.5383},
        "U-Mamba_Enc": {"F1": 0.5607},
        SWIN_UMAMBA.paper_name: {"F1": 0.5806},
        SWIN_UMAMBA_D.paper_name: {"F1": 0.5982},
    }),
    704: Recipe(704, "Endoscopy (Endovis17)", "endoscopy", ("DSC", "NSD"), 250, SWIN_UMAMBA_D.alias,
                "convert-endovis17", {
        "nnU-Net": {"DSC": 0.6264},
        "U-Mamba_Enc": {"DSC": 0.6303},
        SWIN_UMAMBA.paper_name: {"DSC": 0.6767, "NSD": 0.6922},
        SWIN_UMAMBA_D.paper_name: {"DSC": 0.6783, "NSD": 0.6933},
    }),
}
