"""`swin-umamba doctor`: exit status and output lines for the weights check and the trainer search."""
from __future__ import annotations

import pytest

from swin_umamba.cli import main
from swin_umamba.commands.setup import trainers_dir
from swin_umamba.pretrained import WEIGHTS_ENV_VAR


@pytest.fixture
def ready_environment(tmp_path, monkeypatch):
    """Every required check passes: nnU-Net folders exist and our trainers are registered."""
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / name).mkdir()
        monkeypatch.setenv(name, str(tmp_path / name))
    monkeypatch.setenv("nnUNet_extTrainer", str(trainers_dir()))
    return tmp_path


def weights_line(output: str) -> str:
    return next(line for line in output.splitlines() if WEIGHTS_ENV_VAR in line)


def test_empty_weights_file_is_reported_by_name(ready_environment, monkeypatch, capsys):
    path = ready_environment / "vmamba_tiny_e292.pth"
    path.write_bytes(b"")
    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(path))
    main(["doctor", "--check-weights"])
    line = weights_line(capsys.readouterr().out)
    assert str(path) in line and "empty (0 bytes)" in line
