#!/usr/bin/env bash
# Runs on a lent GPU machine (Python 3.12 + CUDA torch + triton, no internet, no nnU-Net), from the
# repository root, in one call of under 9 minutes:
#
#   bash benchmarks/gpu_device_run.sh bench
#
# 1. installs the carried wheels and this repository (editable, no dependencies);
# 2. builds mamba-ssm's selective-scan kernel for sm_90 in the background (python -m benchmarks.build_mamba_scan),
#    or unpacks a carried build (.gpu/selective_scan_cuda.so.xz, which an earlier run left in $OUT);
# 3. meanwhile runs the CUDA tests: tests/test_scan_triton.py, tests/test_compile.py,
#    tests/test_scan_dispatch.py and tests/test_selective_scan.py, those with "cuda" in their names;
# 4. runs the GPU benchmark (python -m benchmarks.gpu) with the time that is left as its budget.
# Writes into $OUT (at most 8 files come back): env.txt, pytest_cuda.log, mamba_build.log, gpu_bench.log,
# gpu_bench.json, gpu_bench.md, nnunet_train.log, selective_scan_cuda.so.xz (when it was built here).
#
# Carry (ignored paths; build both on a machine with the package registries: bash benchmarks/prepare_gpu_carry.sh):
#   .whl/              wheels of nnunetv2 and the dependencies the GPU machine lacks (SimpleITK excepted)
#   .gpu/sitk.tar.xz   the SimpleITK wheel's contents, xz-compressed (the wheel alone is over 50 MB)
#   .gpu/mamba/        mamba-ssm's csrc/selective_scan and its mamba_ssm package (with a stub __init__)
#   .gpu/selective_scan_cuda.so.xz   optional: a kernel built by an earlier run (copy it from its $OUT)
#
# Variables: END_BY (default 530) seconds after the start by which everything has ended;
# BENCH_ARGS extra arguments for python -m benchmarks.gpu; BUILD_TIMEOUT (default 330) for the kernel build.
set -u -o pipefail
phase=${1:?usage: gpu_device_run.sh bench}
[ "$phase" = bench ] || { echo "unknown phase $phase (expected: bench)"; exit 2; }
END_BY=${END_BY:-530}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MAX_JOBS=16
SS_BUILD=/tmp/ss_build
REPO=$(pwd)
log() { echo "[$(date +%T) +${SECONDS}s] $*"; }
left() { local t=$(($1 - SECONDS)); echo $((t > 10 ? t : 10)); }  # seconds until mark $1 (at least 10)

log "install wheels and the repository"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir .whl/*.whl || exit 3
SITE=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
tar xJf .gpu/sitk.tar.xz -C "$SITE" || exit 3
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . > /dev/null || exit 3
python3 -c "import nnunetv2, SimpleITK, blosc2, acvl_utils, swin_umamba; print('imports ok')" || exit 3
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch, triton; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'triton', triton.__version__)"
  nvcc --version | tail -2; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

built_here=0
if [ -f .gpu/selective_scan_cuda.so.xz ]; then
  log "carried selective_scan_cuda.so"
  mkdir -p "$SS_BUILD" && xz -dc .gpu/selective_scan_cuda.so.xz > "$SS_BUILD/selective_scan_cuda.so"
  build_pid=
else
  log "build selective_scan_cuda (sm_90) in the background"
  ( timeout "${BUILD_TIMEOUT:-330}" python3 -m benchmarks.build_mamba_scan --src .gpu/mamba --build-dir "$SS_BUILD" \
      > "$OUT/mamba_build.log" 2>&1; echo "build rc $?" >> "$OUT/mamba_build.log" ) &
  build_pid=$!
  built_here=1
fi

log "CUDA tests (mamba's kernel is not on the path yet: its own test runs after the build)"
timeout 200 python3 -m pytest -q -p no:cacheprovider -rs tests/test_compile_cuda.py tests/test_scan_triton.py \
    > "$OUT/pytest_cuda.log" 2>&1
log "pytest rc $?"; tail -3 "$OUT/pytest_cuda.log"

if [ -n "$build_pid" ]; then
  wait "$build_pid"
  log "$(tail -1 "$OUT/mamba_build.log")"; grep -E "built |smoke|error" "$OUT/mamba_build.log" | head -5
fi
if [ -f "$SS_BUILD/selective_scan_cuda.so" ]; then
  export PYTHONPATH="$SS_BUILD:$REPO/.gpu/mamba${PYTHONPATH:+:$PYTHONPATH}"
  python3 -c "from swin_umamba.ops import dispatch; print('mamba kernel:', dispatch.mamba_scan_fn() is not None, dispatch.mamba_error() or '')"
  timeout 60 python3 -m pytest -q -p no:cacheprovider -rs -k "cuda" tests/test_selective_scan.py >> "$OUT/pytest_cuda.log" 2>&1
  log "pytest tests/test_selective_scan.py -k cuda rc $?"; tail -2 "$OUT/pytest_cuda.log"
else
  log "no selective_scan_cuda.so: the benchmark reports mamba-ssm as not available"
fi

# the whole call must end inside the device's limit: the benchmark gets what is left, less 25 s to write back
budget=$(( $(left "$END_BY") - 25 ))
log "python -m benchmarks.gpu, budget ${budget} s"
timeout "$(left "$END_BY")" python3 -m benchmarks.gpu --out "$OUT" --budget-s "$budget" ${BENCH_ARGS:-} 2>&1 \
    | tee "$OUT/gpu_bench.log"
log "benchmarks.gpu rc $?"
if [ "$built_here" = 1 ] && [ -f "$SS_BUILD/selective_scan_cuda.so" ]; then
  xz -T16 -6 -c "$SS_BUILD/selective_scan_cuda.so" > "$OUT/selective_scan_cuda.so.xz"
  ls -la "$OUT/selective_scan_cuda.so.xz"
fi
exit 0
