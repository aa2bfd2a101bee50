"""The key/shape lists of published checkpoints kept in tests/fixtures/ (its README says where each comes from)."""
from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load_layout(name: str) -> dict:
    """One fixture file, e.g. ``swinumamba_keys_in1_out14.json``: its ``state_dict`` maps key -> shape in order."""
    return json.loads((FIXTURES / name).read_text())
