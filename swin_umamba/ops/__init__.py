"""Selective scan (Mamba S6) without a hard dependency on mamba-ssm.

See :mod:`swin_umamba.ops.dispatch` for the backends and the ``SWIN_UMAMBA_SCAN`` variable.
"""
from swin_umamba.ops.dispatch import describe_scan_backend, selective_scan, selective_scan_backend

__all__ = ["describe_scan_backend", "selective_scan", "selective_scan_backend"]
