"""Whole-case prediction: `nnUNetv2_predict -device cpu` with our trainer vs nnU-Net's default trainer.

    python -m benchmarks.bench_predict [--workdir DIR] [--repeats 3] [--warmup 1] [--quick]

Builds a throw-away nnU-Net workspace (nnUNet_raw / _preprocessed / _results in --workdir, a
temporary folder by default):

* Dataset990_DemoAbdomenMR: the 2D demo dataset shipped in swin_umamba/demo_data; the case
  predicted is its first imagesTs slice.
* Dataset991_SynthBlobs3D: 4 synthetic NIfTI volumes (24x160x160, spacing 3x1x1 mm, two
  ellipsoid "organs" as labels 1 and 2) plus a fifth volume as the case to predict.

Each is planned by nnU-Net (nnUNetv2_plan_and_preprocess -c 2d -npfp 1 -np 1 --no_pp:
prediction needs the plans, not the preprocessed training data). For each, a model folder is
fabricated for nnUNetTrainer (nnU-Net's default, PlainConvUNet from the plans) and for
nnUNetTrainerSwinUMamba, with randomly initialised weights written as nnU-Net's
save_checkpoint writes them (checkpoint_final.pth + plans.json + dataset.json). Both use the
same plans: the 2d configuration with the patch rounded up to a multiple of 32, as our
trainer saves it (swin_umamba.trainers.base.plans_with_trainable_patch).

Then each `nnUNetv2_predict -i IN -o OUT -d ID -c 2d -tr TRAINER -f 0 -device cpu -npp 1
-nps 1 [--disable_tta]` is timed as a whole command (process start, imports, model load,
preprocessing, sliding window, export), median of --repeats runs after --warmup untimed ones,
runs of the two trainers interleaved. nnU-Net sets torch's thread count to
multiprocessing.cpu_count() for -device cpu; that is the thread count of this section.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import timing
from swin_umamba.demo.layout import CONFIGURATION, DATASET_ID, DATASET_NAME, dataset_source
from swin_umamba.environment import DEFAULT_WORKERS_VAR, EXT_TRAINER_VAR, trainers_dir
from swin_umamba.network_registry import SWIN_UMAMBA
from swin_umamba.nnunet_layout import DEFAULT_PLANS
from swin_umamba.workflow import nnunet_commands
from swin_umamba.workflow.nnunet_runner import nnunet_environment

DEMO = dataset_source()
OURS = SWIN_UMAMBA.trainer
DEFAULT = "nnUNetTrainer"
PLANS = DEFAULT_PLANS
SYNTH_ID, SYNTH_NAME = 991, "Dataset991_SynthBlobs3D"
DEMO_ID, DEMO_NAME = DATASET_ID, DATASET_NAME


def workspace_env(workdir: Path) -> dict:
    """nnU-Net's folders inside `workdir`, our trainers registered, one export worker."""
    return nnunet_environment(workdir, **{EXT_TRAINER_VAR: str(trainers_dir()), DEFAULT_WORKERS_VAR: "1",
                                          "PYTHONWARNINGS": "ignore"})


# datasets --------------------------------------------------------------------------------------------
def synthetic_volume(shape, seed: int):
    """(image, label) arrays (z, y, x): noisy background, two ellipsoids with their own intensity."""
    import numpy as np

    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")
    image = rng.normal(0.0, 0.3, shape).astype(np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    for value, intensity in ((1, 2.0), (2, -1.5)):
        centre = [rng.uniform(0.3, 0.7) * s for s in shape]
        radii = [rng.uniform(0.15, 0.25) * s for s in shape]
        inside = sum(((g - c) / r) ** 2 for g, c, r in zip((z, y, x), centre, radii)) <= 1.0
        label[inside] = value
        image[inside] += intensity
    return image, label


def write_synthetic_dataset(raw: Path, shape=(24, 160, 160), n_train: int = 4) -> Path:
    """Dataset991_SynthBlobs3D in nnUNet_raw; returns the folder holding the one test case."""
    import SimpleITK as sitk

    folder = raw / SYNTH_NAME
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)

    def save(array, path):
        img = sitk.GetImageFromArray(array)
        img.SetSpacing((1.0, 1.0, 3.0))  # x, y, z
        sitk.WriteImage(img, str(path))

    for i in range(n_train + 1):
        image, label = synthetic_volume(shape, seed=i)
        if i < n_train:
            save(image, folder / "imagesTr" / f"blobs_{i:03d}_0000.nii.gz")
            save(label, folder / "labelsTr" / f"blobs_{i:03d}.nii.gz")
        else:
            save(image, folder / "imagesTs" / f"blobs_{i:03d}_0000.nii.gz")
    (folder / "dataset.json").write_text(json.dumps({
        "name": "SynthBlobs3D", "description": "synthetic volumes for the prediction benchmark",
        "channel_names": {"0": "MR"}, "labels": {"background": 0, "blob_bright": 1, "blob_dark": 2},
        "numTraining": n_train, "file_ending": ".nii.gz"}, indent=2))
    return folder / "imagesTs"


