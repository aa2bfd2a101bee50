"""The two Swin-UMamba networks and every name each goes by: the one place those names are written.

    name         `swin-umamba plan --network`, the memory model's key      swinumamba      swinumambaD
    alias        `swin-umamba reproduce --network`                         plain           dagger
    cls          the class in swin_umamba.nets                             SwinUMamba      SwinUMambaD
    cls_3d       its 3D form (3d_fullres, 3d_lowres, 3d_cascade_fullres)   SwinUMamba3D    SwinUMambaD3D
    paper_name   the row of the paper's tables                             Swin-UMamba     Swin-UMamba†
    trainers     the nnU-Net trainers that build it (-tr)                  nnUNetTrainerSwinUMamba[Scratch]  ...D[Scratch|Demo]
    plans_name   the plans `swin-umamba plan` writes for it                nnUNetPlansSwinUMamba  nnUNetPlansSwinUMambaD

The stride (the multiple every patch side must be) is the network class's own `STRIDE`, one per axis.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

import swin_umamba.nets
from swin_umamba.nets import SwinUMamba, SwinUMamba3D, SwinUMambaD, SwinUMambaD3D

# the package nnU-Net's plans name the classes under (their public import path)
NETS_MODULE = swin_umamba.nets.__name__


@dataclass(frozen=True)
class Network:
    name: str
    alias: str
    cls: type[nn.Module]
    cls_3d: type[nn.Module]
    paper_name: str
    trainers: tuple[str, ...]  # the ImageNet-initialised trainer first
    plans_name: str

    @property
    def trainer(self) -> str:
        """The trainer of the paper's runs (ImageNet-initialised encoder)."""
        return self.trainers[0]

    @property
    def class_name(self) -> str:
        return self.cls.__name__

    @property
    def class_path(self) -> str:
        """Import path of the class, as nnU-Net's plans name architectures."""
        return f"{NETS_MODULE}.{self.class_name}"

    @property
    def stride(self) -> tuple[int, ...]:
        """Per spatial axis, the multiple a patch size must be (the class's STRIDE)."""
        return tuple(self.cls.STRIDE)

    @property
    def class_path_3d(self) -> str:
        return f"{NETS_MODULE}.{self.cls_3d.__name__}"

    def network_class(self) -> type[nn.Module]:
        return self.cls


DEMO_TRAINER = "nnUNetTrainerSwinUMambaDemo"  # `swin-umamba demo`'s short CPU run
# not a Swin-UMamba network: nnU-Net's nnUNetTrainer run as long as ours, for `swin-umamba compare`
BASELINE_TRAINER = "nnUNetTrainerProtocol"
SWIN_UMAMBA = Network("swinumamba", "plain", SwinUMamba, SwinUMamba3D, "Swin-UMamba",
                      ("nnUNetTrainerSwinUMamba", "nnUNetTrainerSwinUMambaScratch"), "nnUNetPlansSwinUMamba")
SWIN_UMAMBA_D = Network("swinumambaD", "dagger", SwinUMambaD, SwinUMambaD3D, "Swin-UMamba†",
                        ("nnUNetTrainerSwinUMambaD", "nnUNetTrainerSwinUMambaDScratch", DEMO_TRAINER),
                        "nnUNetPlansSwinUMambaD")
NETWORKS = {n.name: n for n in (SWIN_UMAMBA, SWIN_UMAMBA_D)}
BY_ALIAS = {n.alias: n for n in NETWORKS.values()}
TRAINER_NAMES = tuple(t for n in NETWORKS.values() for t in n.trainers)


def network_of_class(class_name_or_path: str) -> Network | None:
    """The network a class name ("SwinUMambaD", "SwinUMambaD3D") or import path ("swin_umamba.nets.SwinUMambaD")
    names, 2D or 3D; None if it names no Swin-UMamba network (e.g. nnU-Net's PlainConvUNet of its default plans)."""
    return next((n for n in NETWORKS.values() if class_name_or_path in (
        n.class_name, n.class_path, n.cls_3d.__name__, n.class_path_3d)), None)


def network_of_trainer(trainer: str) -> Network | None:
    return next((n for n in NETWORKS.values() if trainer in n.trainers), None)


def network_built_by(network_class: type | None) -> Network | None:
    """The network a class is (or subclasses); None for any other class, or None."""
    if not isinstance(network_class, type):
        return None
    return next((n for n in NETWORKS.values() if issubclass(network_class, n.network_class())), None)
