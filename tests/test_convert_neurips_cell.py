"""NeurIPS Cell Seg -> Dataset703_NeurIPSCell, and predictions -> instance TIFFs, on a miniature release."""
import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from swin_umamba.preprocessing.common import ConversionError
from swin_umamba.preprocessing.neurips_cell import (cells_to_instances, convert_neurips_cell, instances_to_classes,
                                                    to_rgb8)


def instances(shape=(16, 20)):
    inst = np.zeros(shape, np.uint16)
    inst[2:7, 2:7] = 1
    inst[2:7, 7:12] = 2  # touches cell 1
    inst[10:15, 14:19] = 3
    return inst


def make_release(root):
    images, labels = root / "images", root / "labels"
    images.mkdir(parents=True), labels.mkdir(parents=True)
    rng = np.random.default_rng(0)
    tifffile.imwrite(images / "cell_00001.tiff", (rng.random((16, 20)) * 60000).astype(np.uint16))  # 16-bit grey
    Image.fromarray((rng.random((16, 20, 3)) * 255).astype(np.uint8)).save(images / "cell_00002.png")  # RGB
    Image.fromarray((rng.random((16, 20)) * 255).astype(np.uint8)).save(images / "cell_00003.bmp")  # grey
    Image.fromarray((rng.random((16, 20, 3)) * 255).astype(np.uint8)).save(images / "cell_00004.jpg")
    Image.fromarray((rng.random((16, 20, 4)) * 255).astype(np.uint8)).save(images / "cell_00005.png")  # RGBA
    for case in range(1, 6):
        tifffile.imwrite(labels / f"cell_{case:05d}_label.tiff", instances())
    test_images, test_labels = root / "tuning" / "images", root / "tuning" / "labels"
    test_images.mkdir(parents=True), test_labels.mkdir(parents=True)
    tifffile.imwrite(test_images / "cell_00100.tif", (rng.random((3, 16, 20)) * 255).astype(np.uint8),
                     photometric="minisblack")  # C, H, W
    tifffile.imwrite(test_labels / "cell_00100_label.tiff", instances())
    return images, labels, test_images, test_labels


def test_boundary_rule():
    classes = instances_to_classes(instances().astype(np.int64))
    assert classes[4, 4] == 1 and classes[4, 9] == 1  # interiors
    assert classes[2, 2] == 2 and classes[4, 6] == 2 and classes[4, 7] == 2  # outline and the shared edge
    assert classes[0, 0] == 0 and classes[8, 8] == 0
    edge = np.zeros((5, 5), np.int64)
    edge[0:3, 0:3] = 1  # touches the image edge: the edge is not a boundary
    got = instances_to_classes(edge)
    assert got[0, 0] == 1 and got[2, 2] == 2 and got[0, 2] == 2


def test_to_rgb8_stretches_percentiles():
    grey16 = np.arange(1, 101, dtype=np.uint16).reshape(10, 10) * 600
    rgb = to_rgb8(grey16, "x")
    assert rgb.shape == (10, 10, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255 and np.array_equal(rgb[..., 0], rgb[..., 2])
    assert np.array_equal(to_rgb8(np.full((4, 4), 7, np.uint8), "x")[..., 1], np.full((4, 4), 7))


def test_converts_and_verifies(tmp_path):
    images, labels, test_images, test_labels = make_release(tmp_path / "src")
    target = convert_neurips_cell(images, labels, tmp_path / "raw", test_images=test_images,
                                  test_labels=test_labels, num_processes=1)
    assert sorted(p.name for p in (target / "imagesTr").iterdir()) == [f"cell_{i:05d}_0000.png" for i in range(1, 6)]
    for i in range(1, 6):
        image = np.asarray(Image.open(target / "imagesTr" / f"cell_{i:05d}_0000.png"))
        assert image.shape == (16, 20, 3) and image.dtype == np.uint8
        label = np.asarray(Image.open(target / "labelsTr" / f"cell_{i:05d}.png"))
        assert np.array_equal(label, instances_to_classes(instances().astype(np.int64)))
    assert np.asarray(Image.open(target / "imagesTs" / "cell_00100_0000.png")).shape == (16, 20, 3)
    assert (target / "labelsTs" / "cell_00100_label.tiff").read_bytes() == \
        (test_labels / "cell_00100_label.tiff").read_bytes()
    meta = json.loads((target / "dataset.json").read_text())
    assert meta["numTraining"] == 5 and meta["file_ending"] == ".png"
    assert meta["labels"] == {"background": 0, "interior": 1, "boundary": 2}
    assert len(meta["channel_names"]) == 3


@pytest.mark.parametrize("problem", ["missing", "size", "negative"])
def test_bad_inputs_name_the_file_and_leave_nothing(tmp_path, problem):
    images, labels, _, _ = make_release(tmp_path / "src")
    if problem == "missing":
        (labels / "cell_00003_label.tiff").unlink()
    elif problem == "size":
        tifffile.imwrite(labels / "cell_00003_label.tiff", np.zeros((16, 21), np.uint16))
    else:
        tifffile.imwrite(labels / "cell_00003_label.tiff", np.full((16, 20), -1, np.int32))
    with pytest.raises(ConversionError, match="cell_00003_label.tiff"):
        convert_neurips_cell(images, labels, tmp_path / "raw", verify=False)
    raw = tmp_path / "raw"
    assert not raw.exists() or not any(raw.iterdir())


def test_rerun_refuses(tmp_path):
    images, labels, _, _ = make_release(tmp_path / "src")
    convert_neurips_cell(images, labels, tmp_path / "raw", verify=False)
    with pytest.raises(ConversionError, match="--overwrite"):
        convert_neurips_cell(images, labels, tmp_path / "raw", verify=False)


def test_cells_to_instances(tmp_path):
    pred = tmp_path / "pred"
    pred.mkdir()
    semantic = instances_to_classes(instances().astype(np.int64))
    semantic[8, 8] = 1  # a lone interior pixel is a cell too
    Image.fromarray(semantic).save(pred / "cell_00100.png")
    out = cells_to_instances(pred, tmp_path / "inst")
    inst = tifffile.imread(out / "cell_00100_label.tiff")
    assert inst.max() == 4 and set(np.unique(inst[semantic == 1])) == {1, 2, 3, 4}
    assert np.all(inst[semantic != 1] == 0)
    with pytest.raises(ConversionError, match="--overwrite"):
        cells_to_instances(pred, tmp_path / "inst")
    Image.fromarray(np.full((4, 4), 3, np.uint8)).save(pred / "cell_00101.png")
    with pytest.raises(ConversionError, match="cell_00101.png"):
        cells_to_instances(pred, tmp_path / "inst2")
    assert not (tmp_path / "inst2").exists()
