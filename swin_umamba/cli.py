"""The `swin-umamba` console script: one sub-command per job.

Each sub-command lives in the module that does the job; that module exposes
`add_parser(subparsers)`, which registers the sub-command and sets `func` on it.
`func(args)` returns the process exit code.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from swin_umamba.version import __version__

# module path -> imported lazily so that `swin-umamba --help` stays fast
COMMAND_MODULES = [
    "swin_umamba.commands.setup",
    "swin_umamba.commands.demo",
    "swin_umamba.preprocessing.cli",
    "swin_umamba.evaluation.cli",
    "swin_umamba.nnunet_plans.cli",
    "swin_umamba.commands.reproduce",
    "swin_umamba.commands.compare",
    "swin_umamba.commands.check_inputs",
    "swin_umamba.commands.weights",
]


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to the help of every option whose default is a value (not None or False)
    and whose help does not state it already (a help that mentions "default" is left as written)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shows_value = action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)
        if (not shows_value or action.default is None or action.default is False
                or action.default is argparse.SUPPRESS or "default" in text.lower()):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


class CommandParser(argparse.ArgumentParser):
    """The parser of every sub-command: the shared help formatter unless a command sets its own."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="swin-umamba",
        description="Swin-UMamba for nnU-Net v2: set-up checks, demo, evaluation and dataset tools. "
        "Training and prediction use nnU-Net's own commands with -tr nnUNetTrainerSwinUMamba.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the installed version of swin-umamba and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
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
