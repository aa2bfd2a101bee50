"""nnU-Net's dataset fingerprints of the test data sets, kept beside their key.

`nnUNetv2_plan_and_preprocess` reuses a `dataset_fingerprint.json` it finds (without `--clean`), as on any
re-run. Extracting one samples 10^8 foreground intensities whatever the data set's size: about 15 s on a
2-core CPU for each data set the session fixtures plan. The fixtures therefore place the fingerprint that
nnU-Net computed for exactly these raw files (the key: a digest of every file and the nnunetv2 version)
before planning; the integrity check, the planning and the preprocessing run as always. A data set whose
files or nnunetv2 changed gets no fingerprint and is planned from scratch, and
`tests/test_nnunet_fingerprints.py` fails until the files are written again:

    .venv/bin/python -m tests.nnunet_fingerprints
"""
from __future__ import annotations

import hashlib
import json
from importlib.metadata import version
from pathlib import Path

from swin_umamba.fileio import sha256_of

FOLDER = Path(__file__).resolve().parent
FINGERPRINT_FILE = "dataset_fingerprint.json"


def key_of(raw_dataset: Path) -> dict[str, str]:
    """What a fingerprint depends on: every file of the raw data set (names and bytes) and nnU-Net."""
    digest = hashlib.sha256()
    for path in sorted(p for p in raw_dataset.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(raw_dataset).as_posix()} {sha256_of(path)}\n".encode())
    return {"raw_files_sha256": digest.hexdigest(), "nnunetv2": version("nnunetv2")}


def stored_path(dataset_name: str) -> Path:
    return FOLDER / f"{dataset_name}.json"


def stored_fingerprint(raw_dataset: Path) -> dict | None:
    """The fingerprint kept for this data set, if its key matches the files in `raw_dataset`."""
    path = stored_path(raw_dataset.name)
    if not path.is_file():
        return None
    stored = json.loads(path.read_text())
    return stored["fingerprint"] if stored["key"] == key_of(raw_dataset) else None


def store(raw_dataset: Path, preprocessed_dataset: Path) -> Path:
    """Keep the fingerprint nnU-Net wrote into `preprocessed_dataset` for the files in `raw_dataset`."""
    fingerprint = json.loads((preprocessed_dataset / FINGERPRINT_FILE).read_text())
    path = stored_path(raw_dataset.name)
    path.write_text(json.dumps({"key": key_of(raw_dataset), "fingerprint": fingerprint}, indent=1) + "\n")
    return path


def fixture_data_sets():
    """The data sets the session fixtures plan (tests/conftest.py, tests/test_finetune_cli.py)."""
    from tests.conftest import DEMO_2D, DEMO_3D
    from tests.test_finetune_cli import TARGET

    return [DEMO_2D, DEMO_3D, TARGET]
