"""Checks of a folder of images (and of a trained model) before nnU-Net predicts from them.

nnU-Net trusts its inputs: SimpleITK fills the missing part of a truncated `.nii.gz` with zeros
without a word, a case with a channel file too few ends in an IndexError, and a broken checkpoint
gives torch's message without the file's name. Every function here returns a list of `Problem`s
(empty when all is well), each naming the file and the fix; nothing raises for bad input.

    expectation_from_dataset_json(path)   what the images must look like: file ending, channels
    check_image_file(path)                one file readable to its end (gzip intact, NIfTI data complete)
    check_images_folder(folder, expected) names, channels per case, every file, geometry per case
    check_checkpoint(path)                non-empty, loadable with torch, holds network_weights
    check_model_folder(folder, folds, checkpoint)   dataset.json and the checkpoint of every fold
    check_prediction_inputs(images, folder, folds, checkpoint)   both: what nnUNetv2_predict will read
"""
from __future__ import annotations

import gzip
import json
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from swin_umamba.nnunet_layout import CHECKPOINT_FINAL
from swin_umamba.nnunet_layout import fold_folder as nnunet_fold_folder

CHUNK = 1 << 20
NIFTI_ENDINGS = (".nii.gz", ".nii")
# image files nnU-Net can read; a file with another of these endings is a format mix-up
IMAGE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")
CHANNEL_NAME = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
DEFAULT_CHECKPOINT = CHECKPOINT_FINAL


@dataclass(frozen=True)
class Problem:
    path: Path
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}\n    fix: {self.fix}"


@dataclass(frozen=True)
class Expectation:
    """What a model (or dataset) takes: the file ending and the channels, by index."""

    file_ending: str
    channels: dict[int, str]
    source: Path  # the dataset.json these come from

    def channel_file(self, case: str, channel: int) -> str:
        return f"{case}_{channel:04d}{self.file_ending}"


def expectation_from_dataset_json(path: Path) -> tuple[Expectation | None, list[Problem]]:
    path = Path(path)
    fix = "point to the dataset.json of the model or dataset (nnUNet_raw/DatasetXXX_Name/dataset.json)"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None, [Problem(path, "not found", fix)]
    except (OSError, ValueError) as exc:
        return None, [Problem(path, f"not a readable JSON file ({exc})", fix)]
    channels = data.get("channel_names", data.get("modality"))
    ending = data.get("file_ending")
    if not isinstance(channels, dict) or not channels or not isinstance(ending, str):
        return None, [Problem(path, "lacks 'channel_names' or 'file_ending'", fix)]
    try:
        by_index = {int(k): str(v) for k, v in channels.items()}
    except ValueError:
        return None, [Problem(path, f"channel_names keys must be 0, 1, ...: got {sorted(channels)}", fix)]
    return Expectation(ending, dict(sorted(by_index.items())), path), []


# one file ------------------------------------------------------------------------------------------------
def _nifti_data_end(header: bytes) -> int | None:
    """Bytes a NIfTI-1/2 file (decompressed) must hold: vox_offset + voxels * bitpix / 8; None if no header."""
    for order in "<>":
        if len(header) >= 348 and struct.unpack(order + "i", header[:4])[0] == 348:
            dims = struct.unpack(order + "8h", header[40:56])
            bitpix = struct.unpack(order + "h", header[72:74])[0]
            offset = max(int(struct.unpack(order + "f", header[108:112])[0]), 352)
            break
        if len(header) >= 540 and struct.unpack(order + "i", header[:4])[0] == 540:
            bitpix = struct.unpack(order + "h", header[14:16])[0]
            dims = struct.unpack(order + "8q", header[16:80])
            offset = max(struct.unpack(order + "q", header[168:176])[0], 544)
            break
    else:
        return None
    ndim = dims[0]
    if not 1 <= ndim <= 7 or bitpix <= 0:
        return None
    voxels = 1
    for size in dims[1:ndim + 1]:
        voxels *= max(int(size), 1)
    return offset + voxels * bitpix // 8


def _read_to_end(path: Path) -> tuple[bytes, int]:
    """(first 540 bytes, total length) of the file's content, gunzipped to its end when it ends in .gz."""
    opener = gzip.open if path.name.endswith(".gz") else open
    head, total = b"", 0
    with opener(path, "rb") as stream:
        while block := stream.read(CHUNK):
            if len(head) < 540:
                head += block[: 540 - len(head)]
            total += len(block)
    return head, total


