"""The compiled CPU scan kernel for tests that need it: skipped with the reason where it cannot be built,
a failure where $CI is set (a build that breaks must not pass as skips there)."""
from __future__ import annotations

import os
import warnings

import pytest

from swin_umamba.ops import scan_cpu

CI_ENV_VAR = "CI"


def build_error() -> str | None:
    """None when the kernel loads (building it on first use), else why it could not be built."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the loader warns once; the reason is reported here instead
        kernel = scan_cpu.load_kernel()
    if kernel is not None:
        return None
    return getattr(scan_cpu, "_failed", None) or "load_kernel() returned None"


def require_cpu_kernel() -> None:
    """Return if the kernel is usable; otherwise skip the calling test, or fail it where $CI is set."""
    error = build_error()
    if error is None:
        return
    reason = f"the compiled CPU scan kernel cannot be built here: {error.splitlines()[0][:300]}"
    if os.environ.get(CI_ENV_VAR):
        pytest.fail(f"{reason} (a failure because {CI_ENV_VAR} is set)", pytrace=False)
    pytest.skip(reason)
