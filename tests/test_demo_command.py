"""`swin-umamba demo` without training: options, work-folder safety, Dice table, overlays, trainer.

The full demo (minutes of CPU training) is run by hand; the e2e CLI test covers training.
"""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from swin_umamba.cli import build_parser
from swin_umamba.commands import demo
from swin_umamba.demo import layout, overlay, scoring
from swin_umamba.evaluation import labels
from swin_umamba.workflow.progress import TrainingProgress


def parse(*argv: str):
    return build_parser().parse_args(["demo", *argv])


def test_defaults_and_options():
    args = parse()
    assert args.func is demo.run_demo
    assert (args.workdir, args.fold, args.overwrite, args.epochs, args.iterations) == \
        ("./swin_umamba_demo", "0", False, None, None)
    args = parse("--workdir", "w", "--fold", "all", "--overwrite", "--epochs", "3", "--iterations", "5")
    assert (args.workdir, args.fold, args.overwrite, args.epochs, args.iterations) == ("w", "all", True, 3, 5)
    assert parse().configuration == "2d" and parse("--configuration", "3d_fullres").configuration == "3d_fullres"


def test_each_configuration_has_its_embedded_dataset_and_length(tmp_path):
    from swin_umamba.demo import steps as demo_steps
    from swin_umamba.trainers.demo import DEMO_3D_EPOCHS, DEMO_EPOCHS, demo_length

    for configuration, dataset in layout.DEMO_DATASETS.items():
        assert layout.dataset_source(configuration).is_dir()
        assert layout.dataset_source(configuration).name == dataset.name
        assert dataset.name.startswith(f"Dataset{dataset.dataset_id}_")
        model = demo_steps.demo_model(configuration)
        assert (model.dataset, model.configuration) == (dataset.dataset_id, configuration)
    raw = demo_steps.copy_dataset(tmp_path, "3d_fullres")
    assert raw.name == "Dataset992_DemoAbdomenMR3D" and (raw / "imagesTs").is_dir()
    assert demo_length("2d")[0] == DEMO_EPOCHS and demo_length("3d_fullres")[0] == DEMO_3D_EPOCHS
    assert demo_length("3d_fullres", 7, 2) == (7, 2)