def one_case_folder(source: Path, target: Path) -> Path:
    """A folder holding only the first case (file) of ``source``."""
    target.mkdir(parents=True, exist_ok=True)
    first = sorted(p for p in source.iterdir() if p.name.endswith(".nii.gz"))[0]
    shutil.copy2(first, target / first.name)
    return target


def run_logged(cmd, env, log_file: Path, timeout=None) -> float:
    t0 = time.perf_counter()
    with open(log_file, "a") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log_file.read_text()[-3000:]
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}); log {log_file}:\n{tail}")
    return wall


def plan_datasets(env, ids, log_file: Path) -> None:
    cmd = nnunet_commands.plan_and_preprocess_command(ids, [CONFIGURATION], verify_dataset_integrity=False,
                                                      preprocess=False, workers=1)
    run_logged(cmd, env, log_file)


# fabricated model folders ------------------------------------------------------------------------------
def fabricate_model(workdir: Path, dataset_name: str, trainer_name: str, seed: int = 0) -> Path:
    """The model folder nnUNetv2_predict reads, with random weights, as save_checkpoint writes it."""
    import torch
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from swin_umamba.trainers.base import plans_with_trainable_patch

    if trainer_name == DEFAULT:
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer as trainer_class
    else:
        import swin_umamba.trainers.variants as variants

        trainer_class = getattr(variants, trainer_name)
    pre = workdir / "nnUNet_preprocessed" / dataset_name
    plans = plans_with_trainable_patch(json.loads((pre / f"{PLANS}.json").read_text()), CONFIGURATION)
    dataset_json = json.loads((pre / "dataset.json").read_text())
    pm = PlansManager(plans)
    cm = pm.get_configuration(CONFIGURATION)
    torch.manual_seed(seed)
    network = trainer_class.build_network_architecture(
        pm, cm, determine_num_input_channels(pm, cm, dataset_json),
        pm.get_label_manager(dataset_json).num_segmentation_heads, enable_deep_supervision=True)
    folder = workdir / "nnUNet_results" / dataset_name / f"{trainer_name}__{PLANS}__{CONFIGURATION}"
    (folder / "fold_0").mkdir(parents=True, exist_ok=True)
    (folder / "plans.json").write_text(json.dumps(plans, indent=2))
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    torch.save({
        "network_weights": network.state_dict(),
        "optimizer_state": None,
        "grad_scaler_state": None,
        "logging": None,
        "_best_ema": None,
        "current_epoch": 0,
        "init_args": {"plans": plans, "configuration": CONFIGURATION, "fold": 0, "dataset_json": dataset_json,
                      "device": torch.device("cpu")},
        "trainer_name": trainer_name,
        "inference_allowed_mirroring_axes": tuple(range(len(cm.patch_size))),
    }, folder / "fold_0" / "checkpoint_final.pth")
    return folder


def prepare(workdir: Path, synth_shape=(24, 160, 160), log=print) -> list[dict]:
    """Workspace with both datasets planned and both model folders each; returns the cases."""
    import SimpleITK as sitk

    raw = workdir / "nnUNet_raw"
    raw.mkdir(parents=True, exist_ok=True)
    if not (raw / DEMO_NAME).is_dir():
        shutil.copytree(DEMO, raw / DEMO_NAME)
    synth_ts = write_synthetic_dataset(raw, synth_shape)
    env = workspace_env(workdir)
    t0 = time.perf_counter()
    plan_datasets(env, [DEMO_ID, SYNTH_ID], workdir / "plan.log")
    log(f"  planned both datasets ({time.perf_counter() - t0:.0f} s)")
    cases = []
    for dataset_id, name, source, what in ((DEMO_ID, DEMO_NAME, raw / DEMO_NAME / "imagesTs", "2D slice"),
                                           (SYNTH_ID, SYNTH_NAME, synth_ts, "3D volume")):
        case_dir = one_case_folder(source, workdir / f"input_{dataset_id}")
        case_file = next(case_dir.iterdir())
        size = list(reversed(sitk.ReadImage(str(case_file)).GetSize()))
        for trainer in (DEFAULT, OURS):
            fabricate_model(workdir, name, trainer)
        model = workdir / "nnUNet_results" / name / f"{OURS}__{PLANS}__{CONFIGURATION}"
        plans = json.loads((model / "plans.json").read_text())
        cases.append({"dataset": name, "dataset_id": dataset_id, "input": str(case_dir), "case": case_file.name,
                      "what": what, "image_size": size,
                      "patch_size": plans["configurations"][CONFIGURATION]["patch_size"]})
    return cases


