"""Finding an nnU-Net trainer class by name, in the folders nnU-Net would search.

nnU-Net's own search reads nnUNet_extTrainer from the environment and prints every folder it
visits; here the folders are arguments and nothing is printed, so a caller can look a trainer
up for a child process's environment without touching its own.
"""
from __future__ import annotations

import contextlib
import os
import re
import warnings
from pathlib import Path
from typing import Sequence

from swin_umamba.network_registry import Network, network_built_by, network_of_trainer


# timm (imported by nnU-Net's Primus trainers, which nnU-Net's search imports) decorates a class with
# torch.jit.interface, which recent torch versions deprecate with a FutureWarning on every import
JIT_INTERFACE_WARNING = "`torch.jit.interface` is deprecated"


@contextlib.contextmanager
def without_jit_interface_warning():
    """Hides exactly that FutureWarning while nnU-Net's trainer modules are imported."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=re.escape(JIT_INTERFACE_WARNING), category=FutureWarning)
        yield


class TrainerNotFound(LookupError):
    """No trainer of that name in nnU-Net nor in the extra folders."""


def find_trainer_class(name: str, extra_folders: Sequence[str | Path] = ()) -> type:
    """The class `name` from nnU-Net's trainers, else from the first of `extra_folders` defining it."""
    import nnunetv2
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class

    package = Path(nnunetv2.__path__[0])
    with without_jit_interface_warning():
        found = recursive_find_python_class(str(package / "training" / "nnUNetTrainer"), name,
                                            "nnunetv2.training.nnUNetTrainer", str(package))
        for folder in extra_folders:
            if found is not None:
                break
            if str(folder).strip() and os.path.isdir(folder):
                found = recursive_find_python_class(str(folder), name, None, base_folder=str(folder),
                                                    cleanup_imports_from_base_folder=True)
    if found is None:
        searched = ", ".join(str(f) for f in extra_folders) or "no nnUNet_extTrainer folder"
        raise TrainerNotFound(f"no trainer class {name!r} in nnU-Net's trainers nor in {searched}")
    return found


def network_trained_by(name: str, extra_folders: Sequence[str | Path] = ()) -> Network | None:
    """The Swin-UMamba network the trainer `name` builds (one of ours by name, else found like
    find_trainer_class and judged by its network_class); None for a trainer of another network."""
    network = network_of_trainer(name)
    if network is not None:
        return network
    return network_built_by(getattr(find_trainer_class(name, extra_folders), "network_class", None))
