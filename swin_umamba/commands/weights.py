"""`swin-umamba weights download`: the ImageNet VMamba-Tiny v0 file into the per-user cache (or --dest)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from swin_umamba.environment import CACHE_DIR_VAR, PRETRAINED_WEIGHTS_VAR, cache_dir


def run_download(args: argparse.Namespace) -> int:
    from swin_umamba.pretrained import cached_weights_path
    from swin_umamba.weights_download import WeightsDownloadError, download_imagenet_weights

    try:
        result = download_imagenet_weights(url=args.url, dest_dir=args.dest, sha256=args.sha256,
                                           say=lambda line: print(line, flush=True))
    except WeightsDownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if result.downloaded:
        print(f"saved {result.path}")
    if result.path.resolve() == cached_weights_path().resolve():
        print(f"The trainers find this file without settings; to name it explicitly ({PRETRAINED_WEIGHTS_VAR} "
              "wins over the cache):")
    else:
        print("The trainers read it once this is set:")
    print(result.export_line())
    return 0


def add_parser(subparsers) -> None:
    from swin_umamba.pretrained import RELEASE_FILE, RELEASE_URL

    weights = subparsers.add_parser(
        "weights",
        help="get the ImageNet VMamba-Tiny file the pretrained trainers start from",
        description="The ImageNet VMamba-Tiny v0 checkpoint the ImageNet-initialised trainers start from.",
    )
    actions = weights.add_subparsers(dest="weights_command", metavar="ACTION")
    weights.set_defaults(func=lambda args: weights.print_help() or 2)
    p = actions.add_parser(
        "download",
        help=f"download {RELEASE_FILE} and check it",
        description=f"Downloads {RELEASE_FILE} (VMamba release of 2024-02-18), resuming an interrupted "
        "download, checks that it loads into the VMamba-Tiny encoder, prints its SHA-256, and gives it its "
        f"final name only then. Default folder: the per-user cache (${CACHE_DIR_VAR} overrides it), where "
        f"the trainers look when ${PRETRAINED_WEIGHTS_VAR} is unset. A file already there that passed is kept "
        "and nothing is downloaded. Prints the export line for the file at the end.",
        formatter_class=weights.formatter_class,
    )
    p.add_argument("--url", default=RELEASE_URL, help="address to download from, e.g. a mirror")
    p.add_argument("--sha256", metavar="HEX", default=None,
                   help="required SHA-256 of the file: a mismatch is an error and the file is not kept "
                   "(default: none required; a file whose digest differs from the recorded one is kept with a "
                   "warning)")
    p.add_argument("--dest", type=Path, metavar="DIR", default=None,
                   help=f"folder to put the file in (default: the per-user cache folder, here {cache_dir()})")
    p.set_defaults(func=run_download)