def predict_command(case: dict, trainer: str, out_dir: Path, tta: bool) -> list[str]:
    model = nnunet_commands.NnUNetModel(case["dataset_id"], CONFIGURATION, trainer, PLANS)
    return nnunet_commands.predict_command(model, Path(case["input"]), out_dir, ["0"], device="cpu",
                                           disable_tta=not tta, workers=1, progress_bar=True)


def time_predictions(workdir: Path, cases: list[dict], repeats: int = 3, warmup: int = 1, log=print) -> list[dict]:
    env = workspace_env(workdir)
    results = []
    for case in cases:
        for tta in (True, False):
            walls = {DEFAULT: [], OURS: []}
            for i in range(warmup + repeats):
                for trainer in (DEFAULT, OURS):
                    out_dir = workdir / "predictions" / f"{case['dataset_id']}_{trainer}_{int(tta)}"
                    shutil.rmtree(out_dir, ignore_errors=True)
                    cmd = predict_command(case, trainer, out_dir, tta)
                    wall = run_logged(cmd, env, workdir / "predict.log")
                    if not any(out_dir.glob("*.nii.gz")):
                        raise RuntimeError(f"{' '.join(cmd)} wrote no prediction; see {workdir / 'predict.log'}")
                    if i >= warmup:
                        walls[trainer].append(wall)
            row = {"dataset": case["dataset"], "what": case["what"], "image_size": case["image_size"],
                   "patch_size": case["patch_size"], "tta": tta, "threads": multiprocessing.cpu_count(),
                   "nnunet_s": timing.median(walls[DEFAULT]), "ours_s": timing.median(walls[OURS]),
                   "nnunet_walls_s": walls[DEFAULT], "ours_walls_s": walls[OURS],
                   "command": " ".join(predict_command(case, OURS, Path("OUT"), tta)[1:])}
            row["x_nnunet"] = timing.ratio(row["ours_s"], row["nnunet_s"])
            results.append(row)
            if log:
                log(f"  done predict {case['dataset']} {'TTA' if tta else 'no TTA'}: "
                    f"nnU-Net {row['nnunet_s']:.1f} s, ours {row['ours_s']:.1f} s")
    return results


def run_suite(workdir: str | None = None, repeats: int = 3, warmup: int = 1, synth_shape=(24, 160, 160),
              keep: bool = False, log=print) -> list[dict]:
    tmp = None
    if workdir is None:
        tmp = tempfile.mkdtemp(prefix="swin_umamba_bench_predict_")
        workdir = tmp
    workdir = Path(workdir)
    try:
        cases = prepare(workdir, synth_shape, log)
        return time_predictions(workdir, cases, repeats, warmup, log)
    finally:
        if tmp and not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def print_table(rows: list[dict], out=print) -> None:
    out(f"Whole-case prediction: each nnUNetv2_predict command timed whole (start-up, model load, preprocessing, "
        f"sliding window, export); torch threads as nnU-Net sets them for -device cpu: "
        f"cpu_count = {multiprocessing.cpu_count()}; median wall seconds")
    if rows:
        out(f"  command: nnUNetv2_predict {rows[0]['command']}   (-tr {DEFAULT} / {OURS}, both on the same plans)")
    size = lambda key: lambda r: "x".join(map(str, r[key]))  # noqa: E731
    timing.print_table([("dataset", ">26", lambda r: r["dataset"]), ("case", ">10", lambda r: r["what"]),
                        ("image", ">14", size("image_size")), ("patch", ">9", size("patch_size")),
                        ("TTA", ">4", lambda r: "yes" if r["tta"] else "no"),
                        ("nnU-Net s", ">10", timing.number("nnunet_s", ".2f")),
                        ("ours s", ">8", timing.number("ours_s", ".2f")),
                        ("x nnU-Net", ">10", timing.number("x_nnunet", ".2f"))], rows, out)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", help="workspace folder (default: a temporary folder, removed afterwards)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="1 repeat, no warm-up, 8x96x96 synthetic volume")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    shape = (8, 96, 96) if args.quick else (24, 160, 160)
    repeats, warmup = (1, 0) if args.quick else (args.repeats, args.warmup)
    rows = run_suite(args.workdir, repeats, warmup, shape)
    print_table(rows)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
