"""Sub-commands of the converters: convert-amos, convert-neurips-cell, convert-endovis17, cells-to-instances."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import ConversionError, default_raw_folder


def _raw_folder_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nnunet-raw", type=Path, default=None,
                        help="nnU-Net raw data folder the dataset is written into (default: $nnUNet_raw)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing target dataset (otherwise the command refuses)")
    parser.add_argument("--num-processes", type=int, default=2,
                        help="processes for nnU-Net's integrity check")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip nnU-Net's verify_dataset_integrity on the result")


def add_parser(subparsers) -> None:
    amos = subparsers.add_parser(
        "convert-amos", help="AMOS 2022 (MRI cases) -> Dataset702_AbdomenMR",
        description="Convert the AMOS 2022 release to nnU-Net's Dataset702_AbdomenMR: MRI cases only (AMOS ids "
                    ">= 500), labels relabelled to the 13 organs of the paper, bladder and prostate/uterus dropped.")
    amos.add_argument("--source", type=Path, required=True,
                      help="the amos22 folder (with imagesTr, labelsTr, imagesVa, labelsVa, imagesTs)")
    _raw_folder_option(amos)
    amos.set_defaults(func=run_amos)

    cell = subparsers.add_parser(
        "convert-neurips-cell", help="NeurIPS 2022 Cell Seg -> Dataset703_NeurIPSCell",
        description="Convert the NeurIPS 2022 Cell Segmentation images (tif/png/bmp/jpg, grey/RGB, 8/16-bit) to "
                    "8-bit RGB PNG and the instance label TIFFs to background/interior/boundary PNGs; the "
                    "evaluation split keeps its instance TIFFs in labelsTs for the F1 score.")
    cell.add_argument("--images", type=Path, required=True,
                      help="training images folder (e.g. Training-labeled/images)")
    cell.add_argument("--labels", type=Path, required=True,
                      help="training instance labels folder with <id>_label.tiff (e.g. Training-labeled/labels)")
    cell.add_argument("--test-images", type=Path, default=None,
                      help="images of the evaluation split (e.g. the tuning set), written to imagesTs")
    cell.add_argument("--test-labels", type=Path, default=None,
                      help="instance label TIFFs of the evaluation split, copied to labelsTs/<id>_label.tiff")
    _raw_folder_option(cell)
    cell.set_defaults(func=run_neurips_cell)

    endo = subparsers.add_parser(
        "convert-endovis17", help="EndoVis 2017 instrument segmentation -> Dataset704_Endovis17",
        description="Convert EndoVis 2017 Robotic Instrument Segmentation (instrument_dataset_K/left_frames and "
                    "ground_truth/<Instrument>_labels) to RGB PNG frames and 7-class instrument-type PNG labels.")
    endo.add_argument("--source", type=Path, required=True,
                      help="folder holding the training instrument_dataset_K folders")
    endo.add_argument("--test-source", type=Path, default=None,
                      help="folder holding test instrument_dataset_K folders in the same layout (imagesTs, "
                           "and labelsTs where ground_truth folders exist)")
    _raw_folder_option(endo)
    endo.set_defaults(func=run_endovis17)

    inst = subparsers.add_parser(
        "cells-to-instances", help="3-class cell predictions (PNG) -> instance TIFFs",
        description="Turn nnU-Net's 3-class predictions of Dataset703 into instance maps <id>_label.tiff: "
                    "8-connected components of the interior class, as the paper's F1 evaluation does.")
    inst.add_argument("--pred", type=Path, required=True, help="folder of <id>.png predictions")
    inst.add_argument("--out", type=Path, required=True, help="folder to create with the <id>_label.tiff files")
    inst.add_argument("--overwrite", action="store_true",
                      help="replace an existing output folder (otherwise the command refuses)")
    inst.set_defaults(func=run_cells_to_instances)


def _raw(args) -> Path:
    raw = args.nnunet_raw or default_raw_folder()
    if raw is None:
        raise ConversionError("no target folder: pass --nnunet-raw or set nnUNet_raw")
    return raw


def _guard(call) -> int:
    try:
        call()
    except ConversionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def run_amos(args) -> int:
    from .amos import convert_amos

    return _guard(lambda: convert_amos(args.source, _raw(args), overwrite=args.overwrite,
                                       num_processes=args.num_processes, verify=not args.no_verify))


def run_neurips_cell(args) -> int:
    from .neurips_cell import convert_neurips_cell

    return _guard(lambda: convert_neurips_cell(args.images, args.labels, _raw(args), test_images=args.test_images,
                                               test_labels=args.test_labels, overwrite=args.overwrite,
                                               num_processes=args.num_processes, verify=not args.no_verify))


def run_endovis17(args) -> int:
    from .endovis17 import convert_endovis17

    return _guard(lambda: convert_endovis17(args.source, _raw(args), test_root=args.test_source,
                                            overwrite=args.overwrite, num_processes=args.num_processes,
                                            verify=not args.no_verify))


def run_cells_to_instances(args) -> int:
    from .neurips_cell import cells_to_instances

    return _guard(lambda: cells_to_instances(args.pred, args.out, overwrite=args.overwrite))
