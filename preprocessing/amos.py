"""AMOS 2022 -> Dataset702_AbdomenMR (the MRI cases, relabelled to the 13 organs of the paper).

Source layout (the AMOS 2022 release)::

    amos22/imagesTr/amos_XXXX.nii.gz   amos22/labelsTr/amos_XXXX.nii.gz
    amos22/imagesVa/amos_XXXX.nii.gz   amos22/labelsVa/amos_XXXX.nii.gz
    amos22/imagesTs/amos_XXXX.nii.gz   (no labels)

AMOS numbers CT scans below 500 and MRI scans from 500 on; only MRI is kept. The labelled
MRI cases of imagesTr and imagesVa (60 in the release) become the training set; the MRI
scans of imagesTs go to imagesTs without labels. (The paper's 50 labelled test scans were
annotated by the U-Mamba authors and are not part of AMOS.)

Images are copied byte for byte as `amos_XXXX_0000.nii.gz`; labels are rewritten as uint8
with the header and affine of the AMOS label file, relabelled with `AMOS_TO_702`:

    AMOS  1 spleen -> 3      6 liver     -> 1     11 right adrenal -> 7
          2 right kidney -> 2  7 stomach  -> 11    12 left adrenal  -> 8
          3 left kidney -> 13  8 aorta    -> 5     13 duodenum      -> 12
          4 gallbladder -> 9   9 IVC      -> 6     14 bladder       -> 0
          5 esophagus -> 10   10 pancreas -> 4     15 prostate/uterus -> 0
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from swin_umamba.nnunet_layout import IMAGES_TR, IMAGES_TS, LABELS_TR, image_file

from .common import (ConversionError, integer_labels, progress, staged_target, verify_with_nnunet,
                     write_dataset_json)

DATASET_NAME = "Dataset702_AbdomenMR"
FIRST_MRI_ID = 500
AMOS_TO_702 = {0: 0, 1: 3, 2: 2, 3: 13, 4: 9, 5: 10, 6: 1, 7: 11, 8: 5, 9: 6, 10: 4, 11: 7, 12: 8, 13: 12,
               14: 0, 15: 0}
LABELS_702 = {
    "background": 0, "liver": 1, "right kidney": 2, "spleen": 3, "pancreas": 4, "aorta": 5,
    "inferior vena cava": 6, "right adrenal gland": 7, "left adrenal gland": 8, "gallbladder": 9,
    "esophagus": 10, "stomach": 11, "duodenum": 12, "left kidney": 13,
}
_CASE = re.compile(r"^amos_(\d+)\.nii\.gz$")
_LOOKUP = np.zeros(max(AMOS_TO_702) + 1, dtype=np.uint8)
for _amos, _ours in AMOS_TO_702.items():
    _LOOKUP[_amos] = _ours


def mri_cases(folder: Path) -> list[tuple[str, Path]]:
    """(case id, path) of the MRI scans (AMOS id >= 500) in an AMOS images folder."""
    if not folder.is_dir():
        return []
    cases = []
    for path in sorted(folder.iterdir()):
        match = _CASE.match(path.name)
        if match and int(match.group(1)) >= FIRST_MRI_ID:
            cases.append((path.name[: -len(".nii.gz")], path))
    return cases


def relabel(labels: np.ndarray, path: Path) -> np.ndarray:
    """AMOS label ids -> 702 ids; ids outside 0..15 raise ConversionError naming `path`."""
    labels = integer_labels(labels, path)
    bad = np.setdiff1d(np.unique(labels), np.array(list(AMOS_TO_702)))
    if bad.size:
        raise ConversionError(f"{path}: label id(s) {bad.tolist()} are not in the AMOS table (0..15)")
    return _LOOKUP[labels]


def _convert_label(src: Path, image: Path, dst: Path) -> None:
    import nibabel as nib

    try:
        label = nib.load(str(src))
        data = np.asanyarray(label.dataobj)
        image_shape = nib.load(str(image)).shape
    except ConversionError:
        raise
    except Exception as exc:
        raise ConversionError(f"{src}: cannot read label or its image ({exc})") from exc
    if tuple(data.shape) != tuple(image_shape):
        raise ConversionError(f"{src}: label shape {tuple(data.shape)} does not match image {image} "
                              f"shape {tuple(image_shape)}")
    header = label.header.copy()
    header.set_data_dtype(np.uint8)
    header.set_slope_inter(1, 0)
    nib.save(nib.Nifti1Image(relabel(data, src), label.affine, header), str(dst))


def convert_amos(source: Path, raw_folder: Path, *, overwrite: bool = False, num_processes: int = 2,
                 verify: bool = True) -> Path:
    """Build `raw_folder`/Dataset702_AbdomenMR from the AMOS 2022 folder `source`; returns the dataset folder."""
    source, target = Path(source), Path(raw_folder) / DATASET_NAME
    if not source.is_dir():
        raise ConversionError(f"AMOS folder not found: {source}")
    training = []
    for split in ("Tr", "Va"):
        for case, image in mri_cases(source / f"images{split}"):
            label = source / f"labels{split}" / image.name
            if not label.is_file():
                raise ConversionError(f"missing label {label} for image {image}")
            training.append((case, image, label))
    if not training:
        raise ConversionError(f"no labelled MRI case (amos_XXXX.nii.gz with XXXX >= {FIRST_MRI_ID}) in "
                              f"{source}/imagesTr or {source}/imagesVa")
    test = mri_cases(source / IMAGES_TS)
    print(f"AMOS -> {target}: {len(training)} labelled MRI cases, {len(test)} unlabelled test MRI scans", flush=True)
    with staged_target(target, overwrite) as staging:
        for sub in (IMAGES_TR, LABELS_TR, IMAGES_TS):
            (staging / sub).mkdir()
        for i, (case, image, label) in enumerate(training, 1):
            shutil.copyfile(image, staging / IMAGES_TR / image_file(case, ".nii.gz"))
            _convert_label(label, image, staging / LABELS_TR / f"{case}.nii.gz")
            progress(i, len(training), case, every=10)
        for case, image in test:
            shutil.copyfile(image, staging / IMAGES_TS / image_file(case, ".nii.gz"))
        write_dataset_json(
            staging, channel_names={0: "MR"}, labels=LABELS_702, num_training=len(training),
            file_ending=".nii.gz", name=DATASET_NAME,
            description="MRI cases of AMOS 2022 (ids >= 500), relabelled to the 13 organs of the Swin-UMamba / "
                        "U-Mamba AbdomenMR dataset; bladder and prostate/uterus set to background.",
            reference="https://amos22.grand-challenge.org/", source_label_map="AMOS 2022 ids 1..15",
        )
        if verify:
            verify_with_nnunet(staging, num_processes)
    print(f"done: {target}", flush=True)
    return target
