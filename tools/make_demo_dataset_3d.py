#!/usr/bin/env python
"""Build the embedded 3D demo dataset ``Dataset992_DemoAbdomenMR3D`` (nnU-Net v2 raw layout).

Regenerate the shipped copy with::

    pip download --no-deps --no-binary :all: TotalSegmentator==2.18.0 -d /tmp/ts
    python tools/make_demo_dataset_3d.py \
        --source /tmp/ts/totalsegmentator-2.18.0.tar.gz \
        --out swin_umamba/demo_data

The source is the same TotalSegmentator test volume as the 2D demo's (see
tools/make_demo_dataset.py, which this script shares its source handling and
label reduction with). The volume is 20 axial slices of 3 mm, too few for
separate 3D cases, so the cases are slabs of it:

1. In-plane crop to a fixed box around the four organs (CROP_X x CROP_Y), which
   keeps the files small.
2. Two volumes of every other slice (even and odd slice indices): 10 slices
   each at 6 mm, 3 x 3 mm in-plane, the spacing of a thick-slice acquisition.
   nnU-Net therefore plans an anisotropic 3d_fullres (no pooling along the
   slice axis until the in-plane spacing has coarsened to 6 mm).
3. From each of the two, slabs of SLAB_SLICES consecutive slices starting at
   each offset in SLAB_OFFSETS.

Every case is the same subject; slabs overlap. The output is byte-for-byte
reproducible for the same source files (checked against their SHA-256 sums).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_demo_dataset import (  # noqa: E402  (the sibling script, shared source handling)
    CASE_PREFIX,
    FILE_ENDING,
    IMAGE_MEMBER,
    LABELS,
    LICENSE_MEMBER,
    SEG_MEMBER,
    SOURCE_PACKAGE,
    SOURCE_VERSION,
    read_sources,
    remap_labels,
    run_cli,
    write_image,
)

from swin_umamba.fileio import sha256_of  # noqa: E402

DATASET_ID = 992
DATASET_NAME = "DemoAbdomenMR3D"
DATASET_DIR = f"Dataset{DATASET_ID:03d}_{DATASET_NAME}"

# In-plane box (voxel index ranges of the source, end excluded) holding liver, spleen, kidneys and stomach.
CROP_X = (4, 108)
CROP_Y = (9, 81)
SLICE_STEP = 2  # every other slice: 3 mm -> 6 mm
PHASES = (0, 1)  # first source slice of the even and of the odd volume
SLAB_SLICES = 8
SLAB_OFFSETS = (0, 1, 2)  # in slices of the 6 mm volumes
# (phase, offset) of the labelled test cases; every other slab is a training case
TEST_SLABS = ((1, 1),)


def slab_name(phase: int, offset: int) -> str:
    return f"{CASE_PREFIX}3D_p{phase}o{offset}"


def source_slices(phase: int, offset: int) -> list[int]:
    """Source slice indices (0 = most inferior) of one slab."""
    first = phase + SLICE_STEP * offset
    return list(range(first, first + SLICE_STEP * SLAB_SLICES, SLICE_STEP))


def dataset_json(num_training: int) -> dict:
    labels = {"background": 0}
    labels.update({name: new_id for new_id, (name, _) in LABELS.items()})
    return {
        "name": DATASET_NAME,
        "description": (
            "Tiny 3D abdominal MR demo: overlapping 6 mm slabs of the TotalSegmentator example MR volume "
            "(one subject) with liver, spleen, kidneys and stomach from its total_mr segmentation"
        ),
        "reference": f"{SOURCE_PACKAGE} {SOURCE_VERSION} sdist, {IMAGE_MEMBER} and {SEG_MEMBER}",
        "licence": "Apache-2.0 (see LICENSE and README.md in this folder)",
        "channel_names": {"0": "MR"},
        "labels": labels,
        "numTraining": num_training,
        "file_ending": FILE_ENDING,
        "overwrite_image_reader_writer": "SimpleITKIO",
    }


def readme_text(sources: dict[str, Path], cases: list[tuple[str, int, int, str]], size_xyz) -> str:
    label_lines = "\n".join(
        f"| {new_id} | {name} | {', '.join(str(i) for i in old_ids)} |" for new_id, (name, old_ids) in LABELS.items()
    )
    case_lines = "\n".join(
        f"| `{name}` | {'test' if split == 'Ts' else 'training'} | {phase} | {offset} | "
        f"{', '.join(str(z) for z in source_slices(phase, offset))} |"
        for name, phase, offset, split in cases
    )
    num_train = sum(1 for c in cases if c[3] == "Tr")
    return f"""# {DATASET_DIR}

