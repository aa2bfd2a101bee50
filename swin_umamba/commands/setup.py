"""`swin-umamba trainers-dir` and `swin-umamba doctor`: registering with nnU-Net and checking the set-up."""
from __future__ import annotations

import argparse
import importlib.metadata
import os
from pathlib import Path

from swin_umamba.environment import EXT_TRAINER_VAR, NNUNET_FOLDER_VARS, PRETRAINED_WEIGHTS_VAR, trainers_dir
from swin_umamba.network_registry import SWIN_UMAMBA


def ext_trainer_registered() -> bool:
    paths = [p for p in os.environ.get(EXT_TRAINER_VAR, "").split(os.pathsep) if p.strip()]
    return any(Path(p).resolve() == trainers_dir() for p in paths)


def torchvision_hint(error: str) -> str:
    """What to do when nnU-Net's trainer search fails inside torchvision (imported through timm): almost
    always a torchvision built for another torch, e.g. PyPI's CUDA build beside a CPU-only torch."""
    if "torchvision" not in error:
        return ""
    import torch

    try:
        vision = importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        vision = "not installed"
    return (f". torchvision ({vision}) does not fit torch ({torch.__version__}): install both from the same "
            "wheel index (for a CPU-only torch: pip install torch torchvision --index-url "
            "https://download.pytorch.org/whl/cpu; see docs/installation.md)")


def _check(ok: bool | None, what: str, detail: str) -> bool:
    mark = {True: "ok  ", False: "FAIL", None: "note"}[ok]
    print(f"[{mark}] {what}: {detail}")
    return ok is not False


def _show_downloaded_weights() -> None:
    """Whether `swin-umamba weights download` put the ImageNet file in the cache and it is still the file
    that passed the check then."""
    from swin_umamba.pretrained import DOWNLOAD_COMMAND, cached_weights_path
    from swin_umamba.weights_download import cached_file_status

    state, digest = cached_file_status()
    where = cached_weights_path()
    if state == "verified":
        _check(True, "downloaded ImageNet file", f"{where}, checked when downloaded (SHA-256 {digest})")
    elif state == "unverified":
        _check(None, "downloaded ImageNet file", f"{where} is there but not checked, or changed since it was; "
               f"`{DOWNLOAD_COMMAND}` checks it (and downloads nothing if it passes)")
    else:
        _check(None, "downloaded ImageNet file", f"none in {where.parent}; `{DOWNLOAD_COMMAND}` fetches it")


def run_doctor(args: argparse.Namespace) -> int:
    from swin_umamba.pretrained import WEIGHTS_ENV_VAR, DOWNLOAD_COMMAND, PretrainedWeightsError, resolve_weights_path

    good = True
    try:
        version = importlib.metadata.version("nnunetv2")
        supported = version.startswith("2.8.")
        good &= _check(supported, "nnunetv2", version + ("" if supported else " (this plugin is made for 2.8.x)"))
    except importlib.metadata.PackageNotFoundError:
        good &= _check(False, "nnunetv2", "not installed: pip install 'nnunetv2>=2.8,<2.9'")

    for var, what in NNUNET_FOLDER_VARS.items():
        value = os.environ.get(var)
        if not value:
            good &= _check(False, var, f"not set ({what}); export {var}=/path/to/folder")
        elif not Path(value).is_dir():
            good &= _check(False, var, f"{value} does not exist; mkdir -p {value}")
        else:
            _check(True, var, value)

    if ext_trainer_registered():
        from swin_umamba.workflow.trainer_lookup import find_trainer_class

        try:
            # nnU-Net's search, without the progress lines nnU-Net's own function prints ("Trainer ... not
            # found in nnunetv2 ..."): they are its normal path to an external trainer but read like failures
            find_trainer_class(SWIN_UMAMBA.trainer, os.environ[EXT_TRAINER_VAR].split(os.pathsep))
            _check(True, EXT_TRAINER_VAR, f"{trainers_dir()} (nnU-Net finds {SWIN_UMAMBA.trainer})")
        except Exception as exc:  # report whatever nnU-Net's search raised
            good &= _check(False, EXT_TRAINER_VAR, f"nnU-Net could not load our trainers: {exc}"
                           + torchvision_hint(str(exc)))
    else:
        good &= _check(False, EXT_TRAINER_VAR,
                       f'our trainers are not registered; export {EXT_TRAINER_VAR}="$(swin-umamba trainers-dir)"')

    import torch

    from swin_umamba.ops import describe_scan_backend, selective_scan_backend
    from swin_umamba.ops.dispatch import mamba_error

    _check(True, "torch", f"{torch.__version__}, {torch.get_num_threads()} CPU threads")
    _check(True, "selective scan on CPU", selective_scan_backend("cpu"))
    if torch.cuda.is_available():
        _check(True, "CUDA", "%s; scan backend %s (%s)" % (torch.cuda.get_device_name(0), *describe_scan_backend("cuda")))
    else:
        _check(None, "CUDA", "not available: training runs on CPU (nnUNetv2_train ... -device cpu)")
    err = mamba_error()
    _check(None if err else True, "mamba-ssm", "not importable (optional CUDA fast path)" if err else "importable")

    try:
        path = resolve_weights_path()
        source = "" if os.environ.get(WEIGHTS_ENV_VAR) else "unset, the trainers read the downloaded file: "
        if args.check_weights:
            from swin_umamba import SwinUMamba, load_vmamba_weights

            report = load_vmamba_weights(SwinUMamba(1, 2), path)
            _check(True, WEIGHTS_ENV_VAR, source + report.summary())
        else:
            _check(True, WEIGHTS_ENV_VAR, f"{source}{path} exists (add --check-weights to read it)")
    except PretrainedWeightsError as exc:
        if args.check_weights:  # asked for, so a required check
            good &= _check(False, WEIGHTS_ENV_VAR, str(exc))
        else:
            _check(None, WEIGHTS_ENV_VAR, f"needed only by the ImageNet-initialised trainers. {exc.reason} "
                   f"`{DOWNLOAD_COMMAND}` fetches it.")
    _show_downloaded_weights()

    print("\nAll required checks passed." if good else "\nSome checks failed; see FAIL lines above.")
    return 0 if good else 1


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "trainers-dir",
        help="print the folder to export as nnUNet_extTrainer",
        description='Prints the absolute folder nnU-Net must search for our trainers. '
        'Use: export nnUNet_extTrainer="$(swin-umamba trainers-dir)"',
    )
    p.set_defaults(func=lambda args: print(trainers_dir()) or 0)

    p = subparsers.add_parser(
        "doctor",
        help="check the set-up (nnU-Net paths, trainer registration, scan backend, ImageNet weights)",
        description="Checks everything the nnU-Net commands need to run Swin-UMamba and says what is missing. "
        "Exit code 0 when all required checks pass.",
    )
    p.add_argument("--check-weights", action="store_true",
                   help=f"also read the ImageNet checkpoint named by {PRETRAINED_WEIGHTS_VAR} and report what maps; "
                   "a missing or unusable file then fails the check")
    p.set_defaults(func=run_doctor)
