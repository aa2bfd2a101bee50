"""A private copy of a Triton kernel module, defined under Triton's interpreter.

Triton decides at `@triton.jit` time whether a kernel is compiled or interpreted, so the copy is
executed with TRITON_INTERPRET=1 set; its kernels then run on CPU tensors. The copy is loaded
once per process under `private_name`, because the torch.library ops it registers carry that
name and can be registered only once.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def load_interpreted_copy(source: Path, private_name: str):
    if private_name in sys.modules:
        return sys.modules[private_name]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRITON_INTERPRET", "1")
        spec = importlib.util.spec_from_file_location(private_name, source)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    sys.modules[private_name] = module
    return module
