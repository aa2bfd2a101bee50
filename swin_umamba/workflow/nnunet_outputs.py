"""What nnU-Net's folders already hold: plans with their preprocessed data, test cases, checkpoints."""
from __future__ import annotations

import json
from pathlib import Path

from swin_umamba.nnunet_layout import image_file


def plans_ready(preprocessed_dataset: Path, plans: str, expected_cases: int, configuration: str) -> bool:
    """The plans file `plans`.json exists and `expected_cases` training cases are preprocessed for
    `configuration` in its data folder."""
    try:
        record = json.loads((Path(preprocessed_dataset) / f"{plans}.json").read_text())
        identifier = record["configurations"][configuration]["data_identifier"]
    except (OSError, ValueError, KeyError):
        return False
    data = Path(preprocessed_dataset) / identifier
    return data.is_dir() and len(list(data.glob("*.pkl"))) >= expected_cases


def case_ids(images: Path, file_ending: str) -> list[str]:
    """Case ids of a folder of nnU-Net images (<case>_0000<ending>, ...), sorted."""
    tail = image_file("", file_ending)
    return sorted(p.name[: -len(tail)] for p in Path(images).iterdir() if p.is_file() and p.name.endswith(tail))


def checkpoint_epoch(path: Path) -> int | None:
    """Epochs trained when nnU-Net wrote `path` (its 'current_epoch'); None if unreadable."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        return int(checkpoint["current_epoch"])
    except Exception:  # a truncated or foreign file: treat as "no usable checkpoint"
        return None
