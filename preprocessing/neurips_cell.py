"""NeurIPS 2022 Cell Segmentation -> Dataset703_NeurIPSCell, and predictions -> instance TIFFs.

Source layout (the challenge release)::

    Training-labeled/images/cell_00001.{tif,tiff,png,bmp,jpg}   (grey, RGB, 8- or 16-bit)
    Training-labeled/labels/cell_00001_label.tiff                (instance map, 0 = background)
    Tuning/images/...  + the matching *_label.tiff files        (the evaluation split, optional)

Images -> `imagesTr/<id>_0000.png`, 3-channel 8-bit RGB (nnU-Net's natural-image reader takes
the three channels from the one file). Per channel, as in the challenge baseline: the
non-zero pixels' 1st and 99th percentiles are stretched to 0..255 (values clipped, then
truncated to integers); a channel whose percentiles differ by 0.001 or less is clipped to
0..255 unchanged; an all-zero channel stays 0. Grey images are repeated to three channels,
a fourth (alpha) channel is dropped, a second-only pair gets a zero third channel, and a
channel-first (C, H, W) TIFF with C <= 4 is moved to channel-last.

Instance labels -> `labelsTr/<id>.png` with 3 classes: 0 background, 1 interior, 2 boundary.
Boundary rule: a pixel of instance k is boundary when any of its 8 neighbours inside the
image holds a different value (background or another instance); the image edge itself does
not make a boundary. Two touching cells are therefore split by two boundary pixels, and
8-connected components of class 1 never join two cells. Cells at most 2 pixels wide have no
interior and vanish from class 1.

The evaluation split keeps its instance TIFFs unchanged as `labelsTs/<id>_label.tiff`, the
ground truth of `swin-umamba evaluate --task cells`.

`cells_to_instances` turns 3-class predictions back into instance TIFFs: the 8-connected
components of class 1, numbered 1..n (what the paper's evaluation scores).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from swin_umamba.nnunet_layout import IMAGES_TR, IMAGES_TS, LABELS_TR, LABELS_TS, image_file

from .common import (IMAGE_SUFFIXES, ConversionError, finish_rgb_png_dataset, integer_labels, progress,
                     read_image, save_png, staged_target)

DATASET_NAME = "Dataset703_NeurIPSCell"
DESCRIPTION = ("NeurIPS 2022 Cell Segmentation: images as 8-bit RGB (per-channel 1-99 percentile "
              "stretch), instances as background / interior / boundary (8-neighbour boundary rule).")
REFERENCE = "https://neurips22-cellseg.grand-challenge.org/"
LABELS_703 = {"background": 0, "interior": 1, "boundary": 2}
LABEL_SUFFIXES = ("_label.tiff", "_label.tif")


def to_rgb8(image: np.ndarray, path: Path) -> np.ndarray:
    """Any grey/RGB(A), 8/16-bit or float image -> (H, W, 3) uint8 (rules in the module docstring)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] not in (1, 2, 3, 4) and image.shape[0] in (1, 2, 3, 4):
        image = np.moveaxis(image, 0, -1)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    elif image.ndim == 3 and image.shape[-1] == 2:
        image = np.concatenate([image, np.zeros_like(image[..., :1])], axis=-1)
    elif image.ndim == 3 and image.shape[-1] >= 3:
        image = image[..., :3]
    else:
        raise ConversionError(f"{path}: unsupported image shape {image.shape}")
    out = np.zeros(image.shape, dtype=np.uint8)
    for c in range(3):
        channel = image[..., c].astype(np.float64)
        values = channel[channel != 0]
        if values.size == 0:
            continue
        low, high = np.percentile(values, [1, 99])
        if high - low > 1e-3:
            out[..., c] = ((np.clip(channel, low, high) - low) / (high - low) * 255.0).astype(np.uint8)
        else:
            out[..., c] = np.clip(channel, 0, 255).astype(np.uint8)
    return out


def instances_to_classes(instances: np.ndarray) -> np.ndarray:
    """Instance map -> 0 background, 1 interior, 2 boundary (8-neighbour rule, edge of image not counted)."""
    h, w = instances.shape
    padded = np.pad(instances, 1, mode="edge")
    boundary = np.zeros((h, w), dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                boundary |= padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] != instances
    classes = np.zeros((h, w), dtype=np.uint8)
    cells = instances > 0
    classes[cells] = 1
    classes[cells & boundary] = 2
    return classes


def read_instances(path: Path) -> np.ndarray:
    """2D instance map of a label TIFF; negative ids raise ConversionError naming `path`."""
    data = np.squeeze(read_image(path))
    if data.ndim != 2:
        raise ConversionError(f"{path}: an instance label must be 2D, got shape {data.shape}")
    data = integer_labels(data, path)
    if data.size and data.min() < 0:
        raise ConversionError(f"{path}: negative instance id {int(data.min())}")
    return data


