"""Fine-tuning with the stock `nnUNetv2_train -pretrained_weights` onto other labels and channels, and
the stop on non-finite losses, on the demo data. Training runs nnU-Net's run_training, the function
behind the command, in this process.

Source: the demo data set (1 channel, 5 labels). Target: the same images twice (2 channels) with the
organs merged into 3 labels, planned once per session (tests/conftest.py). SwinUMamba starts from the
session's tiny model of the demo data; SwinUMambaD from a checkpoint in the authors' release format
(3 channels, 8 labels). Patches are 64x64 to keep it short.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from swin_umamba import SwinUMamba, SwinUMambaD
from swin_umamba.environment import PRETRAINED_WEIGHTS_VAR
from swin_umamba.nnunet_layout import CHECKPOINT_FINAL
from tests.conftest import DEMO_2D
from tests.nnunet_workspace import DatasetSpec
from tests.test_published_checkpoint import LABELS as AUTHORS_LABELS
from tests.test_published_checkpoint import authors_checkpoint, old_format_plans

pytestmark = pytest.mark.slow

DEMO = DEMO_2D.source
MERGE = {0: 0, 1: 1, 2: 2, 3: 2, 4: 2}  # liver stays, spleen, kidneys and stomach become one label
PATCH = [64, 64]


def build_target_dataset(raw: Path) -> None:
    """The demo's training cases with the image as channels 0 and 1 and the labels merged (MERGE)."""
    out = raw / TARGET.name
    (out / "imagesTr").mkdir(parents=True)
    (out / "labelsTr").mkdir()
    lookup = np.array([MERGE[v] for v in sorted(MERGE)], dtype=np.uint8)
    for image in sorted((DEMO / "imagesTr").glob("*_0000.nii.gz")):
        case = image.name[: -len("_0000.nii.gz")]
        for channel in ("0000", "0001"):
            shutil.copyfile(image, out / "imagesTr" / f"{case}_{channel}.nii.gz")
        label = sitk.ReadImage(str(DEMO / "labelsTr" / f"{case}.nii.gz"))
        merged = sitk.GetImageFromArray(lookup[sitk.GetArrayFromImage(label)])
        merged.CopyInformation(label)
        sitk.WriteImage(merged, str(out / "labelsTr" / f"{case}.nii.gz"))
    meta = json.loads((DEMO / "dataset.json").read_text())
    meta.update(channel_names={"0": "MR", "1": "MR copy"},
                labels={"background": 0, "liver": 1, "other organs": 2}, name="DemoMerged2ch")
    (out / "dataset.json").write_text(json.dumps(meta, indent=1))


def small_patches(plans: dict) -> None:
    plans["configurations"]["2d"].update(patch_size=PATCH, batch_size=2)


# built here from the demo data, which the demo's own workspace checks with nnU-Net's integrity check
TARGET = DatasetSpec(name="Dataset991_DemoMerged2ch", build=build_target_dataset, edit_plans=small_patches,
                     verify=False)
NO_IMAGENET = {PRETRAINED_WEIGHTS_VAR: "/no-imagenet-file-here.pth"}  # must never be needed


@pytest.fixture(scope="module")
def ws(planned_workspace):
    return planned_workspace(TARGET)


def _fold(ws, trainer: str) -> Path:
    return ws.model_dir(TARGET.name, trainer) / "fold_0"


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["network_weights"]


def _log(fold: Path) -> str:
    return "".join(p.read_text() for p in sorted(fold.glob("training_log_*.txt")))


def _transfer_lines(log: str) -> str:
    marks = ("Pretrained weights from", "loaded unchanged", "start fresh", "not used", "ImageNet")
    return "\n".join(line for line in log.splitlines() if any(m in line for m in marks))


def check_started_from(start: dict, source: dict, network) -> list[str]:
    """Every tensor outside the heads and input layers equals the source's; heads and input layers differ."""
    fresh = network.HEAD_PREFIXES + network.INPUT_LAYER_PREFIXES
    loaded = [k for k in start if not k.startswith(fresh)]
    for key in loaded:
        assert torch.equal(start[key], source[key]), f"{key} changed on the way in"
    for key in (k for k in start if k.startswith(fresh)):
        assert key not in source or start[key].shape != source[key].shape or not torch.equal(start[key], source[key])
    return loaded


