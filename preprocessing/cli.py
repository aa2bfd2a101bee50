"""Sub-commands of the converters: convert-amos, convert-neurips-cell, convert-endovis17, cells-to-instances."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import ConversionError, default_raw_folder


def _command(subparsers, name: str, func, summary: str, description: str,
             folders: list[tuple[str, bool, str]]) -> argparse.ArgumentParser:
    """A sub-command running `func`, with one PATH option per (flag, required, help) of `folders`."""
    parser = subparsers.add_parser(name, help=summary, description=description)
    for flag, required, text in folders:
        parser.add_argument(flag, type=Path, required=required, default=None, help=text)
    parser.set_defaults(func=func)
    return parser


def _converter(subparsers, name: str, func, summary: str, description: str,
               folders: list[tuple[str, bool, str]]) -> None:
    """A convert-* sub-command: its input folders, then the options shared by every converter."""
    parser = _command(subparsers, name, func, summary, description, folders)
    parser.add_argument("--nnunet-raw", type=Path, default=None,
                        help="nnU-Net raw data folder the dataset is written into (default: $nnUNet_raw)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing target dataset (otherwise the command refuses)")
    parser.add_argument("--num-processes", type=int, default=2,
                        help="processes for nnU-Net's integrity check")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip nnU-Net's verify_dataset_integrity on the result")


def add_parser(subparsers) -> None:
    _converter(
        subparsers, "convert-amos", run_amos, "AMOS 2022 (MRI cases) -> Dataset702_AbdomenMR",
        "Convert the AMOS 2022 release to nnU-Net's Dataset702_AbdomenMR: MRI cases only (AMOS ids >= 500), "
        "labels relabelled to the 13 organs of the paper, bladder and prostate/uterus dropped.",
        [("--source", True, "the amos22 folder (with imagesTr, labelsTr, imagesVa, labelsVa, imagesTs)")])
    _converter(
        subparsers, "convert-neurips-cell", run_neurips_cell, "NeurIPS 2022 Cell Seg -> Dataset703_NeurIPSCell",
        "Convert the NeurIPS 2022 Cell Segmentation images (tif/png/bmp/jpg, grey/RGB, 8/16-bit) to 8-bit RGB "
        "PNG and the instance label TIFFs to background/interior/boundary PNGs; the evaluation split keeps its "
        "instance TIFFs in labelsTs for the F1 score.",
        [("--images", True, "training images folder (e.g. Training-labeled/images)"),
         ("--labels", True, "training instance labels folder with <id>_label.tiff (e.g. Training-labeled/labels)"),
         ("--test-images", False, "images of the evaluation split (e.g. the tuning set), written to imagesTs"),
         ("--test-labels", False, "instance label TIFFs of the evaluation split, copied to "
                                  "labelsTs/<id>_label.tiff")])
    _converter(
        subparsers, "convert-endovis17", run_endovis17,
        "EndoVis 2017 instrument segmentation -> Dataset704_Endovis17",
        "Convert EndoVis 2017 Robotic Instrument Segmentation (instrument_dataset_K/left_frames and "
        "ground_truth/<Instrument>_labels) to RGB PNG frames and 7-class instrument-type PNG labels.",
        [("--source", True, "folder holding the training instrument_dataset_K folders"),
         ("--test-source", False, "folder holding test instrument_dataset_K folders in the same layout "
                                  "(imagesTs, and labelsTs where ground_truth folders exist)")])
    inst = _command(
        subparsers, "cells-to-instances", run_cells_to_instances, "3-class cell predictions (PNG) -> instance TIFFs",
        "Turn nnU-Net's 3-class predictions of Dataset703 into instance maps <id>_label.tiff: 8-connected "
        "components of the interior class, as the paper's F1 evaluation does.",
        [("--pred", True, "folder of <id>.png predictions"),
         ("--out", True, "folder to create with the <id>_label.tiff files")])
    inst.add_argument("--overwrite", action="store_true",
                      help="replace an existing output folder (otherwise the command refuses)")


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
