"""Synthetic ImageNet VMamba-Tiny v0 checkpoints with the key layout of the released file (tests/fixtures/)."""
from __future__ import annotations

from pathlib import Path

import torch

from tests.published_layouts import load_layout


def v0_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    layout = load_layout("vmamba_tiny_v0_keys.json")["state_dict"]
    g = torch.Generator().manual_seed(seed)
    return {k: 0.02 * torch.randn(shape, generator=g) for k, shape in layout.items()}


def write_model_only_checkpoint(path: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    state = v0_state_dict(seed)
    torch.save({"model": state}, path)
    return state


def write_compact_checkpoint(path: Path) -> None:
    """A model-only v0 file of a few tens of kB: every tensor is one number broadcast to the released
    shape (torch.save keeps a view's one-element storage), so the loader's checks see the real layout."""
    layout = load_layout("vmamba_tiny_v0_keys.json")["state_dict"]
    state = {k: torch.full((1,) * len(shape), 0.01 * (i + 1)).expand(shape) for i, (k, shape) in enumerate(layout.items())}
    torch.save({"model": state}, path)
