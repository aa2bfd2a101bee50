"""Library notices that are noise for our commands stay off their output.

Each check runs a fresh Python process (both notices come once per process, on first import), next to
a control run without our code that shows the notice exists in this environment at all.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from swin_umamba.commands.setup import trainers_dir
from swin_umamba.workflow.nnunet_runner import nnunet_environment

CUDA_HOME_NOTICE = "No CUDA runtime is found"
JIT_INTERFACE = "torch.jit.interface"


def python(code: str, env: dict | None = None) -> str:
    """stderr of `python -c code`."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                            env=env or dict(os.environ))
    assert result.returncode == 0, result.stderr
    return result.stderr


def require_notice(code: str, notice: str, env: dict | None = None) -> None:
    if notice not in python(code, env):
        pytest.skip(f"this torch/timm does not print {notice!r} here; nothing to hide")


@pytest.mark.slow
def test_doctor_prints_neither_notice(tmp_path):
    require_notice("import torch.utils.cpp_extension", CUDA_HOME_NOTICE)
    env = dict(os.environ, nnUNet_extTrainer=str(trainers_dir()))
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / name).mkdir()
        env[name] = str(tmp_path / name)
    result = subprocess.run([sys.executable, "-m", "swin_umamba.cli", "doctor"], capture_output=True, text=True,
                            timeout=600, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert CUDA_HOME_NOTICE not in result.stderr and JIT_INTERFACE not in result.stderr
    assert "nnU-Net finds nnUNetTrainerSwinUMamba" in result.stdout


@pytest.mark.slow
def test_kernel_load_drops_only_the_cuda_home_notice():
    require_notice("import torch.utils.cpp_extension", CUDA_HOME_NOTICE)
    stderr = python("from swin_umamba.ops.scan_cpu import load_kernel; load_kernel()\n"
                    "import logging; logging.getLogger('torch.utils.cpp_extension').warning('kept')")
    assert CUDA_HOME_NOTICE not in stderr and "kept" in stderr


@pytest.mark.slow
def test_nnunet_children_hide_timms_jit_warning():
    pytest.importorskip("timm")
    require_notice("import timm", JIT_INTERFACE)
    assert JIT_INTERFACE not in python("import timm", nnunet_environment())