def check_image_file(path: Path) -> list[Problem]:
    """The file can be read to its end: not empty, its gzip stream complete and its checksum right, and
    for NIfTI as many data bytes as the header announces; other formats are read with SimpleITK."""
    path = Path(path)
    fix = "copy the file again from its source (it is damaged: an interrupted download or copy)"
    try:
        size = path.stat().st_size
    except OSError as exc:
        return [Problem(path, f"cannot be read ({exc.strerror})", "check the file's permissions and path")]
    if size == 0:
        return [Problem(path, "is empty (0 bytes)", fix)]
    if path.name.endswith(".gz") or path.name.endswith(".nii"):
        try:
            head, total = _read_to_end(path)
        except EOFError:
            return [Problem(path, "the gzip stream ends early: the file is truncated", fix)]
        except (gzip.BadGzipFile, zlib.error) as exc:
            return [Problem(path, f"is not a valid gzip file ({exc})", fix)]
        except OSError as exc:
            return [Problem(path, f"cannot be read ({exc})", fix)]
        if path.name.endswith(NIFTI_ENDINGS):
            expected = _nifti_data_end(head)
            if expected is None:
                return [Problem(path, "has no NIfTI header", "save the image as NIfTI (e.g. with SimpleITK or nibabel)")]
            if total < expected:
                return [Problem(path, f"holds {total} bytes where its NIfTI header announces {expected}: "
                                      "the image data is incomplete", fix)]
        return []
    try:
        import SimpleITK as sitk

        sitk.ReadImage(str(path))
    except Exception as exc:  # SimpleITK raises RuntimeError with its own text
        return [Problem(path, f"cannot be read with SimpleITK ({str(exc).strip().splitlines()[-1]})", fix)]
    return []


# a folder -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Geometry:
    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]


def read_geometry(path: Path) -> Geometry:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return Geometry(tuple(reader.GetSize()), tuple(reader.GetSpacing()), tuple(reader.GetOrigin()),
                    tuple(reader.GetDirection()))


def geometry_differences(reference: Geometry, other: Geometry) -> list[str]:
    """What differs between two channels' geometry (size exactly, the rest to 1e-5 relative)."""
    import numpy as np

    found = []
    if reference.size != other.size:
        return [f"size {list(other.size)} vs {list(reference.size)}"]
    for name in ("spacing", "origin", "direction"):
        a, b = np.array(getattr(reference, name)), np.array(getattr(other, name))
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-5, atol=1e-5):
            found.append(f"{name} {[round(float(x), 6) for x in b]} vs {[round(float(x), 6) for x in a]}")
    return found


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def check_input_folder(folder: Path) -> list[Problem]:
    """The folder of images exists and is a folder."""
    folder = Path(folder)
    if folder.is_dir():
        return []
    if folder.exists():
        return [Problem(folder, "is a file, not a folder", "pass the folder that holds the images with -i")]
    existing = next((p for p in folder.absolute().parents if p.is_dir()), None)
    where = f"; the nearest folder that exists is {existing}" if existing is not None else ""
    return [Problem(folder, "folder not found (it does not exist)",
                    f"check the path given with -i{where}, or create the folder and put the images there")]


def check_images_folder(folder: Path, expected: Expectation) -> tuple[list[Problem], int]:
    """(problems, number of cases) of a folder of images to predict."""
    folder = Path(folder)
    missing = check_input_folder(folder)
    if missing:
        return missing, 0
    problems: list[Problem] = []
    cases: dict[str, dict[int, Path]] = {}
    ending = expected.file_ending
    for path in _image_files(folder):
        if not path.name.endswith(ending):
            other = next((e for e in IMAGE_ENDINGS if path.name.lower().endswith(e)), None)
            if other:
                problems.append(Problem(path, f"is a {other} file, the model reads {ending} files "
                                              f"(from {expected.source})", f"convert it to {ending} or remove it"))
            continue
        match = CHANNEL_NAME.match(path.name[: -len(ending)])
        if not match:
            problems.append(Problem(path, f"is not named <case>_XXXX{ending} (XXXX: the 4-digit channel number)",
                                    f"rename it, e.g. to {path.name[: -len(ending)]}_0000{ending}"))
            continue
        cases.setdefault(match["case"], {})[int(match["channel"])] = path
    if not cases and not problems:
        problems.append(Problem(folder, f"holds no image named <case>_0000{ending}",
                                "put the images to predict there, one file per case and channel"))
    for case, files in sorted(cases.items()):
        readable = {}
        for channel, path in sorted(files.items()):
            found = check_image_file(path)
            problems += found
            if not found:
                readable[channel] = path
        problems += _channel_problems(folder, case, files, readable, expected)
        problems += _geometry_problems(case, {c: p for c, p in readable.items() if c in expected.channels})
    return problems, len(cases)


