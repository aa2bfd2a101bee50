"""Entry point for nnU-Net's trainer search (`nnUNet_extTrainer` points at this folder).

nnU-Net imports every module in that folder under its bare name; this one only
re-exports the trainers from the installed package, so the classes nnU-Net finds
are the package's own.
"""
from swin_umamba.trainers import *  # noqa: F401,F403
from swin_umamba.trainers import __all__  # noqa: F401