def _image_cases(folder: Path) -> list[tuple[str, Path]]:
    if not folder.is_dir():
        raise ConversionError(f"image folder not found: {folder}")
    cases: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in cases:
                raise ConversionError(f"two images for case {path.stem}: {cases[path.stem]} and {path}")
            cases[path.stem] = path
    if not cases:
        raise ConversionError(f"no image ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return sorted(cases.items())


def _label_for(case: str, folder: Path, image: Path) -> Path:
    for suffix in LABEL_SUFFIXES:
        if (folder / f"{case}{suffix}").is_file():
            return folder / f"{case}{suffix}"
    raise ConversionError(f"missing label {folder / (case + LABEL_SUFFIXES[0])} for image {image}")


def _load_pair(case: str, image_path: Path, labels: Path) -> tuple[np.ndarray, np.ndarray, Path]:
    label_path = _label_for(case, labels, image_path)
    rgb = to_rgb8(read_image(image_path), image_path)
    instances = read_instances(label_path)
    if instances.shape != rgb.shape[:2]:
        raise ConversionError(f"{label_path}: label size {instances.shape} does not match image {image_path} "
                              f"size {rgb.shape[:2]}")
    return rgb, instances, label_path


def convert_neurips_cell(images: Path, labels: Path, raw_folder: Path, *, test_images: Path | None = None,
                         test_labels: Path | None = None, overwrite: bool = False, num_processes: int = 2,
                         verify: bool = True) -> Path:
    """Build `raw_folder`/Dataset703_NeurIPSCell; returns the dataset folder."""
    images, labels, target = Path(images), Path(labels), Path(raw_folder) / DATASET_NAME
    if not labels.is_dir():
        raise ConversionError(f"label folder not found: {labels}")
    training = _image_cases(images)
    test = _image_cases(Path(test_images)) if test_images else []
    if test_labels and not test_images:
        raise ConversionError("--test-labels needs --test-images")
    if test_labels and not Path(test_labels).is_dir():
        raise ConversionError(f"label folder not found: {test_labels}")
    print(f"NeurIPS Cell Seg -> {target}: {len(training)} training images, {len(test)} test images", flush=True)
    with staged_target(target, overwrite) as staging:
        for sub in (IMAGES_TR, LABELS_TR, IMAGES_TS) + ((LABELS_TS,) if test_labels else ()):
            (staging / sub).mkdir()
        for i, (case, image_path) in enumerate(training, 1):
            rgb, instances, _ = _load_pair(case, image_path, labels)
            save_png(staging / IMAGES_TR / image_file(case, ".png"), rgb)
            save_png(staging / LABELS_TR / f"{case}.png", instances_to_classes(instances))
            progress(i, len(training), case, every=50)
        for i, (case, image_path) in enumerate(test, 1):
            if test_labels:
                rgb, _, label_path = _load_pair(case, image_path, Path(test_labels))
                shutil.copyfile(label_path, staging / LABELS_TS / f"{case}_label.tiff")
            else:
                rgb = to_rgb8(read_image(image_path), image_path)
            save_png(staging / IMAGES_TS / image_file(case, ".png"), rgb)
            progress(i, len(test), case, every=50)
        finish_rgb_png_dataset(staging, labels=LABELS_703, num_training=len(training), name=DATASET_NAME,
                               description=DESCRIPTION, reference=REFERENCE, verify=verify,
                               num_processes=num_processes)
    print(f"done: {target}", flush=True)
    return target


def semantic_to_instances(semantic: np.ndarray) -> np.ndarray:
    """8-connected components of class 1, numbered 1..n."""
    from swin_umamba.evaluation.cells import instances_from_semantic

    return instances_from_semantic(semantic)


def cells_to_instances(predictions: Path, out: Path, *, overwrite: bool = False,
                       say: Callable[[str], None] | None = None) -> Path:
    """Every `<id>.png` 3-class prediction in `predictions` -> `out/<id>_label.tiff` instance map.

    `say` receives the progress lines (printed when None)."""
    say = say or (lambda line: print(line, flush=True))
    import tifffile

    predictions, out = Path(predictions), Path(out)
    if not predictions.is_dir():
        raise ConversionError(f"prediction folder not found: {predictions}")
    files = sorted(p for p in predictions.iterdir() if p.is_file() and p.suffix.lower() == ".png")
    if not files:
        raise ConversionError(f"no .png prediction in {predictions}")
    say(f"{len(files)} predictions -> instance TIFFs in {out}")
    with staged_target(out, overwrite) as staging:
        for i, path in enumerate(files, 1):
            semantic = integer_labels(read_image(path), path)
            if semantic.ndim != 2:
                raise ConversionError(f"{path}: a prediction must be a one-channel label map, got {semantic.shape}")
            bad = np.setdiff1d(np.unique(semantic), [0, 1, 2])
            if bad.size:
                raise ConversionError(f"{path}: label id(s) {bad.tolist()} are not in the 703 table (0, 1, 2)")
            instances = semantic_to_instances(semantic)
            dtype = np.uint16 if instances.max(initial=0) <= np.iinfo(np.uint16).max else np.uint32
            tifffile.imwrite(staging / f"{path.stem}_label.tiff", instances.astype(dtype))
            progress(i, len(files), path.stem, every=50, say=say)
    say(f"done: {out}")
    return out
