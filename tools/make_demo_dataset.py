#!/usr/bin/env python
"""Build the embedded demo dataset ``Dataset990_DemoAbdomenMR`` (nnU-Net v2 raw layout).

Regenerate the shipped copy with::

    pip download --no-deps --no-binary :all: TotalSegmentator==2.18.0 -d /tmp/ts
    python tools/make_demo_dataset.py \
        --source /tmp/ts/totalsegmentator-2.18.0.tar.gz \
        --out swin_umamba/demo_data

The source is the abdominal MR example volume that the TotalSegmentator sdist
ships for its own tests (Apache-2.0):

* ``tests/reference_files/example_mr_sm.nii.gz``  - MR volume, 117 x 91 x 20 voxels, 3 mm isotropic
* ``tests/reference_files/example_seg_mr.nii.gz`` - its ``total_mr`` multi-organ segmentation
* ``LICENSE``                                      - the Apache License 2.0 text of the package

Every axial slice of the volume becomes one 2D case (a 2D NIfTI file, 3 x 3 mm
in-plane spacing, orientation and origin of that slice kept).  The 50
``total_mr`` classes are reduced to four large, clearly visible abdominal
organs: liver, spleen, kidneys (left and right merged) and stomach; every other
structure becomes background.  Four slices spread over the volume are held out
as labelled test cases (imagesTs / labelsTs); the other sixteen are the
training cases.

The output is byte-for-byte reproducible for the same source files, which are
checked against their SHA-256 sums before anything is written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from swin_umamba.fileio import sha256_of

DATASET_ID = 990
DATASET_NAME = "DemoAbdomenMR"
DATASET_DIR = f"Dataset{DATASET_ID:03d}_{DATASET_NAME}"
CASE_PREFIX = "AbdomenMR"
FILE_ENDING = ".nii.gz"

SOURCE_PACKAGE = "TotalSegmentator"
SOURCE_VERSION = "2.18.0"
IMAGE_MEMBER = "tests/reference_files/example_mr_sm.nii.gz"
SEG_MEMBER = "tests/reference_files/example_seg_mr.nii.gz"
LICENSE_MEMBER = "LICENSE"

# SHA-256 of the files inside totalsegmentator-2.18.0.tar.gz.
EXPECTED_SHA256 = {
    IMAGE_MEMBER: "209b46efaff595dd54a9332872e17a722b62654bbb68dbd89acd5090701bbd4f",
    SEG_MEMBER: "e73a5ee12962aa2bb2f3e43ab58dfc67990c5a7ef2dcb426a1bf5e5982b9587f",
    LICENSE_MEMBER: "c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4",
}

# Output label -> (name, TotalSegmentator total_mr label ids merged into it).
# total_mr ids: 1 spleen, 2 kidney_right, 3 kidney_left, 5 liver, 6 stomach.
LABELS = {
    1: ("liver", (5,)),
    2: ("spleen", (1,)),
    3: ("kidneys", (2, 3)),
    4: ("stomach", (6,)),
}

# Axial slice indices (0 = most inferior) held out as labelled test cases.
TEST_SLICES = (3, 9, 13, 18)


def find_in_directory(root: Path, member: str) -> Path:
    """Locate ``member`` (a path relative to the sdist root) below ``root``."""
    name = Path(member).name
    candidates = [root / member, root / name]
    candidates += sorted(p for p in root.rglob(name) if p.is_file())
    for candidate in candidates:
        if candidate.is_file() and (member == LICENSE_MEMBER or sha256_of(candidate) == EXPECTED_SHA256[member]):
            return candidate
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{name} not found under {root}")


def gather_sources(source: Path, workdir: Path) -> dict[str, Path]:
    """Return local paths of the image, the segmentation and the licence text.

    ``source`` may be the sdist (.tar.gz), the extracted sdist directory, the
    ``tests/reference_files`` directory, or ``example_mr_sm.nii.gz`` itself.
    In the last two cases the licence is looked for in the enclosing sdist
    directory.
    """
    if source.is_file() and source.name.endswith((".tar.gz", ".tgz", ".tar")):
        found: dict[str, Path] = {}
        with tarfile.open(source) as archive:
            for info in archive.getmembers():
                parts = Path(info.name).parts
                relative = "/".join(parts[1:]) if len(parts) > 1 else info.name
                if relative in EXPECTED_SHA256 and info.isfile():
                    target = workdir / Path(relative).name
                    with archive.extractfile(info) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    found[relative] = target
        missing = sorted(set(EXPECTED_SHA256) - set(found))
        if missing:
            raise FileNotFoundError(f"{source} lacks {', '.join(missing)}")
        return found

    if source.is_file():
        if source.name != Path(IMAGE_MEMBER).name:
            raise ValueError(f"unsupported --source file {source}; give the sdist, a directory or {Path(IMAGE_MEMBER).name}")
        source = source.parent
    if not source.is_dir():
        raise FileNotFoundError(source)

    found = {IMAGE_MEMBER: find_in_directory(source, IMAGE_MEMBER), SEG_MEMBER: find_in_directory(source, SEG_MEMBER)}
    licences = [root / LICENSE_MEMBER for root in (source, *source.parents) if (root / LICENSE_MEMBER).is_file()]
    if not licences:
        raise FileNotFoundError(f"the TotalSegmentator LICENSE file was not found at or above {source}")
    matching = [p for p in licences if sha256_of(p) == EXPECTED_SHA256[LICENSE_MEMBER]]
    found[LICENSE_MEMBER] = (matching or licences)[0]
    return found


def check_sources(sources: dict[str, Path], allow_mismatch: bool) -> None:
    for member, path in sources.items():
        actual = sha256_of(path)
        if actual != EXPECTED_SHA256[member]:
            message = f"{path}: SHA-256 {actual} differs from {SOURCE_PACKAGE} {SOURCE_VERSION}'s {member}"
            if not allow_mismatch:
                raise ValueError(message + " (use --allow-mismatch to build anyway)")
            print("warning: " + message, file=sys.stderr)


def remap_labels(seg: np.ndarray) -> np.ndarray:
    out = np.zeros(seg.shape, dtype=np.uint8)
    for new_id, (_, old_ids) in LABELS.items():
        out[np.isin(seg, old_ids)] = new_id
    return out


def write_image(image: sitk.Image, path: Path) -> None:
    writer = sitk.ImageFileWriter()
    writer.SetFileName(str(path))
    writer.SetUseCompression(True)
    writer.Execute(image)


def dataset_json(num_training: int) -> dict:
    labels = {"background": 0}
    labels.update({name: new_id for new_id, (name, _) in LABELS.items()})
    return {
        "name": DATASET_NAME,
        "description": (
            "Tiny 2D abdominal MR demo: axial slices of the TotalSegmentator example MR volume "
            "with liver, spleen, kidneys and stomach from its total_mr segmentation"
        ),
        "reference": f"{SOURCE_PACKAGE} {SOURCE_VERSION} sdist, {IMAGE_MEMBER} and {SEG_MEMBER}",
        "licence": "Apache-2.0 (see LICENSE and README.md in this folder)",
        "channel_names": {"0": "MR"},
        "labels": labels,
        "numTraining": num_training,
        "file_ending": FILE_ENDING,
        "overwrite_image_reader_writer": "SimpleITKIO",
    }


def readme_text(sources: dict[str, Path], cases: list[tuple[str, int, str]], shape_yx: tuple[int, int]) -> str:
    label_lines = "\n".join(
        f"| {new_id} | {name} | {', '.join(str(i) for i in old_ids)} |" for new_id, (name, old_ids) in LABELS.items()
    )
    train = [c for c in cases if c[2] == "Tr"]
    test = [c for c in cases if c[2] == "Ts"]
    fmt = lambda group: ", ".join(f"`{name}` (z={z})" for name, z, _ in group)
    return f"""# {DATASET_DIR}

