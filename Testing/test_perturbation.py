"""Delineation perturbations for feature-robustness analysis (rtresponse.features.perturbation)."""

from __future__ import annotations

import re

import numpy as np
import pytest

sitk = pytest.importorskip("SimpleITK")

from rtresponse.errors import InputError  # noqa: E402
from rtresponse.features.perturbation import dice, morphology_radius, perturbed_masks  # noqa: E402

SPACING = (0.8, 0.8, 3.0)  # x, y, z: thick slices
DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # a rotation, so CopyInformation matters


def _on_grid(voxels: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(voxels)
    image.SetSpacing(SPACING)
    image.SetOrigin((-15.0, 22.5, 101.0))
    image.SetDirection(DIRECTION)
    return image


@pytest.fixture
def ellipsoid() -> sitk.Image:
    """An ellipsoid (semi-axes 10, 8, 12 mm) on a 40 x 40 x 12 anisotropic grid."""
    z, y, x = np.mgrid[:12, :40, :40]
    px, py, pz = (x - 19.3) * SPACING[0], (y - 20.1) * SPACING[1], (z - 5.6) * SPACING[2]
    return _on_grid(((px / 10) ** 2 + (py / 8) ** 2 + (pz / 12) ** 2 <= 1).astype(np.uint8))


def voxels(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


def centre_of_mass_mm(image: sitk.Image) -> np.ndarray:
    """Centre of mass along the image axes (x, y, z), in mm from the first voxel."""
    idx = np.argwhere(voxels(image) != 0)[:, ::-1]
    return idx.mean(axis=0) * np.array(SPACING)


def test_n_masks_with_unique_readable_names_on_the_input_grid(ellipsoid):
    result = perturbed_masks(ellipsoid, n=10, random_state=1)
    names = [name for name, _ in result]
    assert len(result) == 10
    assert len(set(names)) == 10
    assert names[:4] == ["erode-1", "dilate-2", "contour-3", "translate-4"]
    for i, name in enumerate(names, start=1):
        assert re.fullmatch(r"(erode|dilate|contour|translate)-(\d+)", name)
        assert name.endswith(f"-{i}")
    for _, mask in result:
        assert mask.GetPixelID() == sitk.sitkUInt8
        assert mask.GetSize() == ellipsoid.GetSize()
        assert mask.GetSpacing() == ellipsoid.GetSpacing()
        assert mask.GetOrigin() == ellipsoid.GetOrigin()
        assert mask.GetDirection() == ellipsoid.GetDirection()
        assert set(np.unique(voxels(mask))) == {0, 1}


def test_erode_is_a_subset_and_dilate_a_superset_in_plane_only(ellipsoid):
    original = voxels(ellipsoid).astype(bool)
    result = dict(perturbed_masks(ellipsoid, n=2, kinds=("erode", "dilate")))
    eroded, dilated = voxels(result["erode-1"]).astype(bool), voxels(result["dilate-2"]).astype(bool)
    assert not (eroded & ~original).any() and eroded.sum() < original.sum()
    assert not (original & ~dilated).any() and dilated.sum() > original.sum()
    # 3 mm slices, 0.8 mm pixels: a one-voxel (0.8 mm) ball does not reach the next slice
    assert morphology_radius(SPACING) == (1, 1, 0)
    assert set(np.flatnonzero(dilated.any(axis=(1, 2)))) == set(np.flatnonzero(original.any(axis=(1, 2))))
    # ... but in-plane it is one voxel: every dilated voxel touches the original in its slice
    padded = np.pad(original, ((0, 0), (1, 1), (1, 1)))
    near = np.zeros_like(original)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near |= padded[:, 1 + dy:1 + dy + original.shape[1], 1 + dx:1 + dx + original.shape[2]]
    assert not (dilated & ~near).any()


def test_morphology_radius_never_zero_in_plane():
    assert morphology_radius((1.0, 1.0, 1.0)) == (1, 1, 1)
    assert morphology_radius((3.0, 0.8, 0.8)) == (0, 1, 1)
    assert morphology_radius((0.5, 1.5, 1.5)) == (1, 1, 0)
    assert morphology_radius((0.5, 0.5, 1.0)) == (1, 1, 0)  # round(0.5) -> 0: 1 mm > 0.5 mm radius


def test_dice_of_every_perturbation_is_plausible(ellipsoid):
    scores = [dice(ellipsoid, mask) for _, mask in perturbed_masks(ellipsoid, n=8, random_state=3)]
    assert all(0.6 <= d <= 0.99 for d in scores), scores


def test_contour_changes_the_outline_but_not_the_volume(ellipsoid):
    volume = voxels(ellipsoid).sum()
    for name, mask in perturbed_masks(ellipsoid, n=4, random_state=5, kinds=("contour",)):
        assert name.startswith("contour-")
        assert (voxels(mask) != voxels(ellipsoid)).sum() > 0.05 * volume
        assert 0.6 < dice(ellipsoid, mask) < 0.99
        assert 0.75 <= voxels(mask).sum() / volume <= 1.25


def test_contour_reshapes_rather_than_grows_or_shrinks(ellipsoid):
    # smooth noise on a small tumour is nearly a constant offset (= an erosion or dilation); its mean
    # along the outline is removed, so the volume stays close (without that: 0.76-1.35 for this seed)
    volume = voxels(ellipsoid).sum()
    ratios = [voxels(m).sum() / volume for _, m in perturbed_masks(ellipsoid, n=6, random_state=1, kinds=("contour",))]
    assert all(0.9 <= r <= 1.15 for r in ratios), ratios


def test_contour_noise_scales_the_change(ellipsoid):
    small = perturbed_masks(ellipsoid, n=3, random_state=2, kinds=("contour",), contour_noise_mm=0.3)
    large = perturbed_masks(ellipsoid, n=3, random_state=2, kinds=("contour",), contour_noise_mm=2.0)
    assert np.mean([dice(ellipsoid, m) for _, m in small]) > np.mean([dice(ellipsoid, m) for _, m in large]) + 0.05


@pytest.mark.parametrize("max_shift_mm", [1.0, 4.0])
def test_translation_moves_the_mask_by_at_most_max_shift(ellipsoid, max_shift_mm):
    original = voxels(ellipsoid)
    before = centre_of_mass_mm(ellipsoid)
    moved_any_slice = False
    for _, mask in perturbed_masks(ellipsoid, n=6, random_state=11, kinds=("translate",),
                                   max_shift_mm=max_shift_mm):
        shift = centre_of_mass_mm(mask) - before
        assert np.all(np.abs(shift) <= max_shift_mm + 0.5 * np.array(SPACING) + 1e-9), shift
        assert np.any(np.abs(shift) > 0)  # a translation that moves no voxel is redrawn
        assert voxels(mask).sum() == original.sum()  # a pure shift, nothing lost at the border
        moved_any_slice |= abs(shift[2]) > 0
    # 3 mm slices: a 1 mm shift can never reach the next slice, a 4 mm one (> 1.5 mm) can
    assert moved_any_slice == (max_shift_mm > 1.5)


def test_same_seed_same_masks_other_seed_other_masks(ellipsoid):
    a = perturbed_masks(ellipsoid, n=8, random_state=42)
    b = perturbed_masks(ellipsoid, n=8, random_state=42)
    c = perturbed_masks(ellipsoid, n=8, random_state=43)
    assert [n for n, _ in a] == [n for n, _ in b] == [n for n, _ in c]
    assert all(np.array_equal(voxels(x), voxels(y)) for (_, x), (_, y) in zip(a, b))
    random_draws = [i for i, (name, _) in enumerate(a) if name.split("-")[0] in ("contour", "translate")]
    assert any(not np.array_equal(voxels(a[i][1]), voxels(c[i][1])) for i in random_draws)


def test_inputs_are_not_modified(ellipsoid):
    image = sitk.Cast(ellipsoid, sitk.sitkFloat32) * 100.0 - 20.0
    mask_before, image_before = voxels(ellipsoid).copy(), voxels(image).copy()
    geometry = (ellipsoid.GetOrigin(), ellipsoid.GetSpacing(), ellipsoid.GetDirection())
    result = perturbed_masks(ellipsoid, image, n=8, random_state=0)
    assert np.array_equal(voxels(ellipsoid), mask_before)
    assert np.array_equal(voxels(image), image_before)
    assert (ellipsoid.GetOrigin(), ellipsoid.GetSpacing(), ellipsoid.GetDirection()) == geometry
    # an image on the same grid is accepted and changes nothing
    plain = perturbed_masks(ellipsoid, n=8, random_state=0)
    assert all(np.array_equal(voxels(x), voxels(y)) for (_, x), (_, y) in zip(result, plain))


def test_non_binary_labels_count_as_inside(ellipsoid):
    labelled = sitk.Cast(ellipsoid, sitk.sitkInt16) * 7
    for (_, x), (_, y) in zip(perturbed_masks(labelled, n=4), perturbed_masks(ellipsoid, n=4)):
        assert np.array_equal(voxels(x), voxels(y))


def test_one_voxel_mask_still_gives_n_non_empty_masks():
    one = np.zeros((12, 40, 40), np.uint8)
    one[6, 20, 20] = 1
    result = perturbed_masks(_on_grid(one), n=8, random_state=0)
    names = [name for name, _ in result]
    assert len(result) == 8 and len(set(names)) == 8
    assert all(voxels(mask).sum() > 0 for _, mask in result)
    # erosion empties a single voxel, so those draws moved on to the next kind
    assert names[0] == "dilate-1" and not any(name.startswith("erode") for name in names)
    with pytest.raises(InputError, match="too small"):
        perturbed_masks(_on_grid(one), n=2, kinds=("erode",))


def test_errors(ellipsoid):
    with pytest.raises(InputError, match="mask is empty"):
        perturbed_masks(_on_grid(np.zeros((12, 40, 40), np.uint8)))
    with pytest.raises(InputError, match="known kinds: erode, dilate, contour, translate"):
        perturbed_masks(ellipsoid, kinds=("erode", "blur"))
    other = sitk.Image(ellipsoid.GetSize(), sitk.sitkFloat32)
    other.SetSpacing((1.0, 1.0, 3.0))
    with pytest.raises(InputError, match="mask and image grids differ"):
        perturbed_masks(ellipsoid, other)
    for bad_n in (0, -3, 2.5):
        with pytest.raises(InputError, match="n must"):
            perturbed_masks(ellipsoid, n=bad_n)
    with pytest.raises(InputError, match="3D"):
        perturbed_masks(sitk.GetImageFromArray(np.ones((5, 5), np.uint8)))
    with pytest.raises(InputError, match="max_shift_mm"):
        perturbed_masks(ellipsoid, max_shift_mm=-1.0)
    with pytest.raises(InputError, match="contour_noise_mm"):
        perturbed_masks(ellipsoid, contour_noise_mm=float("nan"))


def test_dice():
    a = np.zeros((3, 4, 5), np.uint8)
    b = a.copy()
    assert dice(_on_grid(a), _on_grid(b)) == 1.0  # two empty masks agree
    a[1, 1, 1:5] = 1
    b[1, 1, 3:5] = 2
    assert dice(_on_grid(a), _on_grid(a)) == 1.0
    assert dice(_on_grid(a), _on_grid(b)) == pytest.approx(2 * 2 / 6)
    c = np.zeros_like(a)
    c[2, 2, 2] = 1
    assert dice(_on_grid(a), _on_grid(c)) == 0.0
    with pytest.raises(InputError, match="grids differ"):
        dice(_on_grid(a), sitk.GetImageFromArray(a))
