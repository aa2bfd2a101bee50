"""EndoVis 2017 -> Dataset704_Endovis17 on a miniature of the release layout."""
import json

import numpy as np
import pytest
from PIL import Image

from swin_umamba.preprocessing.common import ConversionError
from swin_umamba.preprocessing.endovis17 import convert_endovis17, instrument_class

SHAPE = (12, 16)


def make_sequence(root, k, folders, frames=("frame000", "frame001")):
    seq = root / f"instrument_dataset_{k}"
    (seq / "left_frames").mkdir(parents=True)
    rng = np.random.default_rng(k)
    for frame in frames:
        Image.fromarray((rng.random((*SHAPE, 3)) * 255).astype(np.uint8)).save(seq / "left_frames" / f"{frame}.png")
        for j, folder in enumerate(folders):
            mask = np.zeros(SHAPE, np.uint8)
            mask[j * 3:j * 3 + 2, 2:6] = 10 * (j + 1)  # part values differ; any value > 0 is the instrument
            (seq / "ground_truth" / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask).save(seq / "ground_truth" / folder / f"{frame}.png")
    return seq


def make_release(root):
    make_sequence(root, 1, ["Left_Prograsp_Forceps_labels", "Maryland_Bipolar_Forceps_labels", "Other_labels"])
    make_sequence(root, 2, ["Large_Needle_Driver_Left_labels", "Monopolar_Curved_Scissors_labels",
                            "Right_Vessel_Sealer", "Right_Grasping_Retractor_labels"])
    return root


def test_folder_names_map_to_the_seven_types():
    assert instrument_class("Maryland_Bipolar_Forceps_labels") == 1
    assert instrument_class("Bipolar_Forceps_labels") == 1
    assert instrument_class("Left_Prograsp_Forceps_labels") == 2
    assert instrument_class("Prograsp_Forceps") == 2
    assert instrument_class("Large_Needle_Driver_Right_labels") == 3
    assert instrument_class("Right_Vessel_Sealer") == 4
    assert instrument_class("Left_Grasping_Retractor_labels") == 5
    assert instrument_class("Monopolar_Curved_Scissors_labels") == 6
    assert instrument_class("Other_labels") == 7
    with pytest.raises(ConversionError, match="Scalpel_labels"):
        instrument_class("Scalpel_labels")


def test_converts_and_verifies(tmp_path):
    src = make_release(tmp_path / "train")
    test_src = tmp_path / "test"
    make_sequence(test_src, 9, ["Bipolar_Forceps_labels"], frames=("frame000",))
    target = convert_endovis17(src, tmp_path / "raw", test_root=test_src, num_processes=1)
    names = sorted(p.name for p in (target / "labelsTr").iterdir())
    assert names == ["instrument_dataset_1_frame000.png", "instrument_dataset_1_frame001.png",
                     "instrument_dataset_2_frame000.png", "instrument_dataset_2_frame001.png"]
    label = np.asarray(Image.open(target / "labelsTr" / "instrument_dataset_1_frame000.png"))
    assert label[0, 2] == 2 and label[3, 2] == 1 and label[6, 2] == 7 and label[0, 10] == 0
    label = np.asarray(Image.open(target / "labelsTr" / "instrument_dataset_2_frame001.png"))
    assert [label[r, 3] for r in (0, 3, 6, 9)] == [3, 6, 4, 5]
    image = np.asarray(Image.open(target / "imagesTr" / "instrument_dataset_2_frame001_0000.png"))
    assert image.shape == (*SHAPE, 3)
    assert (target / "imagesTs" / "instrument_dataset_9_frame000_0000.png").is_file()
    assert np.asarray(Image.open(target / "labelsTs" / "instrument_dataset_9_frame000.png"))[0, 2] == 1
    meta = json.loads((target / "dataset.json").read_text())
    assert meta["numTraining"] == 4 and meta["file_ending"] == ".png" and len(meta["labels"]) == 8


@pytest.mark.parametrize("problem", ["missing", "size", "unknown"])
def test_bad_inputs_name_the_file_and_leave_nothing(tmp_path, problem):
    src = make_release(tmp_path / "train")
    gt = src / "instrument_dataset_2" / "ground_truth"
    if problem == "missing":
        (gt / "Right_Vessel_Sealer" / "frame001.png").unlink()
        culprit = "Right_Vessel_Sealer/frame001.png"
    elif problem == "size":
        Image.fromarray(np.zeros((12, 15), np.uint8)).save(gt / "Right_Vessel_Sealer" / "frame001.png")
        culprit = "Right_Vessel_Sealer/frame001.png"
    else:
        (gt / "Mystery_Tool_labels").mkdir()
        culprit = "Mystery_Tool_labels"
    with pytest.raises(ConversionError, match=culprit):
        convert_endovis17(src, tmp_path / "raw", verify=False)
    raw = tmp_path / "raw"
    assert not raw.exists() or not any(raw.iterdir())


def test_rerun_refuses_and_overwrite_replaces(tmp_path):
    src = make_release(tmp_path / "train")
    target = convert_endovis17(src, tmp_path / "raw", verify=False)
    (target / "marker").write_text("old")
    with pytest.raises(ConversionError, match="--overwrite"):
        convert_endovis17(src, tmp_path / "raw", verify=False)
    assert (target / "marker").exists()
    convert_endovis17(src, tmp_path / "raw", overwrite=True, verify=False)
    assert not (target / "marker").exists()
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["Dataset704_Endovis17"]
