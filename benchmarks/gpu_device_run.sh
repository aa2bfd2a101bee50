#!/usr/bin/env bash
# Runs on a lent GPU machine (Python 3.12 + CUDA torch, no internet, no nnU-Net), from the repository root:
#
#   bash benchmarks/gpu_device_run.sh scan   # build mamba's selective-scan kernel, CUDA tests, gpu_check.py
#   bash benchmarks/gpu_device_run.sh cli    # nnU-Net CLI on the demo dataset: plan, train (compiled), predict
#
# Expects, carried beside the working tree (ignored paths):
#   .whl/              wheels of nnunetv2 2.8.1 and the dependencies the machine lacks (SimpleITK excepted)
#   .gpu/sitk.tar.xz   the SimpleITK wheel's contents, xz-compressed (the wheel alone is 53 MB)
#   .gpu/mamba/        mamba-ssm 2.3.2.post1: csrc/selective_scan and the mamba_ssm package (stub __init__)
#   .gpu/golden/       vmamba_tiny_v0_keys.json (from ../shared/golden) for the synthetic ImageNet checkpoint
#   .gpu/selective_scan_cuda.so.xz   (cli phase, optional) the kernel built by the scan phase
# Writes logs and JSON into $OUT.
#
# Seen on an H100 (2026-11-23): scan phase 252 s (kernel build 134 s, 16 cores). cli phase: install +
# plan 60 s; with torch.compile epoch 0 of the _test trainer takes ~250 s (compilation, recompile limit
# hit), epochs 1-2 1-4 s, the final validation ~90 s (compiles the deep-supervision-off forward), so give
# TRAIN_TIMEOUT >= 420; measure_memory.py's default grid (64 points, ~14 s each) does not fit: pass a
# smaller one in MEMORY_ARGS. The cli phase as a whole may need two calls.
set -u -o pipefail
phase=${1:?scan or cli}
MEMORY_UNTIL=${MEMORY_UNTIL:-560}  # cli phase: measure_memory ends by this many seconds into the run
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MAX_JOBS=16
SS_BUILD=/tmp/ss_build
REPO=$(pwd)
log() { echo "[$(date +%T) +${SECONDS}s] $*"; }
left() { local t=$(($1 - SECONDS)); echo $((t > 10 ? t : 10)); }  # seconds until mark $1 (at least 10)