A tiny 3D multi-organ abdominal MR dataset in nnU-Net v2 raw layout, shipped with
swin-umamba for the 3D demo and the 3D end-to-end tests. **All cases come from one
subject and overlap**: Dice on it shows that the 3D pipeline runs end to end, not
how well a model generalises.

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
    its 50-class segmentation, made by TotalSegmentator's own `total_mr` model
    (`tests/update_test_files.sh`): model output used by the package as test
    reference, not manual annotations.

## Changes made (Apache-2.0 section 4(b))

This folder is a derivative of the files above, produced by
`tools/make_demo_dataset_3d.py` in the swin-umamba repository:

1. Both volumes were cropped in-plane to x {CROP_X[0]}..{CROP_X[1] - 1} and
   y {CROP_Y[0]}..{CROP_Y[1] - 1} (voxel indices of the source), the box around the four organs.
2. Every other slice was kept, giving two volumes of 10 slices at 6 mm: phase 0
   (source slices 0, 2, ..., 18; 0 = most inferior) and phase 1 (slices 1, 3, ..., 19).
   Spacing is 3 x 3 x 6 mm: the slice axis is twice as coarse as the in-plane axes.
3. Each case is {SLAB_SLICES} consecutive slices of one of them, starting at offset
   {', '.join(str(o) for o in SLAB_OFFSETS)} (in 6 mm slices): {size_xyz[0]} x {size_xyz[1]} x {size_xyz[2]}
   voxels (x, y, z), original int16 intensities, direction kept, origin moved to the crop.
4. The segmentation was reduced to four organs (all other structures set to 0):

| label | name | total_mr ids merged |
| --- | --- | --- |
| 0 | background | everything else |
{label_lines}

| case | split | phase | offset | source slices |
| --- | --- | --- | --- | --- |
{case_lines}

{num_train} training cases (`imagesTr`/`labelsTr`), {len(cases) - num_train} labelled test case(s)
(`imagesTs`/`labelsTs`). A test slab shares most of its slices' anatomy with training
slabs (neighbouring slices 3 mm apart, or the same slices).

## Regenerate

```
pip download --no-deps --no-binary :all: {SOURCE_PACKAGE}=={SOURCE_VERSION} -d /tmp/ts
python tools/make_demo_dataset_3d.py --source /tmp/ts/totalsegmentator-{SOURCE_VERSION}.tar.gz --out swin_umamba/demo_data
```
"""


def build(source: Path, out: Path, allow_mismatch: bool = False) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        sources, image, seg = read_sources(source, Path(tmp), allow_mismatch)
        labels = sitk.GetImageFromArray(remap_labels(sitk.GetArrayFromImage(seg)))
        labels.CopyInformation(seg)

        target = out / DATASET_DIR
        if target.exists():
            shutil.rmtree(target)
        for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
            (target / sub).mkdir(parents=True)

        x, y = slice(*CROP_X), slice(*CROP_Y)
        cases = []
        size_xyz = None
        for phase in PHASES:
            for offset in SLAB_OFFSETS:
                z = source_slices(phase, offset)
                zs = slice(z[0], z[-1] + 1, SLICE_STEP)
                split = "Ts" if (phase, offset) in TEST_SLABS else "Tr"
                name = slab_name(phase, offset)
                image_slab, label_slab = image[x, y, zs], labels[x, y, zs]
                size_xyz = image_slab.GetSize()
                write_image(image_slab, target / f"images{split}" / f"{name}_0000{FILE_ENDING}")
                write_image(label_slab, target / f"labels{split}" / f"{name}{FILE_ENDING}")
                cases.append((name, phase, offset, split))

        num_training = sum(1 for c in cases if c[3] == "Tr")
        with open(target / "dataset.json", "w") as handle:
            json.dump(dataset_json(num_training), handle, indent=4)
            handle.write("\n")
        shutil.copyfile(sources[LICENSE_MEMBER], target / "LICENSE")
        (target / "README.md").write_text(readme_text(sources, cases, size_xyz))
    return target


def main(argv: list[str] | None = None) -> int:
    return run_cli(argv, build, DATASET_DIR, "make_demo_dataset_3d.py")


if __name__ == "__main__":
    sys.exit(main())
