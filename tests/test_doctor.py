"""`swin-umamba doctor`: exit status and output lines for the weights check and the trainer search."""
from __future__ import annotations

import pytest

from swin_umamba.cli import main
from swin_umamba.commands.setup import trainers_dir
from swin_umamba.environment import CACHE_DIR_VAR
from swin_umamba.fileio import sha256_of
from swin_umamba.pretrained import DOWNLOAD_COMMAND, RELEASE_FILE, WEIGHTS_ENV_VAR
from swin_umamba.weights_download import digest_path


@pytest.fixture
def ready_environment(tmp_path, monkeypatch):
    """Every required check passes: nnU-Net folders exist and our trainers are registered."""
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / name).mkdir()
        monkeypatch.setenv(name, str(tmp_path / name))
    monkeypatch.setenv("nnUNet_extTrainer", str(trainers_dir()))
    monkeypatch.setenv(CACHE_DIR_VAR, str(tmp_path / "cache"))
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


def _write_bad_weights(kind: str, folder):
    path = folder / "vmamba_tiny_e292.pth"
    if kind == "random bytes":
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == "other network":
        import torch

        torch.save({"conv1.weight": torch.zeros(4, 3, 3, 3)}, path)
    return path  # "missing": never written


@pytest.mark.parametrize("kind", ["missing", "random bytes", "other network"])
def test_asked_for_weights_check_fails_on_a_bad_file(ready_environment, monkeypatch, capsys, kind):
    path = _write_bad_weights(kind, ready_environment)
    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(path))
    assert main(["doctor", "--check-weights"]) == 1
    out = capsys.readouterr().out
    assert weights_line(out).startswith("[FAIL]")
    assert "All required checks passed" not in out


def test_weights_are_optional_without_the_flag(ready_environment, monkeypatch, capsys):
    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(ready_environment / "absent.pth"))
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert weights_line(out).startswith("[note]") and "All required checks passed" in out


def test_good_weights_pass_the_check(ready_environment, monkeypatch, capsys):
    from tests.synthetic_weights import write_model_only_checkpoint

    path = ready_environment / "vmamba_tiny_e292.pth"
    write_model_only_checkpoint(path)
    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(path))
    assert main(["doctor", "--check-weights"]) == 0
    assert weights_line(capsys.readouterr().out).startswith("[ok  ]")


def test_output_holds_only_doctors_own_lines(ready_environment, capsys):
    """nnU-Net's trainer search prints its progress; doctor keeps it off the console."""
    main(["doctor"])
    out = capsys.readouterr().out
    body = [line for line in out.splitlines() if line.strip()]
    strays = [line for line in body[:-1] if not line.startswith(("[ok  ]", "[FAIL]", "[note]"))]
    assert strays == []
    assert "nnU-Net finds nnUNetTrainerSwinUMamba" in out


def test_a_torchvision_that_does_not_fit_torch_gets_the_install_fix(ready_environment, monkeypatch, capsys):
    """The error a CUDA torchvision raises beside a CPU-only torch, inside nnU-Net's trainer search."""
    import swin_umamba.workflow.trainer_lookup as lookup

    def broken_search(name, folders=()):
        raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setattr(lookup, "find_trainer_class", broken_search)
    assert main(["doctor"]) == 1
    line = next(line for line in capsys.readouterr().out.splitlines() if "nnUNet_extTrainer" in line)
    assert line.startswith("[FAIL]") and "torchvision::nms" in line
    assert "--index-url" in line and "docs/installation.md" in line


def downloaded_line(output: str) -> str:
    return next(line for line in output.splitlines() if "downloaded ImageNet file" in line)


@pytest.mark.parametrize("state", ["missing", "checked", "changed since", "never checked"])
def test_downloaded_file_is_shown_with_its_state(ready_environment, monkeypatch, capsys, state):
    monkeypatch.delenv(WEIGHTS_ENV_VAR, raising=False)
    cached = ready_environment / "cache" / RELEASE_FILE
    if state != "missing":
        cached.parent.mkdir()
        cached.write_bytes(b"weights")
        if state != "never checked":
            digest_path(cached).write_text(f"{sha256_of(cached)}  {RELEASE_FILE}\n")
        if state == "changed since":
            cached.write_bytes(b"other weights")
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    line = downloaded_line(out)
    if state == "checked":
        assert line.startswith("[ok  ]") and sha256_of(cached) in line
        assert str(cached) in weights_line(out)  # the variable is unset: the trainers read the cached file
    else:
        assert line.startswith("[note]") and DOWNLOAD_COMMAND in line