def _components(path: Path) -> int:
    """Channels one file holds (3 for an RGB PNG, which nnU-Net's natural-image reader splits)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return int(reader.GetNumberOfComponents())


def _channel_problems(folder: Path, case: str, files: dict[int, Path], readable: dict[int, Path],
                      expected: Expectation) -> list[Problem]:
    """Channel files _0000, _0001, ... a case needs and no others; a file of several channels (RGB) counts
    as that many, as nnU-Net reads it."""
    wanted = len(expected.channels)
    names = ", ".join(f"_{i:04d} ({n})" for i, n in expected.channels.items())
    try:
        counts = {c: _components(p) for c, p in readable.items()}
    except Exception:  # a header SimpleITK refuses: reported by the geometry check
        counts = {c: 1 for c in readable}
    if any(n > 1 for n in counts.values()):
        total = sum(counts.values())
        if total == wanted and sorted(files) == list(range(len(files))):
            return []
        held = ", ".join(f"{files[c].name}: {counts.get(c, '?')}" for c in sorted(files))
        return [Problem(files[min(files)], f"case {case} holds {total} channel(s) ({held}); the model takes "
                                           f"{wanted}: {', '.join(expected.channels.values())}",
                        f"give case {case} the channels {names}")]
    problems = []
    for channel in expected.channels:
        if channel not in files:
            problems.append(Problem(folder / expected.channel_file(case, channel),
                                    f"missing: case {case} needs {wanted} channel file(s) {names}",
                                    f"add the {expected.channels[channel]} image of case {case} under this name"))
    for channel, path in sorted(files.items()):
        if channel not in expected.channels:
            problems.append(Problem(path, f"unexpected channel {channel}: the model takes {wanted} channel(s) "
                                          f"{names}", "remove the file, or use a model trained with this channel"))
    return problems


def _geometry_problems(case: str, files: dict[int, Path]) -> list[Problem]:
    if len(files) < 2:
        return []
    channels = sorted(files)
    try:
        geometry = {c: read_geometry(files[c]) for c in channels}
    except Exception as exc:  # a header SimpleITK refuses
        return [Problem(files[channels[0]], f"header cannot be read ({exc})", "copy the file again from its source")]
    first = channels[0]
    problems = []
    for channel in channels[1:]:
        differences = geometry_differences(geometry[first], geometry[channel])
        if differences:
            problems.append(Problem(files[channel], f"geometry differs from {files[first].name} of the same case: "
                                                    + "; ".join(differences),
                                    "resample the channels of a case onto one grid (same size, spacing, "
                                    "origin and direction)"))
    return problems


# checkpoints and model folders -------------------------------------------------------------------------------
def check_checkpoint(path: Path) -> list[Problem]:
    """The file exists, is not empty, torch can load it and it holds 'network_weights' (nnU-Net's key)."""
    path = Path(path)
    if not path.is_file():
        return [Problem(path, "not found", "train that fold first (nnUNetv2_train), or pass the name of an existing "
                                           "checkpoint with -chk (e.g. checkpoint_best.pth)")]
    fix = "copy the checkpoint again from where it was trained (it is damaged), or pick another one with -chk"
    if path.stat().st_size == 0:
        return [Problem(path, "is empty (0 bytes)", fix)]
    import torch

    try:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            checkpoint = torch.load(path, map_location="cpu", weights_only=False)  # a pre-zip torch file
    except Exception as exc:  # torch raises several types for a damaged file
        # torch's own text goes on with advice about the file it does not name: its first sentence suffices
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0].rstrip(".")
        return [Problem(path, f"cannot be loaded with torch ({reason}): the file is truncated or not a checkpoint",
                        fix)]
    if not isinstance(checkpoint, dict) or "network_weights" not in checkpoint:
        return [Problem(path, "is not an nnU-Net checkpoint (no 'network_weights' in it)",
                        "use a checkpoint that nnUNetv2_train wrote (checkpoint_final.pth, checkpoint_best.pth, ...)")]
    return []


def check_model_folder(model_folder: Path, folds: Sequence[str], checkpoint: str = DEFAULT_CHECKPOINT
                       ) -> tuple[Expectation | None, list[Problem]]:
    """The model's dataset.json (what its inputs must be) and `checkpoint` in each fold_<f>."""
    model_folder = Path(model_folder)
    if not model_folder.is_dir():
        return None, [Problem(model_folder, "model folder not found",
                              "check -d/-tr/-p/-c and nnUNet_results, or train the model first (nnUNetv2_train)")]
    expected, problems = expectation_from_dataset_json(model_folder / "dataset.json")
    present = sorted(p.name[len("fold_"):] for p in model_folder.glob("fold_*") if p.is_dir())
    for fold in folds:
        fold_folder = nnunet_fold_folder(model_folder, fold)
        if not fold_folder.is_dir():
            problems.append(Problem(fold_folder, "fold not trained",
                                    f"train it (nnUNetv2_train ... {fold}) or pass -f with the folds there are "
                                    f"({' '.join(present) or 'none'})"))
            continue
        problems += check_checkpoint(fold_folder / checkpoint)
    return expected, problems


def check_prediction_inputs(images: Path, model_folder: Path, folds: Sequence[str],
                            checkpoint: str = DEFAULT_CHECKPOINT) -> tuple[list[Problem], int]:
    """(problems, cases): the model folder with `checkpoint` in each of `folds`, then the images against
    the model's dataset.json - what nnUNetv2_predict -i images ... -f folds -chk checkpoint will read."""
    expected, problems = check_model_folder(model_folder, folds, checkpoint)
    if expected is None:
        return problems + check_input_folder(images), 0
    found, cases = check_images_folder(images, expected)
    return problems + found, cases


def format_problems(problems: Iterable[Problem]) -> str:
    return "\n".join(str(p) for p in problems)