@pytest.mark.parametrize("argv", [["--fold", "5"], ["--epochs", "0"], ["--iterations", "x"]])
def test_bad_options_are_rejected(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2  # argparse's usage error, not a crash
    error = capsys.readouterr().err
    assert argv[0] in error and repr(argv[1]) in error


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        parse("--help")
    text = capsys.readouterr().out
    for option in ("--workdir", "--overwrite", "--fold", "--epochs", "--iterations"):
        assert option in text
    from swin_umamba.trainers.demo import DEMO_3D_EPOCHS, DEMO_3D_ITERATIONS, DEMO_EPOCHS, DEMO_ITERATIONS

    flat = " ".join(text.split())
    assert f"trainer's, {DEMO_EPOCHS} in 2d, {DEMO_3D_EPOCHS} in 3d_fullres)" in flat
    assert f"trainer's, {DEMO_ITERATIONS} in 2d, {DEMO_3D_ITERATIONS} in 3d_fullres)" in flat


def test_non_empty_workdir_is_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    code = demo.run_demo(parse("--workdir", str(tmp_path)))
    assert code == 1
    assert "--overwrite" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_overwrite_removes_only_demo_outputs(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "nnUNet_results" / "x").mkdir(parents=True)
    (tmp_path / "dice.csv").write_text("old")
    layout.prepare_workdir(tmp_path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    layout.prepare_workdir(tmp_path / "new", overwrite=False)  # absent folder: created
    assert (tmp_path / "new").is_dir()


def test_child_environment_sets_nnunet_folders_and_trainers(tmp_path, monkeypatch):
    from swin_umamba.commands.setup import trainers_dir

    monkeypatch.setenv("SWIN_UMAMBA_STOP_AFTER_EPOCHS", "1")
    env = layout.child_environment(tmp_path, epochs=4, iterations=None)
    assert env["nnUNet_raw"] == str(tmp_path / "nnUNet_raw")
    assert env["nnUNet_preprocessed"] == str(tmp_path / "nnUNet_preprocessed")
    assert env["nnUNet_results"] == str(tmp_path / "nnUNet_results")
    assert env["nnUNet_extTrainer"] == str(trainers_dir())
    assert env["SWIN_UMAMBA_DEMO_EPOCHS"] == "4"
    assert "SWIN_UMAMBA_DEMO_ITERATIONS" not in env
    assert "SWIN_UMAMBA_STOP_AFTER_EPOCHS" not in env


def test_training_progress_makes_one_line_per_epoch():
    progress = TrainingProgress(12)
    lines = ["2025-01-01 10:00:00.000001: Epoch 2", "2025-01-01 10:00:00.000001: Current learning rate: 0.001",
             "2025-01-01 10:00:01.000001: train_loss -0.1234", "2025-01-01 10:00:01.000001: val_loss -0.2",
             "2025-01-01 10:00:01.000001: Pseudo dice [0.5, 0.0, 0.1, 0.2]",
             "2025-01-01 10:00:01.000001: Epoch time: 12.34 s"]
    shown = [s for s in map(progress, lines) if s]
    assert len(shown) == 1
    assert "epoch 3/12" in shown[0] and "-0.1234" in shown[0] and "[0.5, 0.0, 0.1, 0.2]" in shown[0]


def test_epoch_lines_name_the_classes():
    progress = TrainingProgress(2, class_names=["liver", "spleen", "kidneys", "stomach"])
    lines = ["2025-01-01 10:00:00.000001: Epoch 0",
             "2025-01-01 10:00:01.000001: Pseudo dice [np.float32(0.0867), np.float32(0.0065), np.float32(0.0222), "
             "np.float32(0.0167)]",
             "2025-01-01 10:00:01.000001: Epoch time: 59.23 s"]
    shown = [s for s in map(progress, lines) if s]
    assert "pseudo Dice liver 0.0867, spleen 0.0065, kidneys 0.0222, stomach 0.0167 (59 s)" in shown[0]
    # names that do not fit the values: the values as nnU-Net printed them
    progress = TrainingProgress(2, class_names=["liver"])
    shown = [s for s in map(progress, lines) if s]
    assert "pseudo Dice per class [0.0867, 0.0065, 0.0222, 0.0167]" in shown[0]


def test_the_demo_says_what_its_figures_mean():
    from swin_umamba.demo.layout import dataset_source
    from swin_umamba.demo.scoring import dataset_classes

    assert list(dataset_classes(dataset_source()).values()) == ["liver", "spleen", "kidneys", "stomach"]
    text = demo.WHAT_THE_FIGURES_MEAN.format(epochs=10, iterations=20, steps=200)
    assert "200 steps (10 epochs x 20)" in text and "spleen" in text


def _synthetic_case():
    yy, xx = np.mgrid[:60, :80]
    gt = np.zeros((60, 80), dtype=np.uint8)
    gt[(yy - 30) ** 2 + (xx - 25) ** 2 < 15 ** 2] = 1
    gt[10:20, 55:70] = 2
    pred = np.zeros_like(gt)
    pred[(yy - 30) ** 2 + (xx - 28) ** 2 < 15 ** 2] = 1
    pred[40:50, 60:70] = 4  # a false positive of a class absent from the ground truth
    image = (xx + yy).astype(np.float32) + 100 * gt
    return image, gt, pred


CLASSES = {1: "liver", 2: "spleen", 3: "kidneys", 4: "stomach"}


def test_dice_table_and_csv(tmp_path):
    _, gt, pred = _synthetic_case()
    table = labels.dice_table({"b": gt, "a": gt}, {"b": pred, "a": gt}, CLASSES)
    assert list(table) == ["a", "b"]
    assert table["a"]["liver"] == 1.0 and math.isnan(table["a"]["kidneys"])
    assert 0.7 < table["b"]["liver"] < 1.0
    assert table["b"]["spleen"] == 0.0 and table["b"]["stomach"] == 0.0
    names = list(CLASSES.values())
    means = labels.class_means(table, names)
    assert means["liver"] == pytest.approx((1.0 + table["b"]["liver"]) / 2)
    assert math.isnan(means["kidneys"]) and means["stomach"] == 0.0  # absent in a: not counted

    text = scoring.format_dice_table(table, names)
    lines = text.splitlines()
    assert lines[0].split() == ["case"] + names
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:] if line.split()[0] in ("a", "b", "mean")}
    assert list(rows) == ["a", "b", "mean"]
    assert rows["a"] == ["1.000", "1.000", "-", "-"]  # '-': absent from both masks
    assert rows["mean"] == [f"{means['liver']:.3f}", f"{means['spleen']:.3f}", "-", "0.000"]

    scoring.write_dice_csv(table, names, tmp_path / "dice.csv")
    rows = list(csv.reader(open(tmp_path / "dice.csv")))
    assert rows[0] == ["case"] + names
    assert [r[0] for r in rows[1:]] == ["a", "b", "mean"]
    assert rows[1][1] == "1.0000" and rows[1][3] == ""


