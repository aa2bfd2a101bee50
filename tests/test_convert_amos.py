"""AMOS 2022 -> Dataset702_AbdomenMR on a miniature of the AMOS layout."""
import json

import nibabel as nib
import numpy as np
import pytest

from swin_umamba.preprocessing.amos import AMOS_TO_702, convert_amos
from swin_umamba.preprocessing.common import ConversionError


def save(path, data, dtype=np.float32):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data.astype(dtype), np.diag([0.8, 0.8, 3.0, 1.0])), str(path))


def make_amos(root, label_overrides=None):
    rng = np.random.default_rng(0)
    label = np.zeros((6, 5, 4))
    label.flat[:16] = np.arange(16)  # every AMOS id once
    cases = {"Tr": [1, 500, 501], "Va": [540], "Ts": [200, 600]}
    for split, ids in cases.items():
        for case_id in ids:
            name = f"amos_{case_id:04d}.nii.gz"
            save(root / f"images{split}" / name, rng.random((6, 5, 4)))
            if split != "Ts":
                save(root / f"labels{split}" / name, label, np.uint8)
    for path, data in (label_overrides or {}).items():
        save(root / path, data, np.uint8)
    (root / "dataset.json").write_text("{}")
    return label


def test_converts_mri_cases_only_and_relabels(tmp_path):
    label = make_amos(tmp_path / "amos22")
    target = convert_amos(tmp_path / "amos22", tmp_path / "raw", num_processes=1)
    assert target == tmp_path / "raw" / "Dataset702_AbdomenMR"
    assert sorted(p.name for p in (target / "imagesTr").iterdir()) == [
        "amos_0500_0000.nii.gz", "amos_0501_0000.nii.gz", "amos_0540_0000.nii.gz"]
    assert sorted(p.name for p in (target / "imagesTs").iterdir()) == ["amos_0600_0000.nii.gz"]
    converted = nib.load(str(target / "labelsTr" / "amos_0540.nii.gz"))
    data = np.asanyarray(converted.dataobj)
    assert data.dtype == np.uint8
    assert np.allclose(converted.header.get_zooms(), (0.8, 0.8, 3.0))
    expected = np.vectorize(AMOS_TO_702.get)(label.astype(int))
    assert np.array_equal(data, expected)
    # spot checks of the table: AMOS spleen 1 -> 3, liver 6 -> 1, left kidney 3 -> 13, bladder 14 -> 0
    assert data.flat[1] == 3 and data.flat[6] == 1 and data.flat[3] == 13 and data.flat[14] == 0
    meta = json.loads((target / "dataset.json").read_text())
    assert meta["numTraining"] == 3 and meta["file_ending"] == ".nii.gz"
    assert meta["channel_names"] == {"0": "MR"}
    assert meta["labels"]["liver"] == 1 and meta["labels"]["left kidney"] == 13 and len(meta["labels"]) == 14
    assert (tmp_path / "amos22" / "imagesTr" / "amos_0500.nii.gz").read_bytes() == \
        (target / "imagesTr" / "amos_0500_0000.nii.gz").read_bytes()
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["Dataset702_AbdomenMR"]


def test_rerun_refuses_without_overwrite(tmp_path):
    make_amos(tmp_path / "amos22")
    convert_amos(tmp_path / "amos22", tmp_path / "raw", verify=False)
    with pytest.raises(ConversionError, match="--overwrite"):
        convert_amos(tmp_path / "amos22", tmp_path / "raw", verify=False)
    convert_amos(tmp_path / "amos22", tmp_path / "raw", overwrite=True, verify=False)
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["Dataset702_AbdomenMR"]


@pytest.mark.parametrize("problem", ["missing", "bad_id", "shape"])
def test_bad_inputs_name_the_file_and_leave_nothing(tmp_path, problem):
    root = tmp_path / "amos22"
    make_amos(root)
    if problem == "missing":
        (root / "labelsVa" / "amos_0540.nii.gz").unlink()
        culprit = "amos_0540.nii.gz"
    elif problem == "bad_id":
        bad = np.zeros((6, 5, 4))
        bad[0, 0, 0] = 16
        save(root / "labelsTr" / "amos_0501.nii.gz", bad, np.uint8)
        culprit = "amos_0501.nii.gz"
    else:
        save(root / "labelsTr" / "amos_0501.nii.gz", np.zeros((6, 5, 3)), np.uint8)
        culprit = "amos_0501.nii.gz"
    with pytest.raises(ConversionError, match=culprit):
        convert_amos(root, tmp_path / "raw", verify=False)
    raw = tmp_path / "raw"
    assert not raw.exists() or not any(raw.iterdir())
