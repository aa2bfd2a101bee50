"""Shared pieces of the converters: errors, staging + atomic publish, dataset.json, checks, image I/O."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from swin_umamba.nnunet_layout import DATASET_JSON


class ConversionError(Exception):
    """Bad or missing input; the message names the file or folder concerned."""


def progress(done: int, total: int, what: str, every: int = 1, say: Callable[[str], None] | None = None) -> None:
    """One line per `every` items (and the last one): "[done/total] what", printed or given to `say`."""
    if done == total or done % max(every, 1) == 0:
        line = f"[{done}/{total}] {what}"
        if say is None:
            print(line, flush=True)
        else:
            say(line)


@contextlib.contextmanager
def staged_target(target: Path, overwrite: bool) -> Iterator[Path]:
    """Build a dataset in a temporary folder beside `target`, then move it into place.

    Refuses when `target` exists unless `overwrite`. If the block raises, the temporary
    folder is removed and `target` is left as it was (absent, or the previous version).
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise ConversionError(f"{target} already exists; pass --overwrite to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield staging
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


RGB_CHANNELS = {0: "R", 1: "G", 2: "B"}  # channel_names of the 8-bit RGB PNG datasets (703, 704)


def write_dataset_json(folder: Path, *, channel_names: dict, labels: dict, num_training: int, file_ending: str,
                       name: str, description: str, **extra) -> dict:
    """dataset.json as nnU-Net v2 reads it (channel_names, labels, numTraining, file_ending)."""
    data = {
        "channel_names": {str(k): v for k, v in channel_names.items()},
        "labels": dict(labels),
        "numTraining": int(num_training),
        "file_ending": file_ending,
        "name": name,
        "description": description,
        **extra,
    }
    (Path(folder) / DATASET_JSON).write_text(json.dumps(data, indent=4) + "\n")
    return data


def verify_with_nnunet(folder: Path, num_processes: int = 2) -> None:
    """nnU-Net's own verify_dataset_integrity on `folder`; raises ConversionError if it fails."""
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    print(f"checking {folder} with nnU-Net's verify_dataset_integrity ...", flush=True)
    try:
        verify_dataset_integrity(str(folder), num_processes=max(1, num_processes))
    except (AssertionError, RuntimeError, FileNotFoundError) as exc:
        raise ConversionError(f"nnU-Net's integrity check failed for the converted dataset: {exc}") from exc


def finish_rgb_png_dataset(staging: Path, *, labels: dict, num_training: int, name: str, description: str,
                           reference: str, verify: bool, num_processes: int) -> None:
    """The last step of the 2D converters: dataset.json for RGB PNG images, then (``verify``)
    nnU-Net's integrity check, still inside the staging folder."""
    write_dataset_json(staging, channel_names=RGB_CHANNELS, labels=labels, num_training=num_training,
                       file_ending=".png", name=name, description=description, reference=reference)
    if verify:
        verify_with_nnunet(staging, num_processes)


IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".bmp", ".jpg", ".jpeg")


def read_image(path: Path) -> np.ndarray:
    """Pixel array of a TIFF (tifffile) or PNG/BMP/JPEG (Pillow), as stored (no colour conversion)."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            return np.asarray(tifffile.imread(str(path)))
        from PIL import Image

        with Image.open(path) as image:
            if image.mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            return np.asarray(image)
    except Exception as exc:
        raise ConversionError(f"{path}: cannot read image ({exc})") from exc


def integer_labels(data: np.ndarray, path: Path) -> np.ndarray:
    """Whole-number label array as int64; float arrays must hold whole numbers."""
    data = np.asarray(data)
    if data.dtype == bool:
        return data.astype(np.int64)
    if np.issubdtype(data.dtype, np.floating):
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.rint(data)):
            raise ConversionError(f"{path}: label values must be whole numbers")
        return np.rint(data).astype(np.int64)
    if not np.issubdtype(data.dtype, np.integer):
        raise ConversionError(f"{path}: unsupported label data type {data.dtype}")
    return data.astype(np.int64)


def save_png(path: Path, array: np.ndarray) -> None:
    """Lossless PNG: (H, W) uint8 grey or (H, W, 3) uint8 RGB."""
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(array)).save(path, format="PNG")


def default_raw_folder() -> Path | None:
    from swin_umamba.environment import NNUNET_RAW_VAR

    value = os.environ.get(NNUNET_RAW_VAR)
    return Path(value) if value else None


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)
