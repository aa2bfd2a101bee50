"""Selective scan (Mamba S6) without a hard dependency on mamba-ssm.

See :mod:`swin_umamba.ops.dispatch` for the backends and the ``SWIN_UMAMBA_SCAN`` variable, and
:mod:`swin_umamba.ops.scan_ref` for the reference scan they are all checked against.
"""
from swin_umamba.ops.dispatch import describe_scan_backend, selective_scan, selective_scan_backend
from swin_umamba.ops.scan_ref import ScanInputs, random_scan_grads, random_scan_inputs, selective_scan_ref

__all__ = ["ScanInputs", "describe_scan_backend", "random_scan_grads", "random_scan_inputs", "selective_scan",
           "selective_scan_backend", "selective_scan_ref"]
