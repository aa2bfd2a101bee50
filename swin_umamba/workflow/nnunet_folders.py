"""nnU-Net's three folders from the environment, and a raw dataset's folder in nnUNet_raw.

    nnunet_folders()                      (nnUNet_raw, nnUNet_preprocessed, nnUNet_results) of this process
    raw_dataset_folder(raw, dataset)      $nnUNet_raw/DatasetXXX_Name for an id (702) or a name
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from swin_umamba.environment import NNUNET_FOLDER_VARS, NNUNET_RAW_VAR
from swin_umamba.workflow.errors import DatasetNotFound, NnUNetFoldersNotSet

DATASET_NAME = re.compile(r"^Dataset(?P<id>\d{3})_.+$")
DEFAULT_FIX = ("put the DatasetXXX_Name folder there (imagesTr, labelsTr, dataset.json), or set nnUNet_raw to "
               "the folder that holds it")


def nnunet_folders() -> tuple[Path, Path, Path]:
    """nnUNet_raw, nnUNet_preprocessed and nnUNet_results of this process's environment; nnUNet_raw must exist."""
    missing = [var for var in NNUNET_FOLDER_VARS if not os.environ.get(var)]
    if missing:
        lines = "\n".join(f"  export {var}=/path/to/{var}   # {NNUNET_FOLDER_VARS[var]}" for var in missing)
        raise NnUNetFoldersNotSet(f"nnU-Net's folders are not set: {', '.join(missing)}. Set them first, e.g.\n{lines}")
    raw, pre, res = (Path(os.environ[var]) for var in NNUNET_FOLDER_VARS)
    if not raw.is_dir():
        raise NnUNetFoldersNotSet(f"{NNUNET_RAW_VAR}={raw} does not exist")
    return raw, pre, res


def raw_dataset_folder(raw: Path, dataset: int | str, fix: str = DEFAULT_FIX) -> Path:
    """The one folder of `dataset` (an id such as 702 or "702", or a DatasetXXX_Name) in `raw`.

    DatasetNotFound names the folder searched and `fix` when there is none, and the folders found
    when an id matches several."""
    raw = Path(raw)
    text = str(dataset).strip()
    if not text.isdigit():
        if not DATASET_NAME.match(text):
            raise DatasetNotFound(f"{text!r} is neither a dataset id (e.g. 702) nor a name like Dataset702_AbdomenMR")
        if not (raw / text).is_dir():
            raise DatasetNotFound(f"no folder {text} in {NNUNET_RAW_VAR}={raw}; {fix}")
        return raw / text
    pattern = f"Dataset{int(text):03d}_*"
    matches = sorted(p for p in raw.glob(pattern) if p.is_dir())
    if not matches:
        raise DatasetNotFound(f"no {pattern} folder in {NNUNET_RAW_VAR}={raw}; {fix}")
    if len(matches) > 1:
        raise DatasetNotFound(f"several raw datasets with id {int(text)} in {raw}: "
                              f"{', '.join(p.name for p in matches)}; keep one")
    return matches[0]
