"""Triton, if it imports: the Triton kernels' modules share this guarded import.

`triton` and `tl` are None where it does not (no Triton wheel, or a broken one), and
`IMPORT_ERROR` says why; the kernels' modules then define no kernels and report the reason.
"""
from __future__ import annotations

try:
    import triton
    import triton.language as tl

    IMPORT_ERROR: str | None = None
except Exception as exc:  # ImportError, or a broken installation raising anything else
    triton = None
    tl = None
    IMPORT_ERROR = f"{type(exc).__name__}: {exc}"