A tiny 2D multi-organ abdominal MR dataset in nnU-Net v2 raw layout, shipped with
swin-umamba for the CPU demo (plan, preprocess, train briefly, predict, Dice).

## Source

* Package: `{SOURCE_PACKAGE}` version {SOURCE_VERSION}, source distribution
  `totalsegmentator-{SOURCE_VERSION}.tar.gz` from PyPI
  (author Jakob Wasserthal, https://github.com/wasserth/TotalSegmentator).
* Licence: Apache License 2.0; the package's licence text is copied unchanged to
  `LICENSE` in this folder. No NOTICE file is part of the package.
* Original files (paths inside the sdist) and SHA-256:
  * `{IMAGE_MEMBER}` `{sha256_of(sources[IMAGE_MEMBER])}`:
    abdominal MR volume, 117 x 91 x 20 voxels, 3 mm isotropic, int16.
  * `{SEG_MEMBER}` `{sha256_of(sources[SEG_MEMBER])}`:
    its 50-class segmentation. TotalSegmentator's `tests/update_test_files.sh`
    produces this file by running its own `total_mr` model on the volume
    (`TotalSegmentator -i example_mr_sm.nii.gz -ta total_mr --ml`), so these labels
    are model output used by the package as test reference, not manual annotations.

## Changes made (Apache-2.0 section 4(b))

This folder is a derivative of the files above, produced by
`tools/make_demo_dataset.py` in the swin-umamba repository:

1. Each of the 20 axial slices was written as a separate 2D NIfTI file
   ({shape_yx[1]} x {shape_yx[0]} pixels, 3 x 3 mm, original int16 intensities,
   orientation and origin of that slice kept).
2. The segmentation was reduced to four organs (all other structures set to 0):

| label | name | total_mr ids merged |
| --- | --- | --- |
| 0 | background | everything else |
{label_lines}

3. Slices {', '.join(str(z) for z in TEST_SLICES)} (0 = most inferior) are held out as
   labelled test cases in `imagesTs`/`labelsTs`; the other {len(train)} are `imagesTr`/`labelsTr`.

Training cases: {fmt(train)}.

Test cases: {fmt(test)}.

All cases are slices of one subject 3 mm apart, so a test slice has close
neighbours in the training set: Dice on this dataset shows that the pipeline
runs end to end, not how well a model generalises.

## Regenerate

```
pip download --no-deps --no-binary :all: {SOURCE_PACKAGE}=={SOURCE_VERSION} -d /tmp/ts
python tools/make_demo_dataset.py --source /tmp/ts/totalsegmentator-{SOURCE_VERSION}.tar.gz --out swin_umamba/demo_data
```
"""


def read_sources(source: Path, workdir: Path, allow_mismatch: bool) -> tuple[dict[str, Path], sitk.Image, sitk.Image]:
    """(the source files by member, the MR volume, its segmentation), checked against their SHA-256 and
    against each other's size; archives are unpacked into `workdir`."""
    sources = gather_sources(source, workdir)
    check_sources(sources, allow_mismatch)
    image = sitk.ReadImage(str(sources[IMAGE_MEMBER]))
    seg = sitk.ReadImage(str(sources[SEG_MEMBER]))
    if image.GetSize() != seg.GetSize():
        raise ValueError(f"image size {image.GetSize()} != segmentation size {seg.GetSize()}")
    return sources, image, seg


def build(source: Path, out: Path, allow_mismatch: bool = False) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        sources, image, seg = read_sources(source, Path(tmp), allow_mismatch)
        labels = remap_labels(sitk.GetArrayFromImage(seg))  # (z, y, x)

        target = out / DATASET_DIR
        if target.exists():
            shutil.rmtree(target)
        for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
            (target / sub).mkdir(parents=True)

        cases = []
        num_slices = image.GetSize()[2]
        for z in range(num_slices):
            split = "Ts" if z in TEST_SLICES else "Tr"
            name = f"{CASE_PREFIX}_z{z:02d}"
            image_2d = image[:, :, z]
            label_2d = sitk.GetImageFromArray(labels[z])
            label_2d.CopyInformation(image_2d)
            write_image(image_2d, target / f"images{split}" / f"{name}_0000{FILE_ENDING}")
            write_image(label_2d, target / f"labels{split}" / f"{name}{FILE_ENDING}")
            cases.append((name, z, split))

        num_training = sum(1 for c in cases if c[2] == "Tr")
        with open(target / "dataset.json", "w") as handle:
            json.dump(dataset_json(num_training), handle, indent=4)
            handle.write("\n")
        shutil.copyfile(sources[LICENSE_MEMBER], target / "LICENSE")
        shape_yx = tuple(int(s) for s in labels.shape[1:])
        (target / "README.md").write_text(readme_text(sources, cases, shape_yx))
    return target


def run_cli(argv: list[str] | None, build_dataset, dataset_dir: str, script: str) -> int:
    """The command line both demo-dataset scripts share: --source, --out, --allow-mismatch."""
    parser = argparse.ArgumentParser(
        description=f"Build {dataset_dir} (nnU-Net v2 raw layout) from the TotalSegmentator {SOURCE_VERSION} sdist.",
        epilog=f"Example: python tools/{script} --source /tmp/ts/totalsegmentator-{SOURCE_VERSION}.tar.gz "
               "--out swin_umamba/demo_data",
    )
    parser.add_argument(
        "--source",
        required=True,
        type=Path,
        help="totalsegmentator-2.18.0.tar.gz (the sdist), its extracted directory, "
        "its tests/reference_files directory, or example_mr_sm.nii.gz itself",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help=f"directory that receives {dataset_dir}/ (an existing {dataset_dir} there is replaced)",
    )
    parser.add_argument(
        "--allow-mismatch",
        action="store_true",
        help=f"build even if the source files' SHA-256 differ from those of TotalSegmentator {SOURCE_VERSION}",
    )
    args = parser.parse_args(argv)
    target = build_dataset(args.source, args.out, args.allow_mismatch)
    print(f"wrote {target}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(argv, build, DATASET_DIR, "make_demo_dataset.py")


if __name__ == "__main__":
    sys.exit(main())
