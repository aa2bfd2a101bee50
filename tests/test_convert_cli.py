"""The converter sub-commands: registration, help texts, errors, and a failed check leaving no target."""
import argparse

import numpy as np
import pytest
from PIL import Image

from swin_umamba.preprocessing import cli, common, endovis17
from swin_umamba.preprocessing.common import ConversionError

COMMANDS = ("convert-amos", "convert-neurips-cell", "convert-endovis17", "cells-to-instances")


def parser():
    top = argparse.ArgumentParser()
    sub = top.add_subparsers()
    cli.add_parser(sub)
    return top, sub


def test_commands_registered_with_help_on_every_option():
    _, sub = parser()
    assert set(COMMANDS) <= set(sub.choices)
    for name in COMMANDS:
        for action in sub.choices[name]._actions:
            if action.dest != "help":
                assert action.help, (name, action.dest)


def test_errors_are_reported_with_exit_code_1(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("nnUNet_raw", raising=False)
    top, _ = parser()
    args = top.parse_args(["convert-amos", "--source", str(tmp_path / "nowhere"), "--nnunet-raw", str(tmp_path)])
    assert args.func(args) == 1
    assert str(tmp_path / "nowhere") in capsys.readouterr().err
    args = top.parse_args(["convert-endovis17", "--source", str(tmp_path)])
    assert args.func(args) == 1
    assert "nnUNet_raw" in capsys.readouterr().err


def test_failed_integrity_check_leaves_no_target(tmp_path, monkeypatch):
    seq = tmp_path / "train" / "instrument_dataset_1"
    (seq / "left_frames").mkdir(parents=True)
    (seq / "ground_truth" / "Bipolar_Forceps_labels").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(seq / "left_frames" / "frame000.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(seq / "ground_truth" / "Bipolar_Forceps_labels" / "frame000.png")

    def failing_check(folder, num_processes=2):
        raise ConversionError("integrity check failed")

    monkeypatch.setattr(common, "verify_with_nnunet", failing_check)
    with pytest.raises(ConversionError, match="integrity"):
        endovis17.convert_endovis17(tmp_path / "train", tmp_path / "raw")
    assert not any((tmp_path / "raw").iterdir())