def test_overlay_png(tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    image, gt, pred = _synthetic_case()
    path = tmp_path / "overlays" / "case.png"
    overlay.write_overlay(image, gt, pred, CLASSES, path, title="case",
                          scores={"liver": 0.9, "spleen": 0.0, "kidneys": float("nan"), "stomach": 0.0})
    picture = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert picture.shape[1] > picture.shape[0] > 100  # two panels side by side
    # the liver's colour (red) is blended into the picture: some pixels are clearly reddish
    reddish = (picture[..., 0] - picture[..., 1] > 60) & (picture[..., 0] - picture[..., 2] > 60)
    assert reddish.sum() > 100


def test_a_volume_overlay_shows_its_organ_richest_slice(tmp_path):
    pytest.importorskip("matplotlib")
    import SimpleITK as sitk

    from swin_umamba.demo import steps as demo_steps

    image, gt, pred = _synthetic_case()
    volume_gt = np.stack([np.zeros_like(gt), gt, gt * (gt == 1)])
    assert demo_steps.overlay_slice(volume_gt) == 1
    raw = tmp_path / "raw"
    (raw / "imagesTs").mkdir(parents=True)
    (raw / "dataset.json").write_text('{"file_ending": ".nii.gz"}')
    sitk.WriteImage(sitk.GetImageFromArray(np.stack([image] * 3)), str(raw / "imagesTs" / "v_0000.nii.gz"))
    volume_pred = np.stack([pred] * 3)
    scores = scoring.Scores(["v"], CLASSES, labels.dice_table({"v": volume_gt}, {"v": volume_pred}, CLASSES),
                            {"v": volume_gt}, {"v": volume_pred})
    demo_steps.write_overlays(raw, scores, tmp_path / "overlays")
    assert (tmp_path / "overlays" / "v.png").stat().st_size > 1000


def test_class_names_skip_background():
    assert labels.class_names({"labels": {"background": 0, "liver": 1, "spleen": 2}}) == {1: "liver", 2: "spleen"}


def test_demo_trainer_is_exported_and_configurable(monkeypatch):
    import swin_umamba.nnunet_ext.swin_umamba_trainers as ext
    from swin_umamba.trainers import __all__ as exported
    from swin_umamba.trainers.base import ConfigurationError
    from swin_umamba.trainers.demo import positive_int_from_env

    assert "nnUNetTrainerSwinUMambaDemo" in exported
    assert ext.nnUNetTrainerSwinUMambaDemo.use_imagenet_weights is False
    monkeypatch.setenv("SWIN_UMAMBA_DEMO_EPOCHS", "7")
    assert positive_int_from_env("SWIN_UMAMBA_DEMO_EPOCHS", 12) == 7
    monkeypatch.setenv("SWIN_UMAMBA_DEMO_EPOCHS", "0")
    with pytest.raises(ConfigurationError):
        positive_int_from_env("SWIN_UMAMBA_DEMO_EPOCHS", 12)
    monkeypatch.delenv("SWIN_UMAMBA_DEMO_EPOCHS")
    assert positive_int_from_env("SWIN_UMAMBA_DEMO_EPOCHS", 12) == 12


def test_damaged_inputs_stop_the_demo_before_prediction(tmp_path):
    import shutil

    from swin_umamba.demo import steps as demo_steps
    from swin_umamba.demo.layout import CONFIGURATION, DATASET_NAME, dataset_source
    from swin_umamba.workflow.errors import InputsNotUsable

    raw = tmp_path / "nnUNet_raw" / DATASET_NAME
    shutil.copytree(dataset_source(), raw)
    model = tmp_path / "nnUNet_results" / DATASET_NAME / "nnUNetTrainerSwinUMambaDemo__nnUNetPlans__2d"
    (model / "fold_0").mkdir(parents=True)
    shutil.copy(raw / "dataset.json", model / "dataset.json")
    (model / "fold_0" / "checkpoint_final.pth").write_bytes(b"")
    image = sorted((raw / "imagesTs").iterdir())[0]
    image.write_bytes(image.read_bytes()[:100])
    with pytest.raises(InputsNotUsable) as caught:
        demo_steps.check_inputs(tmp_path, raw, CONFIGURATION, "0")
    assert str(model / "fold_0" / "checkpoint_final.pth") in str(caught.value) and str(image) in str(caught.value)
