"""`swin-umamba --version` and the defaults shown in every sub-command's --help."""
from __future__ import annotations

import argparse
import importlib.metadata

import pytest

from swin_umamba.cli import build_parser, main


def sub_commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_version_comes_from_the_package_metadata(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"swin-umamba {importlib.metadata.version('swin-umamba')}"


def test_every_option_with_a_default_shows_it():
    missing = []
    for name, parser in sub_commands().items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            default = action.default
            if not action.option_strings or default is None or default is False or default is argparse.SUPPRESS:
                continue
            shown = formatter._expand_help(action) if action.help else ""
            values = default if isinstance(default, (list, tuple)) else [default]
            if not all(str(v) in shown for v in values):
                missing.append(f"{name} {'/'.join(action.option_strings)} (default {default!r}): {shown!r}")
    assert missing == []


def test_defaults_appear_in_the_printed_help(capsys):
    with pytest.raises(SystemExit):
        main(["convert-amos", "--help"])
    flat = " ".join(capsys.readouterr().out.split())
    assert "(default: 2)" in flat


def test_the_walk_reaches_the_sub_commands():
    assert {"doctor", "demo", "evaluate"} <= set(sub_commands())
