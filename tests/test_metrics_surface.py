"""Surface elements and NSD against values worked out by hand."""
import math

import numpy as np
import pytest

from swin_umamba.evaluation.overlap import dice
from swin_umamba.evaluation.surface import (compute_surface_distances, neighbour_codes, normalized_surface_dice,
                                            surface_area_table)

SQRT2, SQRT3 = math.sqrt(2), math.sqrt(3)


def corner_area(s0, s1, s2):
    # one inside voxel: a triangle with area vector (1/8, 1/8, 1/8) at spacing 1
    return math.sqrt((s1 * s2) ** 2 + (s0 * s2) ** 2 + (s0 * s1) ** 2) / 8


def test_area_table_single_corner_and_flat_face():
    table = surface_area_table((1, 2, 3))
    for bit in range(8):
        assert table[1 << bit] == pytest.approx(0.875)  # sqrt(36 + 9 + 4) / 8
        assert table[255 - (1 << bit)] == pytest.approx(0.875)
    assert table[0] == 0 and table[255] == 0
    # the four voxels of one side of the 2x2x2 block: a flat unit square scaled by the two other spacings
    masks = {0: np.s_[0, :, :], 1: np.s_[:, 0, :], 2: np.s_[:, :, 0]}
    expected = {0: 2 * 3, 1: 1 * 3, 2: 1 * 2}
    for axis, index in masks.items():
        block = np.zeros((2, 2, 2), bool)
        block[index] = True
        code = neighbour_codes(block)[1, 1, 1]
        assert table[code] == pytest.approx(expected[axis])


def test_area_table_unit_spacing_values_and_complement_symmetry():
    table = surface_area_table((1, 1, 1))
    block = np.zeros((2, 2, 2), bool)
    block[:, 0, 0] = True  # two voxels along axis 0: a flat quad through four edge midpoints
    assert table[neighbour_codes(block)[1, 1, 1]] == pytest.approx(SQRT2 / 2)
    block = np.zeros((2, 2, 2), bool)
    block[0, 0, 0] = block[0, 1, 0] = block[0, 0, 1] = True  # an L of three on one face: 1/2 + sqrt3/4 + sqrt3/8
    assert table[neighbour_codes(block)[1, 1, 1]] == pytest.approx(0.5 + SQRT3 / 4 + SQRT3 / 8)
    for code in range(256):
        assert table[code] == pytest.approx(table[255 - code])


def test_single_voxel_surface_is_eight_corners():
    mask = np.zeros((3, 3, 3), bool)
    mask[1, 1, 1] = True
    d = compute_surface_distances(mask, mask, (1, 1, 1))
    assert len(d.areas_gt) == 8
    assert d.areas_gt.sum() == pytest.approx(SQRT3)
    assert np.all(d.distances_gt_to_pred == 0)
    assert normalized_surface_dice(mask, mask, (1, 1, 1), 0) == 1


@pytest.mark.parametrize("axis, spacing", [(0, (1.0, 2.0, 3.0)), (2, (1.0, 2.0, 3.0)), (1, (0.5, 1.5, 1.0))])
def test_two_voxels_against_one_anisotropic(axis, spacing):
    # gt: voxels 0 and 1 along `axis`; pred: voxel 0. The four far corners of gt (single-voxel codes, area a)
    # are one spacing away from pred; the four middle corners (two-voxel codes, area q) and all else coincide.
    gt = np.zeros((2, 2, 2), bool)
    index = [0, 0, 0]
    gt[tuple(index)] = True
    index[axis] = 1
    gt[tuple(index)] = True
    pred = np.zeros_like(gt)
    pred[0, 0, 0] = True
    s = spacing
    a = corner_area(*s)
    others = [s[i] for i in range(3) if i != axis]
    q = 0.5 * s[axis] * math.hypot(*others)
    partial = (12 * a + 4 * q) / (16 * a + 4 * q)
    assert normalized_surface_dice(gt, pred, s, s[axis] * 0.99) == pytest.approx(partial)
    assert normalized_surface_dice(gt, pred, s, s[axis]) == pytest.approx(1.0)  # distance == tolerance counts
    assert normalized_surface_dice(pred, gt, s, s[axis] * 0.99) == pytest.approx(partial)  # symmetric


def test_shifted_squares_as_one_slice_volumes():
    # 10x10 squares shifted by 3 pixels, scored as one-slice volumes (spacing 1, tolerance 2): only the
    # outermost column of each square (2 corner elements sqrt3/8 and 9 edge elements sqrt2/2, on both caps)
    # is farther than 2 from the other surface. Each cap of a square: 81 flat elements (area 1),
    # 36 edge elements, 4 corners.
    gt = np.zeros((20, 20), bool)
    gt[5:15, 2:12] = True
    pred = np.roll(gt, 3, axis=1)
    excluded = SQRT3 / 4 + 9 * SQRT2 / 2
    per_cap = 81 + 36 * SQRT2 / 2 + 4 * SQRT3 / 8
    expected = 1 - excluded / per_cap
    assert normalized_surface_dice(gt[..., None], pred[..., None], (1, 1, 1), 2) == pytest.approx(expected)
    assert expected == pytest.approx(0.936667, abs=1e-6)
    assert dice(gt, pred) == pytest.approx(0.7)
    # a one-pixel shift is within tolerance everywhere
    assert normalized_surface_dice(gt[..., None], np.roll(gt, 1, 0)[..., None], (1, 1, 1), 2) == 1


def test_shifted_cubes_far_apart_and_empty_masks():
    gt = np.zeros((12, 12, 12), bool)
    gt[1:4, 1:4, 1:4] = True
    far = np.zeros_like(gt)
    far[8:11, 8:11, 8:11] = True
    assert normalized_surface_dice(gt, far, (1, 1, 1), 2) == 0
    assert dice(gt, far) == 0
    empty = np.zeros_like(gt)
    assert normalized_surface_dice(gt, empty, (1, 1, 1), 5) == 0
    assert normalized_surface_dice(empty, gt, (1, 1, 1), 5) == 0
    assert math.isnan(normalized_surface_dice(empty, empty, (1, 1, 1), 5))
    assert math.isnan(dice(empty, empty))


def test_sphere_shift_within_and_beyond_tolerance():
    z, y, x = np.mgrid[:24, :24, :24]
    sphere = (z - 11.5) ** 2 + (y - 11.5) ** 2 + (x - 11.5) ** 2 <= 6 ** 2
    shifted = np.roll(sphere, 2, axis=0)
    # spacing 0.5 along the shift: the whole surface moves by 1 mm, within a 1 mm tolerance
    assert normalized_surface_dice(sphere, shifted, (0.5, 1, 1), 1.0) == pytest.approx(1.0)
    # spacing 3 along the shift: 6 mm, farther than 2 mm for the caps, not for the whole surface
    value = normalized_surface_dice(sphere, shifted, (3, 1, 1), 2.0)
    assert 0 < value < 1