def _train(ws, monkeypatch, trainer: str, pretrained_weights: Path | None = None) -> None:
    """nnU-Net's run_training, the function behind nnUNetv2_train (and its -pretrained_weights), in this
    process: no start-up of a new Python. Data augmentation in this process too."""
    from nnunetv2.run.run_training import run_training

    ws.activate(monkeypatch)
    for key, value in {"nnUNet_n_proc_DA": "0", "nnUNet_compile": "f", **NO_IMAGENET}.items():
        monkeypatch.setenv(key, value)
    run_training(TARGET.dataset_id, "2d", 0, trainer, pretrained_weights=pretrained_weights and str(pretrained_weights),
                 device=torch.device("cpu"))


def test_swinumamba_from_own_checkpoint_with_other_labels_and_channels(ws, demo_tiny_fold, monkeypatch, capsys):
    """-pretrained_weights with a checkpoint trained on the demo data: the ImageNet file is not needed and
    not read; everything but the heads and input layers starts from the given weights."""
    source_file = demo_tiny_fold / CHECKPOINT_FINAL
    _train(ws, monkeypatch, "nnUNetTrainerSwinUMamba_finetune", source_file)
    stdout = capsys.readouterr().out
    fold = _fold(ws, "nnUNetTrainerSwinUMamba_finetune")
    start, source = _weights(fold / "checkpoint_start.pth"), _weights(source_file)
    loaded = check_started_from(start, source, SwinUMamba)
    assert start["out_layers.0.conv.conv.weight"].shape[0] == 3 and start["stem.0.weight"].shape[1] == 2

    log = _log(fold)
    print(_transfer_lines(log))
    assert f"loaded unchanged: {len(loaded)} of {len(start)} tensors" in log
    assert "8 head tensors (out_layers.*)" in log and "source 5 classes, target 3" in log
    assert "stem.0.*, encoder1.layer.conv1.conv.weight, encoder1.layer.conv3.conv.weight" in log
    assert "source 1, target 2" in log
    assert "ImageNet file not read" in log
    assert "Loading pretrained weights from file" not in stdout  # nnU-Net's own loader was not used


def test_swinumambad_from_authors_release_checkpoint(ws, tmp_path, monkeypatch):
    torch.manual_seed(7)
    published = SwinUMambaD(3, len(AUTHORS_LABELS)).state_dict()
    dataset_json = {"channel_names": {"0": "R", "1": "G", "2": "B"}, "labels": AUTHORS_LABELS, "file_ending": ".png"}
    source_file = tmp_path / "Endovis17_fold_all_checkpoint_99.pth"
    torch.save(authors_checkpoint(published, old_format_plans(), dataset_json, 99), source_file)

    _train(ws, monkeypatch, "nnUNetTrainerSwinUMambaD_finetune", source_file)
    fold = _fold(ws, "nnUNetTrainerSwinUMambaD_finetune")
    start = _weights(fold / "checkpoint_start.pth")
    loaded = check_started_from(start, published, SwinUMambaD)
    log = _log(fold)
    print(_transfer_lines(log))
    assert "trainer nnUNetTrainerSwinUMambaD" in log and "SwinUMambaD with 8 classes and 3 input channels" in log
    assert f"loaded unchanged: {len(loaded)} of {len(start)} tensors" in log
    assert "2 input-layer tensors (vssm_encoder.patch_embed.proj.*)" in log


def test_training_stops_after_consecutive_nan_losses(ws, monkeypatch):
    from swin_umamba.trainers.nonfinite import NonFiniteLossError

    with pytest.raises(NonFiniteLossError) as caught:  # nnUNetv2_train ends with it, exit code 1
        _train(ws, monkeypatch, "nnUNetTrainerSwinUMambaDScratch_nan")
    fold = _fold(ws, "nnUNetTrainerSwinUMambaDScratch_nan")
    message = str(caught.value)
    assert "epoch 1, iteration 1" in message and "2 iterations in a row (epoch 1, iterations 0-1" in message
    assert str(fold / "checkpoint_0.pth") in message
    assert "Epoch 1, iteration 0: loss is nan" in _log(fold)
    # nothing was written after epoch 0, and what was written is finite
    assert not (fold / "checkpoint_1.pth").exists()
    assert all(torch.isfinite(v).all() for v in _weights(fold / "checkpoint_0.pth").values() if v.is_floating_point())
