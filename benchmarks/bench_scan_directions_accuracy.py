"""Accuracy of extra 3D scan directions: SwinUMambaD3D with 4, 6 and 8 directions trained alike on the
3D demo data, Dice on its test volume, and the time of a training step.

    python -m benchmarks.bench_scan_directions_accuracy --threads 2 [--steps 60] [--seeds 0 1]

Data: the 3D demo data set shipped in the package (Dataset992: 5 training and 1 test volume of
8 x 72 x 104 voxels, 6 x 3 x 3 mm, liver, spleen, kidneys and stomach of one subject), each volume
z-scored. Training, per seed and variant: the network from scratch (torch.manual_seed(seed)), depth
strides (2, 1, 1, 1) as nnU-Net plans this data set, AdamW (lr 1e-3, weight decay 0.05), one random
training volume per step with random flips in plane (the same sequence of volumes and flips for every
variant), cross-entropy plus soft Dice. The variants take turns step by step, so drifts of a shared
machine hit all of them alike. Reported per seed and variant: the mean Dice of the four organs on the
test volume every `--eval-every` steps, and the median wall time of a training step with its ratio to
4 directions. A small data set of one subject and a short schedule: the figures tell whether the extra
directions change early learning, not the accuracy of a full training.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F

from swin_umamba.demo.layout import dataset_source
from swin_umamba.evaluation.overlap import dice
from swin_umamba.nets.swin_umamba_d3d import SwinUMambaD3D
from swin_umamba.nets.vmamba3d import SCAN_DIRECTION_CHOICES

DEPTH_STRIDES = (2, 1, 1, 1)
NUM_CLASSES = 5  # background and four organs


def _read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def load_volumes(split: str, crop: tuple[int, int, int] | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(image (1, D, H, W) z-scored, label (D, H, W)) of each case of `split` ("Tr" or "Ts")."""
    folder = dataset_source("3d_fullres")
    cases = []
    for image_path in sorted((folder / f"images{split}").glob("*_0000.nii.gz")):
        image = _read(image_path).astype(np.float32)
        label = _read(folder / f"labels{split}" / image_path.name.replace("_0000", "")).astype(np.int64)
        if crop is not None:
            image, label = (a[tuple(slice(0, c) for c in crop)] for a in (image, label))
        image = (image - image.mean()) / max(float(image.std()), 1e-6)
        cases.append((torch.from_numpy(image)[None], torch.from_numpy(label)))
    return cases


def loss_of(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    probabilities = logits.softmax(1)
    one_hot = F.one_hot(label, NUM_CLASSES).movedim(-1, 1).float()
    overlap = (probabilities * one_hot).sum((0, 2, 3, 4))
    soft_dice = (2 * overlap + 1e-5) / (probabilities.sum((0, 2, 3, 4)) + one_hot.sum((0, 2, 3, 4)) + 1e-5)
    return F.cross_entropy(logits, label) + 1 - soft_dice[1:].mean()


def mean_organ_dice(network: torch.nn.Module, cases) -> float:
    network.eval()
    scores = []
    with torch.no_grad():
        for image, label in cases:
            predicted = network(image[None]).argmax(1)[0].numpy()
            values = [dice(label.numpy() == c, predicted == c) for c in range(1, NUM_CLASSES)]
            scores.append(np.nanmean(values))
    network.train()
    return float(np.mean(scores))


def run(seed: int, steps: int, eval_every: int, crop=None) -> dict[int, dict]:
    """directions -> {"dice": [(step, mean organ Dice on the test volume)], "step_s": median step time}."""
    train, test = load_volumes("Tr", crop), load_volumes("Ts", crop)
    variants = {}
    for directions in SCAN_DIRECTION_CHOICES:
        torch.manual_seed(seed)
        network = SwinUMambaD3D(1, NUM_CLASSES, DEPTH_STRIDES, scan_directions=directions)
        optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3, weight_decay=0.05)
        variants[directions] = {"network": network, "optimizer": optimizer, "times": [], "dice": []}
    schedule = np.random.default_rng(seed)
    for step in range(1, steps + 1):
        image, label = train[int(schedule.integers(len(train)))]
        flips = [d for d, flip in zip((-2, -1), schedule.integers(0, 2, size=2)) if flip]
        if flips:
            image, label = image.flip(flips), label.flip(flips)
        for directions, v in variants.items():
            t0 = time.perf_counter()
            v["optimizer"].zero_grad(set_to_none=True)
            loss_of(v["network"](image[None]), label[None]).backward()
            v["optimizer"].step()
            v["times"].append(time.perf_counter() - t0)
            if step % eval_every == 0 or step == steps:
                v["dice"].append((step, mean_organ_dice(v["network"], test)))
    return {k: {"dice": v["dice"], "step_s": statistics.median(v["times"])} for k, v in variants.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--steps", type=int, default=60, help="training steps per variant (default: 60)")
    parser.add_argument("--eval-every", type=int, default=20, help="steps between test Dice figures (default: 20)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds, one run each (default: 0)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    for seed in args.seeds:
        results = run(seed, args.steps, args.eval_every)
        base = results[SCAN_DIRECTION_CHOICES[0]]["step_s"]
        for directions, result in results.items():
            curve = "  ".join(f"step {s}: {d:.3f}" for s, d in result["dice"])
            print(f"seed {seed}  {directions} directions  step {result['step_s']:.2f} s "
                  f"({result['step_s'] / base:.2f}x)  test Dice  {curve}", flush=True)
    print(f"load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
