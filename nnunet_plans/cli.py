"""`swin-umamba plan`: nnU-Net plans (and optionally preprocessed data) sized for Swin-UMamba.

nnUNetv2_plan_experiment -pl only finds planners inside nnunetv2's own package,
so this command runs SwinUMambaPlanner itself. The plans it writes are ordinary
nnU-Net plans: pass their name with -p to nnUNetv2_train / nnUNetv2_predict.
"""
from __future__ import annotations

import argparse
import os
import sys

from swin_umamba.network_registry import NETWORKS, SWIN_UMAMBA

# both networks share one stride; the planner reads each network's own
STRIDE = " x ".join(map(str, SWIN_UMAMBA.stride))
# nnU-Net's configurations with preprocessed data of their own
PREPROCESSED_CONFIGURATIONS = ("2d", "3d_fullres", "3d_lowres")

DESCRIPTION = (
    "Plan an nnU-Net dataset for Swin-UMamba: nnU-Net's configurations (2d; for 3D data 3d_fullres, and "
    "3d_lowres with the cascade where nnU-Net plans them), spacing, normalisation and resampling; the patch size "
    f"rounded to multiples of the network's stride ({STRIDE} in-plane; along depth, the product of the 3D network's "
    "depth strides, derived from nnU-Net's pooling and recorded in the plans); the batch size from a memory model "
    "of the network for the given GPU memory target. Extracts the dataset fingerprint first when it is missing. "
    f"Then train with nnUNetv2_train DATASET CONFIGURATION FOLD -p PLANS -tr {SWIN_UMAMBA.trainer}."
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("plan", help="nnU-Net plans for Swin-UMamba (2D and 3D, patch a multiple of the "
                                           "network's stride, batch from a memory model)", description=DESCRIPTION)
    p.add_argument("-d", "--dataset", required=True,
                   help="dataset id or name in $nnUNet_raw, e.g. 702 or Dataset702_AbdomenMR")
    p.add_argument("--network", choices=sorted(NETWORKS), default=SWIN_UMAMBA.name,
                   help="network whose memory model sizes the batch, and which trainers may train the plans: "
                        + " or ".join(f"{n.name} ({', '.join(n.trainers)})" for n in NETWORKS.values())
                        + "; default %(default)s")
    p.add_argument("--gpu-memory-target-gb", type=float, default=None,
                   help="GPU memory (GiB) one training process may use; default 8, as nnU-Net's planner")
    p.add_argument("--plans-name", default=None,
                   help="plans identifier to write and later pass with -p; default "
                        + ", ".join(f"{n.plans_name} for --network {n.name}" for n in NETWORKS.values()))
    p.add_argument("--memory-model", default=None,
                   help="memory model JSON (default: the one shipped beside the planner); "
                        "see benchmarks/measure_memory.py")
    p.add_argument("--preprocess", action="store_true",
                   help="also run nnU-Net's preprocessing of the planned configurations (2d, 3d_fullres, 3d_lowres) "
                        "with these plans")
    p.add_argument("-np", type=int, default=None, dest="num_processes",
                   help="processes for preprocessing (default: nnU-Net's default_num_processes)")
    p.add_argument("-npfp", type=int, default=None, dest="num_processes_fingerprint",
                   help="processes for fingerprint extraction when it is needed (default: nnU-Net's)")
    p.add_argument("--clean-fingerprint", action="store_true",
                   help="extract the dataset fingerprint again even if one exists")
    p.add_argument("--verify-dataset-integrity", action="store_true",
                   help="run nnU-Net's integrity check before extracting the fingerprint")
    p.set_defaults(func=run)


def _dataset_id(text: str):
    return int(text) if text.isdigit() else text


def run(args: argparse.Namespace) -> int:
    from swin_umamba.nnunet_plans.memory_model import MemoryModelError, load_memory_model
    from swin_umamba.nnunet_plans.planner import DEFAULT_GPU_MEMORY_TARGET_GB, default_plans_name

    from swin_umamba.environment import NNUNET_PREPROCESSED_VAR, NNUNET_RAW_VAR

    missing = [v for v in (NNUNET_RAW_VAR, NNUNET_PREPROCESSED_VAR) if not os.environ.get(v)]
    if missing:
        print(f"error: set {' and '.join(missing)} (nnU-Net's data folders) first", file=sys.stderr)
        return 2
    target = args.gpu_memory_target_gb if args.gpu_memory_target_gb is not None else DEFAULT_GPU_MEMORY_TARGET_GB
    if target <= 0:
        print("error: --gpu-memory-target-gb must be positive", file=sys.stderr)
        return 2
    try:
        memory_model = load_memory_model(args.memory_model)
        memory_model.network(args.network)
    except MemoryModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    from batchgenerators.utilities.file_and_folder_operations import isfile, join
    from nnunetv2.configuration import default_num_processes
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprint_dataset, preprocess_dataset
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    from swin_umamba.nnunet_plans.planner import SwinUMambaPlanner, explain

    try:
        dataset_name = maybe_convert_to_dataset_name(_dataset_id(args.dataset))
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    dataset_id = int(dataset_name[len("Dataset"):len("Dataset") + 3])

    fingerprint = join(nnUNet_preprocessed, dataset_name, "dataset_fingerprint.json")
    if args.clean_fingerprint or not isfile(fingerprint):
        print(f"Extracting the dataset fingerprint of {dataset_name} (nnU-Net's DatasetFingerprintExtractor)")
        extract_fingerprint_dataset(dataset_id, num_processes=args.num_processes_fingerprint or default_num_processes,
                                    check_dataset_integrity=args.verify_dataset_integrity, clean=True, verbose=False)
    else:
        print(f"Using the existing fingerprint {fingerprint}")

    plans_name = args.plans_name or default_plans_name(args.network)
    planner = SwinUMambaPlanner(dataset_id, gpu_memory_target_in_gb=target, plans_name=plans_name,
                                network=args.network, memory_model=memory_model)
    plans = planner.plan_experiment()
    for configuration, report in planner.reports.items():
        print()
        print(f"[{configuration}]")
        print(explain(report))
    print(f"  plans: {join(nnUNet_preprocessed, dataset_name, plans_name + '.json')}")

    # the configurations with data of their own (the cascade's 3d_cascade_fullres reads 3d_fullres's)
    configurations = [c for c in PREPROCESSED_CONFIGURATIONS if c in plans["configurations"]]
    if args.preprocess:
        print()
        preprocess_dataset(dataset_id, plans_name, configurations=configurations,
                           num_processes=[args.num_processes or default_num_processes] * len(configurations),
                           verbose=False)
    trainer = NETWORKS[args.network].trainer
    print()
    if not args.preprocess:
        print(f"Next: nnUNetv2_preprocess -d {dataset_id} -plans_name {plans_name} -c {' '.join(configurations)} "
              f"(or rerun with --preprocess)")
    names = "|".join(plans["configurations"])
    print(f"Train: nnUNetv2_train {dataset_id} {names} FOLD -p {plans_name} -tr {trainer}")
    print(f"Predict: nnUNetv2_predict -i IN -o OUT -d {dataset_id} -c {names} -p {plans_name} -tr {trainer}")
    return 0
