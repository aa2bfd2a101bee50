"""``python -m benchmarks.gpu``: the command line of the GPU benchmark (see benchmarks/gpu/__init__.py)."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys

import torch

from benchmarks import gpu
from benchmarks.gpu.common import Budget, Settings, error_text
from benchmarks.gpu.runner import DEFAULT_OUT, SECTION_NAMES, run
from swin_umamba.environment import TRITON_INTERPRET_VAR


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=gpu.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the JSON and Markdown (default %(default)s)")
    parser.add_argument("--device", default="cuda", help="torch device (default %(default)s)")
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny shapes and single repeats: every section in minutes, also on the CPU")
    parser.add_argument("--budget-s", type=float, default=450.0,
                        help="no measurement starts after this many seconds (default %(default)s)")
    parser.add_argument("--sections", nargs="+", choices=SECTION_NAMES, default=list(SECTION_NAMES),
                        help="sections to run (default: all)")
    parser.add_argument("--patch", type=int, default=None,
                        help="square (cubic) patch side for every shape case (default: each case's own)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations (default %(default)s)")
    parser.add_argument("--iters", type=int, default=10, help="timed training iterations (default %(default)s)")
    parser.add_argument("--scan-repeats", type=int, default=10,
                        help="timed calls per scan and cross-scan measurement, median (default %(default)s)")
    parser.add_argument("--scan-dtypes", nargs="+", choices=("float32", "float16", "bfloat16"),
                        default=["float32", "float16"], help="dtypes of u, delta, B, C (default: %(default)s)")
    parser.add_argument("--compile-backend", default=None,
                        help="torch.compile backend (default: inductor on CUDA, eager on the CPU)")
    parser.add_argument("--train-reserve-s", type=float, default=240.0,
                        help="seconds of the budget the training and memory3d sections leave to nnunet_train (default %(default)s)")
    parser.add_argument("--train-timeout-s", type=float, default=300.0,
                        help="at most this long for each nnU-Net command (default %(default)s)")
    args = parser.parse_args(argv)
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here (use --device cpu --dry-run for a dry run)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = Settings(args)
    with contextlib.ExitStack() as stack:
        if settings.device.type == "cpu":
            # Triton runs CPU tensors under its interpreter, which must be chosen before the kernels are defined
            os.environ[TRITON_INTERPRET_VAR] = "1"
            settings.triton_interpreter = "Triton's own interpreter"
            if settings.dry:  # about 100x faster: what makes a dry run take minutes
                try:
                    from swin_umamba.ops.triton_interpreter import vectorised_interpreter

                    stack.enter_context(vectorised_interpreter())
                    settings.triton_interpreter = "Triton's interpreter with the vectorised scan and reduce"
                except Exception as exc:
                    settings.triton_interpreter = f"Triton's own interpreter ({error_text(exc)})"
        if settings.cuda:
            torch.backends.cudnn.benchmark = True  # as nnU-Net's trainer sets it
        run(settings, Budget(args.budget_s), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
