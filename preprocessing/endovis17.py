"""EndoVis 2017 Robotic Instrument Segmentation -> Dataset704_Endovis17 (instrument types, 7 classes).

Source layout (the challenge release)::

    <root>/instrument_dataset_K/left_frames/frameXXX.png
    <root>/instrument_dataset_K/ground_truth/<Instrument>_labels/frameXXX.png   (one mask per instrument)

Each left frame -> `imagesTr/instrument_dataset_K_frameXXX_0000.png` (RGB); the instrument
masks of that frame (pixel > 0, any channel) are merged into one label map
`labelsTr/instrument_dataset_K_frameXXX.png`. Folder names vary between sequences
(`Left_Prograsp_Forceps_labels`, `Large_Needle_Driver_Left_labels`, `Prograsp_Forceps`, ...):
the side words Left/Right and the `_labels` suffix are ignored, then the name is matched by
`INSTRUMENT_CLASSES` (first match wins):

    1 Bipolar Forceps            ..."bipolar_forceps" (Maryland_Bipolar_Forceps included)
    2 Prograsp Forceps           ..."prograsp_forceps"
    3 Large Needle Driver        ..."needle_driver"
    4 Vessel Sealer              ..."vessel_sealer"
    5 Grasping Retractor         ..."grasping_retractor"
    6 Monopolar Curved Scissors  ..."curved_scissors"
    7 Other (ultrasound probe)   ..."other" or "ultrasound"

A folder matching none of them stops the conversion with its name. Where two masks of
different classes cover a pixel, the folder later in name order wins and the count of such
pixels is reported. Test sequences in the same layout go to imagesTs/labelsTs (labelsTs
only where ground_truth folders exist).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from swin_umamba.nnunet_layout import IMAGES_TR, IMAGES_TS, LABELS_TR, LABELS_TS, image_file

from .common import (ConversionError, finish_rgb_png_dataset, progress, read_image, save_png, staged_target,
                     warn)

DATASET_NAME = "Dataset704_Endovis17"
DESCRIPTION = ("EndoVis 2017 Robotic Instrument Segmentation, left frames, instrument-type labels "
              "merged from the per-instrument masks.")
REFERENCE = "https://endovissub2017-roboticinstrumentsegmentation.grand-challenge.org/"
INSTRUMENT_CLASSES: tuple[tuple[str, int], ...] = (
    ("bipolar_forceps", 1), ("prograsp_forceps", 2), ("needle_driver", 3), ("vessel_sealer", 4),
    ("grasping_retractor", 5), ("curved_scissors", 6), ("other", 7), ("ultrasound", 7),
)
LABELS_704 = {
    "background": 0, "bipolar forceps": 1, "prograsp forceps": 2, "large needle driver": 3, "vessel sealer": 4,
    "grasping retractor": 5, "monopolar curved scissors": 6, "other (ultrasound probe)": 7,
}
_SEQUENCE = re.compile(r"^instrument_dataset_(\d+)$")


def instrument_class(folder_name: str) -> int:
    """Class id of a ground_truth sub-folder name; ConversionError for an unknown instrument."""
    words = [w for w in folder_name.lower().replace("-", "_").replace(" ", "_").split("_")
             if w and w not in ("left", "right", "labels", "label")]
    name = "_".join(words)
    for key, label in INSTRUMENT_CLASSES:
        if key in name:
            return label
    raise ConversionError(f"unknown instrument folder {folder_name!r} (expected one of the 7 EndoVis 2017 "
                          f"instrument types)")


def _sequences(root: Path) -> list[tuple[str, Path]]:
    if not root.is_dir():
        raise ConversionError(f"EndoVis 2017 folder not found: {root}")
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _SEQUENCE.match(p.name))]
    if not found:
        raise ConversionError(f"no instrument_dataset_K folder in {root}")
    return [(p.name, p) for _, p in sorted(found)]


def _frames(sequence: Path) -> list[Path]:
    folder = sequence / "left_frames"
    frames = sorted(p for p in folder.glob("*.png") if p.is_file()) if folder.is_dir() else []
    if not frames:
        raise ConversionError(f"no left_frames/*.png in {sequence}")
    return frames


def _mask_folders(sequence: Path) -> list[tuple[Path, int]]:
    gt = sequence / "ground_truth"
    if not gt.is_dir():
        return []
    return [(p, instrument_class(p.name)) for p in sorted(gt.iterdir()) if p.is_dir()]


def to_rgb(image: np.ndarray, path: Path) -> np.ndarray:
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise ConversionError(f"{path}: expected an RGB frame, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ConversionError(f"{path}: expected an 8-bit frame, got {image.dtype}")
    return np.ascontiguousarray(image[..., :3])


def merge_masks(frame: Path, masks: list[tuple[Path, int]], shape: tuple[int, int]) -> tuple[np.ndarray, int]:
    """One label map from the instrument masks of `frame`; also the count of pixels claimed by two classes."""
    merged = np.zeros(shape, dtype=np.uint8)
    conflicts = 0
    for folder, label in masks:
        path = folder / frame.name
        if not path.is_file():
            raise ConversionError(f"missing mask {path} for frame {frame}")
        mask = read_image(path)
        if mask.ndim == 3:
            mask = mask.max(axis=-1)
        if mask.shape != shape:
            raise ConversionError(f"{path}: mask size {mask.shape} does not match frame {frame} size {shape}")
        hit = mask > 0
        conflicts += int(np.count_nonzero(hit & (merged != 0) & (merged != label)))
        merged[hit] = label
    return merged, conflicts


def _convert_split(root: Path, images: Path, labels: Path | None, what: str) -> int:
    items = []
    for name, sequence in _sequences(root):
        masks = _mask_folders(sequence)
        if labels is not None and not masks:
            raise ConversionError(f"no ground_truth/<instrument>_labels folder in {sequence}")
        items += [(name, frame, masks) for frame in _frames(sequence)]
    conflicts = 0
    for i, (name, frame, masks) in enumerate(items, 1):
        case = f"{name}_{frame.stem}"
        rgb = to_rgb(read_image(frame), frame)
        save_png(images / image_file(case, ".png"), rgb)
        if labels is not None:
            merged, clash = merge_masks(frame, masks, rgb.shape[:2])
            conflicts += clash
            save_png(labels / f"{case}.png", merged)
        progress(i, len(items), f"{what} {case}", every=100)
    if conflicts:
        warn(f"{conflicts} pixel(s) of {what} were covered by masks of two instrument types; "
             f"the folder later in name order was kept")
    return len(items)


def convert_endovis17(train_root: Path, raw_folder: Path, *, test_root: Path | None = None,
                      overwrite: bool = False, num_processes: int = 2, verify: bool = True) -> Path:
    """Build `raw_folder`/Dataset704_Endovis17; returns the dataset folder."""
    train_root, target = Path(train_root), Path(raw_folder) / DATASET_NAME
    _sequences(train_root)
    test_has_labels = False
    if test_root is not None:
        test_has_labels = any(_mask_folders(seq) for _, seq in _sequences(Path(test_root)))
    print(f"EndoVis 2017 -> {target}", flush=True)
    with staged_target(target, overwrite) as staging:
        for sub in (IMAGES_TR, LABELS_TR, IMAGES_TS) + ((LABELS_TS,) if test_has_labels else ()):
            (staging / sub).mkdir()
        n_train = _convert_split(train_root, staging / IMAGES_TR, staging / LABELS_TR, "training")
        if test_root is not None:
            _convert_split(Path(test_root), staging / IMAGES_TS,
                           staging / LABELS_TS if test_has_labels else None, "test")
        finish_rgb_png_dataset(staging, labels=LABELS_704, num_training=n_train, name=DATASET_NAME,
                               description=DESCRIPTION, reference=REFERENCE, verify=verify,
                               num_processes=num_processes)
    print(f"done: {target}", flush=True)
    return target
