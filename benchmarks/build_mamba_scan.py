"""Build only mamba-ssm's selective-scan CUDA extension (``selective_scan_cuda``) for one GPU arch.

For a GPU machine without a mamba-ssm wheel for its torch/CUDA: the full ``pip install mamba-ssm``
builds every kernel of the package for many architectures (an hour or more); Swin-UMamba needs
only the selective scan. Give it the unpacked mamba-ssm source (``csrc/selective_scan`` and the
``mamba_ssm`` Python package)::

    pip download --no-deps --no-binary :all: mamba-ssm==2.3.2.post1     # then unpack it
    MAX_JOBS=16 python -m benchmarks.build_mamba_scan --src mamba_ssm-2.3.2.post1 \\
        --build-dir /tmp/ss_build --arch 90

It compiles with the nvcc flags of mamba-ssm's setup.py (for the one ``--arch``), leaves
``selective_scan_cuda*.so`` in ``--build-dir`` and checks, in a child process with
``--build-dir`` and ``--src`` on PYTHONPATH, that
``from mamba_ssm.ops.selective_scan_interface import selective_scan_fn`` imports and agrees with
the reference scan. Other processes need the same two folders on PYTHONPATH (``import torch``
before ``selective_scan_cuda``; the interface module does that).
"""
from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import time

from benchmarks import REPOSITORY_ROOT


def nvcc_flags(arch: str) -> list[str]:
    """mamba-ssm 2.3.2's setup.py flags for CUDA builds, one architecture, no -lineinfo/ptxas -v."""
    return [
        "-O3",
        "-std=c++17",
        "-U__CUDA_NO_HALF_OPERATORS__",
        "-U__CUDA_NO_HALF_CONVERSIONS__",
        "-U__CUDA_NO_BFLOAT16_OPERATORS__",
        "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
        "-U__CUDA_NO_BFLOAT162_OPERATORS__",
        "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
        "--expt-relaxed-constexpr",
        "--expt-extended-lambda",
        "--use_fast_math",
        "--threads", "4",
        "-gencode", f"arch=compute_{arch},code=sm_{arch}",
    ]


def build(src: str, build_dir: str, arch: str, verbose: bool = True):
    from torch.utils.cpp_extension import load

    csrc = os.path.join(src, "csrc", "selective_scan")
    sources = sorted(glob.glob(os.path.join(csrc, "*.cpp")) + glob.glob(os.path.join(csrc, "*.cu")))
    if not sources:
        raise SystemExit(f"no selective-scan sources under {csrc}")
    os.makedirs(build_dir, exist_ok=True)
    return load(
        name="selective_scan_cuda",
        sources=sources,
        extra_cflags=["-O3", "-std=c++17"],
        extra_cuda_cflags=nvcc_flags(arch),
        extra_include_paths=[csrc],
        build_directory=build_dir,
        verbose=verbose,
    )


def smoke_test() -> None:
    """selective_scan_fn imports from the mamba_ssm package and agrees with the reference scan."""
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    from swin_umamba.ops import random_scan_inputs, selective_scan_ref

    u, delta, A, B, C, D, bias = random_scan_inputs(1, 8, 50, 1, 16, device="cuda")
    # mamba's sixth positional argument is z: the rest go by name
    out = selective_scan_fn(u, delta, A, B, C, D=D, delta_bias=bias, delta_softplus=True)
    err = (out - selective_scan_ref(u, delta, A, B, C, D=D, delta_bias=bias, delta_softplus=True)).abs().max().item()
    print(f"selective_scan_fn smoke test: max abs error {err:.2e}")
    if not err < 1e-3:
        raise SystemExit("selective_scan_fn disagrees with the reference scan")


def smoke_test_in_child(build_dir: str, src: str) -> int:
    """:func:`smoke_test` in a new process that finds the built extension through PYTHONPATH."""
    path = os.pathsep.join(p for p in (build_dir, src, os.environ.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "benchmarks.build_mamba_scan", "--smoke-test-only"]
    return subprocess.run(cmd, cwd=REPOSITORY_ROOT, env=dict(os.environ, PYTHONPATH=path)).returncode


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", help="unpacked mamba-ssm source (holds csrc/ and mamba_ssm/); required to build")
    parser.add_argument("--build-dir", help="where selective_scan_cuda*.so goes; required to build")
    parser.add_argument("--arch", default="90", help="compute capability without the dot (default 90: H100/H200)")
    parser.add_argument("--quiet", action="store_true", help="no compiler output")
    parser.add_argument("--smoke-test-only", action="store_true",
                        help="only check the selective_scan_fn importable in this process (no build)")
    args = parser.parse_args(argv)
    if args.smoke_test_only:
        smoke_test()
        return 0
    if not args.src or not args.build_dir:
        parser.error("--src and --build-dir are required to build")
    t0 = time.time()
    build(args.src, args.build_dir, args.arch, verbose=not args.quiet)
    print(f"built selective_scan_cuda for sm_{args.arch} in {time.time() - t0:.0f} s into {args.build_dir}")
    return smoke_test_in_child(args.build_dir, args.src)


if __name__ == "__main__":
    sys.exit(main())