log "install wheels"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir .whl/*.whl || exit 3
SITE=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
tar xJf .gpu/sitk.tar.xz -C "$SITE" || exit 3
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . > /dev/null || exit 3
python3 -c "import nnunetv2, SimpleITK, blosc2, acvl_utils, swin_umamba; print('imports ok')" || exit 3
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; python3 -c "import torch; print(torch.__version__, torch.version.cuda)"; nvcc --version | tail -2; } > "$OUT/env.txt" 2>&1

mamba_path() {
  if [ -f "$SS_BUILD/selective_scan_cuda.so" ]; then
    export PYTHONPATH="$SS_BUILD:$REPO/.gpu/mamba${PYTHONPATH:+:$PYTHONPATH}"
    python3 -c "from swin_umamba.ops import dispatch; print('mamba kernel:', dispatch.mamba_scan_fn() is not None, dispatch.mamba_error() or '')"
  else
    log "no selective_scan_cuda.so: the torch path is the CUDA path"
  fi
}

if [ "$phase" = scan ]; then
  log "build selective_scan_cuda (sm_90) in the background"
  ( timeout "${BUILD_TIMEOUT:-330}" python3 benchmarks/build_mamba_scan.py --src .gpu/mamba --build-dir "$SS_BUILD" \
      > "$OUT/mamba_build.log" 2>&1; echo "build rc $?" >> "$OUT/mamba_build.log" ) &
  build_pid=$!
  log "tests/test_selective_scan.py while it builds (the mamba test is skipped in this run)"
  timeout 240 python3 -m pytest -q -p no:cacheprovider -rs tests/test_selective_scan.py > "$OUT/pytest_scan.log" 2>&1
  log "pytest rc $?"; tail -3 "$OUT/pytest_scan.log"
  wait $build_pid
  log "$(tail -1 "$OUT/mamba_build.log")"; grep -E "built |smoke|error" "$OUT/mamba_build.log" | head -5
  mamba_path
  log "CUDA tests again, now with the kernel on the path"
  timeout 60 python3 -m pytest -q -p no:cacheprovider -rs tests/test_selective_scan.py -k "cuda" >> "$OUT/pytest_scan.log" 2>&1
  log "pytest -k cuda rc $?"; tail -3 "$OUT/pytest_scan.log"
  # the whole phase must end inside the device's 600 s per command: budget what is left
  timeout "$(left 580)" python3 benchmarks/gpu_check.py --out "$OUT" --budget-s "$(left 530)" \
      ${CHECK_ARGS:---dtypes float16} 2>&1 | tee "$OUT/gpu_check.log"
  log "gpu_check rc $?"
  if [ -f "$SS_BUILD/selective_scan_cuda.so" ]; then
    xz -T16 -6 -c "$SS_BUILD/selective_scan_cuda.so" > "$OUT/selective_scan_cuda.so.xz"
    ls -la "$SS_BUILD/selective_scan_cuda.so" "$OUT/selective_scan_cuda.so.xz"
  fi
  exit 0
fi

if [ "$phase" = cli ]; then
  if [ ! -f "$SS_BUILD/selective_scan_cuda.so" ] && [ -f .gpu/selective_scan_cuda.so.xz ]; then
    mkdir -p "$SS_BUILD" && xz -dc .gpu/selective_scan_cuda.so.xz > "$SS_BUILD/selective_scan_cuda.so"
  fi
  mamba_path
  export nnUNet_raw=/tmp/nn/raw nnUNet_preprocessed=/tmp/nn/pre nnUNet_results=/tmp/nn/res
  export nnUNet_extTrainer="$(swin-umamba trainers-dir):$REPO/tests/nnunet_trainers"
  unset nnUNet_compile
  mkdir -p shared && cp -r .gpu/golden shared/  # tests/conftest.py looks for shared/golden in the checkout
  python3 -c "from pathlib import Path; from tests.synthetic_weights import write_model_only_checkpoint as w; w(Path('/tmp/vmamba_v0.pth'))" || exit 4
  export SWIN_UMAMBA_PRETRAINED=/tmp/vmamba_v0.pth
  mkdir -p $nnUNet_raw && cp -r swin_umamba/demo_data/Dataset990_DemoAbdomenMR $nnUNet_raw/
  log "plan and preprocess"
  nnUNetv2_plan_and_preprocess -d 990 -c 2d --verify_dataset_integrity -np 8 > "$OUT/plan.log" 2>&1
  log "plan rc $?"; tail -2 "$OUT/plan.log"
  log "train (torch.compile on: nnUNet_compile unset)"
  timeout "${TRAIN_TIMEOUT:-420}" nnUNetv2_train 990 2d 0 -tr nnUNetTrainerSwinUMamba_test -device cuda > "$OUT/train.log" 2>&1
  log "train rc $?"; tail -5 "$OUT/train.log"
  tr_dir=$(ls -d $nnUNet_results/Dataset990_DemoAbdomenMR/nnUNetTrainerSwinUMamba_test__nnUNetPlans__2d/fold_0 2>/dev/null)
  [ -n "$tr_dir" ] && cp "$(ls -t $tr_dir/training_log_*.txt | head -1)" "$OUT/training_log.txt"
  log "predict"
  timeout 100 nnUNetv2_predict -i $nnUNet_raw/Dataset990_DemoAbdomenMR/imagesTs -o /tmp/nn/pred -d 990 -c 2d -f 0 \
      -tr nnUNetTrainerSwinUMamba_test -chk checkpoint_final.pth -device cuda > "$OUT/predict.log" 2>&1
  log "predict rc $?"; tail -3 "$OUT/predict.log"; ls /tmp/nn/pred
  if [ -f benchmarks/measure_memory.py ]; then
    log "measure_memory"
    timeout "$(left "$MEMORY_UNTIL")" python3 benchmarks/measure_memory.py --out "$OUT/memory_model.json" ${MEMORY_ARGS:-} \
        > "$OUT/memory.log" 2>&1
    log "measure_memory rc $?"; tail -8 "$OUT/memory.log"
  fi
  if [ -n "${CLI_CHECK_ARGS:-}" ] && [ $SECONDS -lt 540 ]; then
    timeout "$(left 580)" python3 benchmarks/gpu_check.py --out "$OUT" --json-name gpu_timing_cli.json \
        --skip-numerics --budget-s "$(left 540)" $CLI_CHECK_ARGS 2>&1
  fi
  exit 0
fi
echo "unknown phase $phase"; exit 2
