"""Plan each test data set with nnU-Net from scratch and keep the fingerprint it computed."""
from __future__ import annotations

import tempfile
from pathlib import Path

from tests.nnunet_fingerprints import fixture_data_sets, store
from tests.nnunet_workspace import NnUNetWorkspace


def main() -> None:
    for spec in fixture_data_sets():
        with tempfile.TemporaryDirectory() as root:
            workspace = NnUNetWorkspace(Path(root))
            workspace.plan(spec, known_fingerprint=False)
            print(f"{spec.name}: {store(workspace.raw / spec.name, workspace.pre / spec.name)}")


if __name__ == "__main__":
    main()
