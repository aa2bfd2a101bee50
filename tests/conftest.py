import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """../shared beside the checkout (CI clones with shared/ next to it)."""
    for candidate in (REPO / "shared", REPO.parent / "shared"):
        if (candidate / "golden").is_dir():
            return candidate
    pytest.skip("shared/golden not found beside the checkout")


@pytest.fixture(scope="session")
def golden():
    def load(name: str) -> dict:
        return json.loads((shared_dir() / "golden" / name).read_text())

    return load
