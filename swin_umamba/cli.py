"""The `swin-umamba` console script: one sub-command per job.

Each sub-command lives in the module that does the job; that module exposes
`add_parser(subparsers)`, which registers the sub-command and sets `func` on it.
`func(args)` returns the process exit code.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# module path -> imported lazily so that `swin-umamba --help` stays fast
COMMAND_MODULES = [
    "swin_umamba.commands.setup",
    "swin_umamba.commands.demo",
    "swin_umamba.preprocessing.cli",
    "swin_umamba.evaluation.cli",
    "swin_umamba.nnunet_plans.cli",
    "swin_umamba.commands.reproduce",
    "swin_umamba.commands.check_inputs",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swin-umamba",
        description="Swin-UMamba for nnU-Net v2: set-up checks, demo, evaluation and dataset tools. "
        "Training and prediction use nnU-Net's own commands with -tr nnUNetTrainerSwinUMamba.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
