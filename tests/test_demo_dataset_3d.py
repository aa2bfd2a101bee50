"""Consistency checks for the embedded 3D demo dataset (no training, about a second)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO / "swin_umamba" / "demo_data" / "Dataset992_DemoAbdomenMR3D"
TWO_D = REPO / "swin_umamba" / "demo_data" / "Dataset990_DemoAbdomenMR"
CHANNEL = "_0000"


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads((DATASET / "dataset.json").read_text())


def _cases(split: str) -> list[str]:
    return sorted(p.name[: -len("_0000.nii.gz")] for p in (DATASET / f"images{split}").iterdir())


def _read(path: Path):
    image = sitk.ReadImage(str(path))
    return image, sitk.GetArrayFromImage(image)


def test_layout_licence_and_provenance():
    for name in ("dataset.json", "LICENSE", "README.md", "imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        assert (DATASET / name).exists(), name
    assert (DATASET / "LICENSE").read_bytes() == (TWO_D / "LICENSE").read_bytes()
    readme = " ".join((DATASET / "README.md").read_text().split())
    assert "TotalSegmentator" in readme and "2.18.0" in readme and "one subject" in readme
    for case in _cases("Tr") + _cases("Ts"):
        assert f"`{case}`" in readme, f"README does not say how {case} was made"


def test_same_labels_as_the_2d_demo(meta):
    assert meta["labels"] == json.loads((TWO_D / "dataset.json").read_text())["labels"]
    assert meta["channel_names"] == {"0": "MR"}


def test_enough_cases_for_five_folds(meta):
    train, test = _cases("Tr"), _cases("Ts")
    assert len(train) == meta["numTraining"] >= 5
    assert len(test) >= 1 and not set(train) & set(test)
    for split in ("Tr", "Ts"):
        labels = sorted(p.name[: -len(".nii.gz")] for p in (DATASET / f"labels{split}").iterdir())
        assert labels == _cases(split)


@pytest.mark.parametrize("split", ["Tr", "Ts"])
def test_volumes_are_anisotropic_3d_with_every_organ(meta, split):
    allowed = set(meta["labels"].values())
    for case in _cases(split):
        image, image_arr = _read(DATASET / f"images{split}" / f"{case}{CHANNEL}.nii.gz")
        label, label_arr = _read(DATASET / f"labels{split}" / f"{case}.nii.gz")
        assert image_arr.ndim == 3 and image_arr.shape == label_arr.shape, case
        # the slice axis twice as coarse as in-plane: nnU-Net pools it later than the others
        assert np.allclose(image.GetSpacing(), (3.0, 3.0, 6.0)), (case, image.GetSpacing())
        assert np.allclose(image.GetOrigin(), label.GetOrigin()) and np.allclose(image.GetSpacing(), label.GetSpacing())
        assert image_arr.std() > 0
        assert set(np.unique(label_arr).tolist()) == allowed, case


def test_neighbouring_slabs_overlap_as_the_readme_says():
    """p0o0 and p0o1 are slabs of one 6 mm volume one slice apart: 7 of their 8 slices are the same."""
    _, first = _read(DATASET / "imagesTr" / f"AbdomenMR3D_p0o0{CHANNEL}.nii.gz")
    second_image, second = _read(DATASET / "imagesTr" / f"AbdomenMR3D_p0o1{CHANNEL}.nii.gz")
    first_image = sitk.ReadImage(str(DATASET / "imagesTr" / f"AbdomenMR3D_p0o0{CHANNEL}.nii.gz"))
    np.testing.assert_array_equal(first[1:], second[:-1])
    assert second_image.GetOrigin()[2] == pytest.approx(first_image.GetOrigin()[2] + 6.0)


def test_shipped_size_is_small():
    assert sum(p.stat().st_size for p in DATASET.rglob("*") if p.is_file()) < 700 * 1024
