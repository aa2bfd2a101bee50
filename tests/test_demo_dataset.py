"""Consistency checks for the embedded demo dataset (no training, runs in about a second)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO / "swin_umamba" / "demo_data" / "Dataset990_DemoAbdomenMR"
CHANNEL = "_0000"


def _load_json() -> dict:
    with open(DATASET / "dataset.json") as handle:
        return json.load(handle)


def _case_ids(folder: Path, ending: str, suffix: str = "") -> list[str]:
    tail = suffix + ending
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    assert all(n.endswith(tail) for n in names), f"unexpected files in {folder}: {names}"
    return [n[: -len(tail)] for n in names]


def _read(path: Path):
    image = sitk.ReadImage(str(path))
    return image, sitk.GetArrayFromImage(image)


@pytest.fixture(scope="module")
def meta() -> dict:
    return _load_json()


def test_layout_and_documentation_present():
    for name in ("dataset.json", "LICENSE", "README.md", "imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        assert (DATASET / name).exists(), name
    assert "Apache License" in (DATASET / "LICENSE").read_text()
    readme = (DATASET / "README.md").read_text()
    assert "TotalSegmentator" in readme and "2.18.0" in readme


def test_dataset_json_fields(meta):
    for key in ("channel_names", "labels", "numTraining", "file_ending"):
        assert key in meta, key
    assert meta["channel_names"] == {"0": "MR"}
    labels = meta["labels"]
    assert labels["background"] == 0
    assert sorted(labels.values()) == list(range(len(labels)))
    assert 2 <= len(labels) <= 5


@pytest.mark.parametrize("split", ["Tr", "Ts"])
def test_every_image_has_a_label(meta, split):
    ending = meta["file_ending"]
    images = _case_ids(DATASET / f"images{split}", ending, CHANNEL)
    labels = _case_ids(DATASET / f"labels{split}", ending)
    assert images, f"images{split} is empty"
    assert images == labels


def test_case_counts(meta):
    ending = meta["file_ending"]
    train = _case_ids(DATASET / "imagesTr", ending, CHANNEL)
    test = _case_ids(DATASET / "imagesTs", ending, CHANNEL)
    assert len(train) == meta["numTraining"]
    assert len(train) >= 10, "need enough training cases for 5-fold cross-validation"
    assert len(test) >= 1
    assert not set(train) & set(test)


@pytest.mark.parametrize("split", ["Tr", "Ts"])
def test_images_and_labels_match(meta, split):
    ending = meta["file_ending"]
    allowed = set(meta["labels"].values())
    seen: set[int] = set()
    for case in _case_ids(DATASET / f"labels{split}", ending):
        image, image_arr = _read(DATASET / f"images{split}" / f"{case}{CHANNEL}{ending}")
        label, label_arr = _read(DATASET / f"labels{split}" / f"{case}{ending}")
        assert image_arr.ndim == 2, case
        assert image_arr.shape == label_arr.shape, case
        assert max(image_arr.shape) <= 160, case
        assert np.allclose(image.GetSpacing(), label.GetSpacing()), case
        assert np.allclose(image.GetOrigin(), label.GetOrigin()), case
        assert np.allclose(image.GetDirection(), label.GetDirection()), case
        assert np.issubdtype(label_arr.dtype, np.integer), case
        assert np.isfinite(image_arr).all() and image_arr.std() > 0, case
        values = set(np.unique(label_arr).tolist())
        assert values <= allowed, f"{case}: {values - allowed}"
        assert values - {0}, f"{case} has no foreground"
        seen |= values
    if split == "Tr":
        assert seen == allowed, f"training labels miss classes {allowed - seen}"


def test_shipped_size_is_small():
    total = sum(p.stat().st_size for p in DATASET.rglob("*") if p.is_file())
    assert total < 2 * 1024 * 1024
