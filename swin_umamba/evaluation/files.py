"""Reading masks, pairing ground truth with predictions, and writing the per-case CSV (atomically)."""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from swin_umamba.fileio import write_text_atomic


class EvaluationError(Exception):
    """A problem with the inputs of an evaluation; the message names the file(s) concerned."""


@dataclass(frozen=True)
class CasePair:
    name: str
    gt: Path
    pred: Path


def _as_labels(data: np.ndarray, path: Path) -> np.ndarray:
    data = np.asarray(data)
    if np.issubdtype(data.dtype, np.floating):
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.rint(data)):
            raise EvaluationError(f"{path}: label values must be whole numbers")
        data = np.rint(data)
    elif not (np.issubdtype(data.dtype, np.integer) or data.dtype == bool):
        raise EvaluationError(f"{path}: unsupported label data type {data.dtype}")
    return data.astype(np.int64)


def read_nifti_labels(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """Label map (3D volume or 2D slice) as stored (no reorientation) and the header zooms of its axes."""
    import nibabel as nib

    try:
        image = nib.load(str(path))
        data = np.asanyarray(image.dataobj)
    except Exception as exc:  # nibabel raises several types for broken files
        raise EvaluationError(f"{path}: cannot read NIfTI file ({exc})") from exc
    if data.ndim not in (2, 3):
        raise EvaluationError(f"{path}: expected a 2D or 3D label map, got shape {data.shape}")
    zooms = tuple(float(z) for z in image.header.get_zooms()[:data.ndim])
    return _as_labels(data, path), zooms


def read_sitk_labels(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """Label map of any format SimpleITK reads (NRRD, MHA, ...) in SimpleITK's array order, with its spacing."""
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except Exception as exc:  # SimpleITK raises RuntimeError with its own text
        raise EvaluationError(f"{path}: cannot read image ({' '.join(str(exc).split())[:300]})") from exc
    if image.GetNumberOfComponentsPerPixel() != 1 or image.GetDimension() not in (2, 3):
        raise EvaluationError(f"{path}: expected a single-channel 2D or 3D label map, got {image.GetDimension()}D "
                              f"with {image.GetNumberOfComponentsPerPixel()} components")
    # the array's axes are the image's in reverse order (z, y, x), so is the spacing
    return _as_labels(sitk.GetArrayFromImage(image), path), tuple(float(s) for s in reversed(image.GetSpacing()))


def read_labels_with_spacing(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """A 2D or 3D label map of any format nnU-Net stores labels in, with one spacing value per axis
    (1 per pixel for PNG and TIFF, which carry none)."""
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return read_nifti_labels(path)
    if name.endswith((".png", ".bmp")):
        data = read_png_labels(path)
    elif name.endswith((".tif", ".tiff")):
        data = _read_tiff(path)
        if data.ndim not in (2, 3):
            raise EvaluationError(f"{path}: expected a 2D or 3D label map, got shape {data.shape}")
        data = _as_labels(data, path)
    else:
        return read_sitk_labels(path)
    return data, (1.0,) * data.ndim


def read_png_labels(path: Path) -> np.ndarray:
    """Single-channel label map of a PNG (grey or palette)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            data = np.asarray(image)
    except Exception as exc:
        raise EvaluationError(f"{path}: cannot read image ({exc})") from exc
    if data.ndim != 2:
        raise EvaluationError(f"{path}: a label map needs one channel, got shape {data.shape}")
    return _as_labels(data, path)


def _read_tiff(path: Path) -> np.ndarray:
    """A TIFF's pixel data without length-1 axes."""
    import tifffile

    try:
        data = tifffile.imread(str(path))
    except Exception as exc:
        raise EvaluationError(f"{path}: cannot read TIFF ({exc})") from exc
    return np.squeeze(data)


def read_tiff_labels(path: Path) -> np.ndarray:
    """2D instance map of a TIFF (0 = background)."""
    data = _read_tiff(path)
    if data.ndim != 2:
        raise EvaluationError(f"{path}: an instance map must be 2D, got shape {data.shape}")
    return _as_labels(data, path)


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise EvaluationError(f"{what} folder not found: {path}")


def pair_by_name(gt_dir: Path, pred_dir: Path, suffix: str) -> list[CasePair]:
    """Every ground-truth file ending in `suffix` with the prediction of the same name."""
    _require_dir(gt_dir, "ground-truth")
    _require_dir(pred_dir, "prediction")
    gt_files = sorted(p for p in gt_dir.iterdir() if p.name.endswith(suffix) and p.is_file())
    if not gt_files:
        raise EvaluationError(f"no ground-truth files ending in {suffix} in {gt_dir}")
    pairs = [CasePair(p.name, p, pred_dir / p.name) for p in gt_files]
    _check_missing(pairs)
    return pairs


CELL_GT_SUFFIXES = ("_label.tiff", "_label.tif")


def pair_cells(gt_dir: Path, pred_dir: Path) -> list[CasePair]:
    """Instance ground truth `<id>_label.tiff` with prediction `<id>.png` (semantic) or `<id>_label.tiff` (instances)."""
    _require_dir(gt_dir, "ground-truth")
    _require_dir(pred_dir, "prediction")
    pairs = []
    for path in sorted(gt_dir.iterdir()):
        suffix = next((s for s in CELL_GT_SUFFIXES if path.name.endswith(s)), None)
        if suffix is None or not path.is_file():
            continue
        case = path.name[: -len(suffix)]
        candidates = [pred_dir / f"{case}.png"] + [pred_dir / f"{case}{s}" for s in CELL_GT_SUFFIXES]
        pred = next((c for c in candidates if c.is_file()), candidates[0])
        pairs.append(CasePair(case, path, pred))
    if not pairs:
        raise EvaluationError(f"no ground-truth files ending in {' or '.join(CELL_GT_SUFFIXES)} in {gt_dir}")
    _check_missing(pairs)
    return pairs


def _check_missing(pairs: Sequence[CasePair]) -> None:
    missing = [p for p in pairs if not p.pred.is_file()]
    if missing:
        shown = "\n  ".join(f"{p.pred} (for {p.gt})" for p in missing[:10])
        more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise EvaluationError(f"{len(missing)} prediction(s) missing:\n  {shown}{more}")


def _cell(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def write_csv_atomic(path: Path, columns: Sequence[str], rows: Sequence[dict]) -> None:
    """The CSV of `rows` (a header of `columns`, then one line a row), written with write_text_atomic."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in columns])
    write_text_atomic(path, buffer.getvalue())
