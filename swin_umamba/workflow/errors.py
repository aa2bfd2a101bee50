"""The errors of the workflow layer, one base for the callers to catch."""
from __future__ import annotations


class WorkflowError(RuntimeError):
    """Something nnU-Net would read is missing or unusable; the message names it and the fix."""


class NnUNetFoldersNotSet(WorkflowError):
    """nnUNet_raw, nnUNet_preprocessed or nnUNet_results is not set (or nnUNet_raw does not exist)."""


class DatasetNotFound(WorkflowError):
    """No raw dataset folder (or more than one) for a dataset id or name."""


class InputsNotUsable(WorkflowError):
    """The images or checkpoints a prediction would read have problems; the message lists every one."""
