#!/usr/bin/env bash
# Builds, on a machine with pip's package registries, what benchmarks/gpu_device_run.sh needs carried to a
# GPU machine (Python 3.12, x86-64, CUDA torch and triton installed, no internet), into ignored folders of
# the repository root:
#
#   bash benchmarks/prepare_gpu_carry.sh
#
#   .whl/              wheels of nnunetv2 and of its dependencies that the GPU machine's image lacks
#                      (Python 3.12 manylinux builds, no dependencies resolved: the list below is complete)
#   .gpu/sitk.tar.xz   SimpleITK's wheel unpacked and xz-compressed (the wheel alone is over 50 MB)
#   .gpu/mamba/        mamba-ssm's csrc/selective_scan and its mamba_ssm package from the sdist, with a stub
#                      mamba_ssm/__init__.py (the package's own imports Triton kernels the scan does not need)
#
# Together with the working tree this must stay under the device's 64 MiB; the script prints the sizes.
# imagecodecs (nnU-Net's optional TIFF codecs, about 40 MB) is left out: nothing here reads compressed TIFFs.
set -euo pipefail
# TORCH_PYTHON: a Python with torch installed, for reading mamba-ssm's sdist (default .venv/bin/python)
cd "$(dirname "$0")/.."
MAMBA=mamba-ssm==2.3.2.post1
SITK=SimpleITK==2.5.7
# nnunetv2 and what it needs beyond the GPU image's packages (numpy, scipy, torch, scikit-image, pandas, ...)
WHEELS=(
  nnunetv2==2.8.1 acvl-utils==0.2.6 batchgenerators==0.25.5 batchgeneratorsv2==0.3.6 blosc2==4.14.1
  connected-components-3d==4.1.1 dynamic-network-architectures==0.4.4 future==1.0.0 graphviz==0.21
  importlib-resources==7.1.0 linecache2==1.0.0 ndindex==1.10.1 nibabel==5.4.2 numexpr==2.14.2
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 traceback2==1.4.0
  unittest2==1.1.0 yacs==0.1.8
)
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do PLATFORMS+=(--platform "$p"); done
download() {  # wheels for the GPU machine's Python, never for this one's
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      "${PLATFORMS[@]}" -d "$1" "${@:2}"
}

rm -rf .whl .gpu/sitk.tar.xz .gpu/mamba
mkdir -p .whl .gpu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "wheels -> .whl/"
for spec in "${WHEELS[@]}"; do
  # a pure-Python package published as an sdist only is built into a py3-none-any wheel here
  download .whl "$spec" 2>/dev/null || python3 -m pip wheel -q --no-deps --no-build-isolation -w .whl "$spec"
done
if ls .whl/*.whl | grep -v -e "none-any.whl$" -e "cp312" -e "abi3"; then
  echo "the wheels above are built for this machine's Python, not the GPU machine's 3.12"; exit 1
fi

echo "SimpleITK -> .gpu/sitk.tar.xz"
download "$tmp/sitk" "$SITK"
mkdir -p "$tmp/sitk/unpacked"
python3 -m zipfile -e "$tmp"/sitk/*.whl "$tmp/sitk/unpacked"
tar cf - -C "$tmp/sitk/unpacked" . | xz -T0 -6 > .gpu/sitk.tar.xz  # minutes on a busy 2-core machine

echo "mamba-ssm sources -> .gpu/mamba/"
# pip reads the sdist's metadata by running its setup.py, which imports torch: use a Python that has torch
# (the project's venv by default) and tell it to skip the CUDA build
MAMBA_SKIP_CUDA_BUILD=TRUE "${TORCH_PYTHON:-.venv/bin/python}" -m pip download -q --no-deps --no-binary :all: \
    --no-build-isolation -d "$tmp/mamba" "$MAMBA"
tar xzf "$tmp"/mamba/*.tar.gz -C "$tmp/mamba"
src=$(ls -d "$tmp"/mamba/mamba_ssm-*/)
mkdir -p .gpu/mamba/csrc
cp -r "$src/csrc/selective_scan" .gpu/mamba/csrc/
cp -r "$src/mamba_ssm" .gpu/mamba/
echo '"""mamba-ssm, cut down to the selective scan (its full __init__ imports modules the scan does not need)."""' \
    > .gpu/mamba/mamba_ssm/__init__.py

echo
du -sh .whl .gpu/sitk.tar.xz .gpu/mamba
echo "working tree that travels: $(git ls-files -co --exclude-standard -z | du -ch --files0-from=- | tail -1)"
echo "carry: .whl .gpu (and .gpu/selective_scan_cuda.so.xz from an earlier run's \$OUT, if you have one)"
