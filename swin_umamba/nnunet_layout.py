"""The names nnU-Net v2 gives to folders and files: a raw dataset, plans, a trained model and its checkpoints."""
from __future__ import annotations

from pathlib import Path

# a raw dataset: $nnUNet_raw/DatasetXXX_Name/
IMAGES_TR, LABELS_TR, IMAGES_TS, LABELS_TS = "imagesTr", "labelsTr", "imagesTs", "labelsTs"
DATASET_JSON = "dataset.json"
DEFAULT_PLANS = "nnUNetPlans"  # what nnUNetv2_plan_and_preprocess writes, and -p's default

# a trained model: $nnUNet_results/DatasetXXX_Name/TRAINER__PLANS__CONFIGURATION/fold_F/
CHECKPOINT_FINAL = "checkpoint_final.pth"
CHECKPOINT_LATEST = "checkpoint_latest.pth"
CHECKPOINT_BEST = "checkpoint_best.pth"


def image_file(case: str, file_ending: str, channel: int = 0) -> str:
    """The file of one input channel of a case: <case>_0000<ending>, <case>_0001<ending>, ..."""
    return f"{case}_{channel:04d}{file_ending}"


def model_folder(results: Path, dataset_name: str, trainer: str, plans: str, configuration: str) -> Path:
    return Path(results) / dataset_name / f"{trainer}__{plans}__{configuration}"


def fold_folder(model: Path, fold: str | int) -> Path:
    return Path(model) / f"fold_{fold}"

# our entry in a 3D configuration of nnU-Net's plans: the 3D network's depth stride per downsampling stage
DEPTH_STRIDES_KEY = "depth_strides"
# our entry in a configuration that `swin-umamba plan` made: what it chose and why
PLANNING_REPORT_KEY = "swin_umamba_planning"
