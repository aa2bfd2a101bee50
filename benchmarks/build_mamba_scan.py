"""Build only mamba-ssm's selective-scan CUDA extension (``selective_scan_cuda``) for one GPU arch.

For a GPU machine without a mamba-ssm wheel for its torch/CUDA: the full ``pip install mamba-ssm``
builds every kernel of the package for many architectures (an hour or more); Swin-UMamba needs
only the selective scan. Give it the unpacked mamba-ssm source (``csrc/selective_scan`` and the
``mamba_ssm`` Python package)::

    pip download --no-deps --no-binary :all: mamba-ssm==2.3.2.post1     # then unpack it
    MAX_JOBS=16 python benchmarks/build_mamba_scan.py --src mamba_ssm-2.3.2.post1 \\
        --build-dir /tmp/ss_build --arch 90

It compiles with the nvcc flags of mamba-ssm's setup.py (for the one ``--arch``), leaves
``selective_scan_cuda*.so`` in ``--build-dir`` and checks that
``from mamba_ssm.ops.selective_scan_interface import selective_scan_fn`` imports and runs with
``--build-dir`` and ``--src`` on ``sys.path``. Other processes need the same two folders on
PYTHONPATH (``import torch`` before ``selective_scan_cuda``; the interface module does that).
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time


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
    """selective_scan_fn imports from the mamba_ssm package and agrees with a plain loop."""
    import torch
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    g = torch.Generator(device="cuda").manual_seed(0)
    b, d, n, L = 1, 8, 16, 50
    u = torch.randn(b, d, L, device="cuda", generator=g)
    delta = torch.rand(b, d, L, device="cuda", generator=g) * 0.1
    A = -torch.rand(d, n, device="cuda", generator=g) - 0.5
    B = torch.randn(b, 1, n, L, device="cuda", generator=g)
    C = torch.randn(b, 1, n, L, device="cuda", generator=g)
    out = selective_scan_fn(u, delta, A, B, C)
    h = torch.zeros(b, d, n, device="cuda")
    ys = []
    for t in range(L):
        h = torch.exp(delta[:, :, t, None] * A) * h + delta[:, :, t, None] * B[:, :, :, t] * u[:, :, t, None]
        ys.append((h * C[:, :, :, t]).sum(-1))
    err = (out - torch.stack(ys, -1)).abs().max().item()
    print(f"selective_scan_fn smoke test: max abs error {err:.2e}")
    if not err < 1e-3:
        raise SystemExit("selective_scan_fn disagrees with the loop")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", required=True, help="unpacked mamba-ssm source (holds csrc/ and mamba_ssm/)")
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--arch", default="90", help="compute capability without the dot (default 90: H100/H200)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    t0 = time.time()
    build(args.src, args.build_dir, args.arch, verbose=not args.quiet)
    print(f"built selective_scan_cuda for sm_{args.arch} in {time.time() - t0:.0f} s into {args.build_dir}")
    for path in (args.build_dir, args.src):
        if path not in sys.path:
            sys.path.insert(0, path)
    smoke_test()
    return 0


if __name__ == "__main__":
    sys.exit(main())
