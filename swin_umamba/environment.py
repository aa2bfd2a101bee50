"""The environment variables swin-umamba reads or sets, its own and nnU-Net's, by name."""
from __future__ import annotations

import os
import sys
from pathlib import Path

# swin-umamba's own
SCAN_BACKEND_VAR = "SWIN_UMAMBA_SCAN"  # which selective scan runs (swin_umamba.ops.dispatch)
PRETRAINED_WEIGHTS_VAR = "SWIN_UMAMBA_PRETRAINED"  # the ImageNet VMamba checkpoint
CACHE_DIR_VAR = "SWIN_UMAMBA_CACHE"  # where downloaded files go (default: the platform's per-user cache)
STOP_AFTER_EPOCHS_VAR = "SWIN_UMAMBA_STOP_AFTER_EPOCHS"  # end training early in a longer cosine schedule
DEMO_EPOCHS_VAR = "SWIN_UMAMBA_DEMO_EPOCHS"  # the demo trainer's epochs
DEMO_ITERATIONS_VAR = "SWIN_UMAMBA_DEMO_ITERATIONS"  # and steps per epoch
MAX_NONFINITE_ITERATIONS_VAR = "SWIN_UMAMBA_MAX_NONFINITE_ITERATIONS"  # non-finite losses in a row that stop training
# the run length of the baselines' trainer (nnUNetTrainerProtocol), set by `swin-umamba compare`
SCHEDULE_EPOCHS_VAR = "SWIN_UMAMBA_SCHEDULE_EPOCHS"  # epochs the learning-rate schedule spans
ITERATIONS_PER_EPOCH_VAR = "SWIN_UMAMBA_ITERATIONS_PER_EPOCH"  # training iterations per epoch
VAL_ITERATIONS_PER_EPOCH_VAR = "SWIN_UMAMBA_VAL_ITERATIONS_PER_EPOCH"  # validation iterations per epoch

# nnU-Net's folders, each with what it holds
NNUNET_RAW_VAR = "nnUNet_raw"
NNUNET_PREPROCESSED_VAR = "nnUNet_preprocessed"
NNUNET_RESULTS_VAR = "nnUNet_results"
NNUNET_FOLDER_VARS = {
    NNUNET_RAW_VAR: "raw datasets (DatasetXXX_Name folders)",
    NNUNET_PREPROCESSED_VAR: "nnU-Net's preprocessed data and plans",
    NNUNET_RESULTS_VAR: "trained models",
}
# nnU-Net's other settings
EXT_TRAINER_VAR = "nnUNet_extTrainer"  # extra folders nnU-Net searches for trainer classes
AUGMENTATION_WORKERS_VAR = "nnUNet_n_proc_DA"  # data augmentation processes
DEFAULT_WORKERS_VAR = "nnUNet_def_n_proc"  # processes of preprocessing and export
COMPILE_VAR = "nnUNet_compile"  # whether nnU-Net's trainer runs torch.compile on the network
# torch's setting
TORCH_EXTENSIONS_DIR_VAR = "TORCH_EXTENSIONS_DIR"  # where compiled extensions are cached (the CPU scan kernel)
# Triton's
TRITON_INTERPRET_VAR = "TRITON_INTERPRET"  # "1": kernels defined afterwards run on CPU tensors, interpreted

# the platforms' per-user cache locations
XDG_CACHE_HOME_VAR = "XDG_CACHE_HOME"  # Linux and other freedesktop systems
LOCAL_APPDATA_VAR = "LOCALAPPDATA"  # Windows
CACHE_SUBFOLDER = "swin-umamba"


def trainers_dir() -> Path:
    """The folder of our trainers to put in nnU-Net's EXT_TRAINER_VAR."""
    return (Path(__file__).resolve().parent / "nnunet_ext").resolve()


def cache_dir() -> Path:
    """The folder of our downloads: $SWIN_UMAMBA_CACHE, else the platform's per-user cache (XDG_CACHE_HOME
    or ~/.cache on Linux, ~/Library/Caches on macOS, LOCALAPPDATA on Windows) with a swin-umamba folder."""
    explicit = os.environ.get(CACHE_DIR_VAR)
    if explicit:
        return Path(explicit).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = os.environ.get(LOCAL_APPDATA_VAR) or str(home / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = str(home / "Library" / "Caches")
    else:
        xdg = os.environ.get(XDG_CACHE_HOME_VAR, "")
        # the XDG rules ignore a relative path
        base = xdg if os.path.isabs(xdg) else str(home / ".cache")
    return Path(base) / CACHE_SUBFOLDER
