"""The max-area GTV slice (Tanaka et al.) on synthetic volumes whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from rtresponse.errors import InputError
from rtresponse.imaging import max_area_slice, tumour_slices, window


def disc(shape, centre, radius):
    rows, cols = np.ogrid[:shape[0], :shape[1]]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius ** 2


def volume_with_discs(discs_by_slice, shape=(12, 200, 200), hu_inside=50.0, hu_outside=-500.0):
    """CT (z, y, x) at 1 mm: ``hu_outside`` everywhere, ``hu_inside`` in the GTV discs."""
    mask = np.zeros(shape, dtype=np.uint8)
    for z, discs in discs_by_slice.items():
        for centre, radius in discs:
            mask[z] |= disc(shape[1:], centre, radius)
    ct = np.where(mask, hu_inside, hu_outside).astype(np.float32)
    return ct, mask


def crop_centre(pixels):
    return np.argwhere(pixels > 0).mean(axis=0)


def test_window_maps_known_hu_values():
    hu = np.array([-1000, -125, 50, 137.5, 225, 3000])
    np.testing.assert_allclose(window(hu, 50, 350), [0, 0, 0.5, 0.75, 1, 1], atol=1e-7)
    with pytest.raises(InputError, match="width"):
        window(hu, 50, 0)


def test_picks_largest_slice_and_centres_crop_on_gtv():
    ct, mask = volume_with_discs({3: [((80, 60), 6)], 5: [((80, 60), 14)], 7: [((80, 60), 9)]})
    [crop] = tumour_slices(ct, mask)
    assert crop.slice_index == 5
    assert crop.pixels.shape == (100, 100) and crop.pixels.dtype == np.float32
    np.testing.assert_allclose(crop_centre(crop.pixels), (50, 50))
    assert crop.corner_index == (60 - 50, 80 - 50, 5)  # (x, y, z)
    assert crop.area_mm2 == mask[5].sum()


def test_zero_outside_gtv_and_window_inside():
    ct, mask = volume_with_discs({4: [((100, 100), 10)]}, hu_inside=137.5, hu_outside=400.0)
    pixels = max_area_slice(ct, mask)
    inside = pixels > 0
    assert inside.sum() == mask[4].sum()
    np.testing.assert_allclose(pixels[inside], 0.75)
    assert np.all(pixels[~inside] == 0.0)  # even though the tissue around is bright (400 HU)
    kept = max_area_slice(ct, mask, context="keep")
    assert np.all(kept[~inside] == 1.0)  # beyond the paper: peritumoral tissue kept


def test_several_tumours_recentres_on_the_largest():
    big, small = ((80, 60), 12), ((80, 105), 8)
    ct, mask = volume_with_discs({4: [big, small]})
    [crop] = tumour_slices(ct, mask)
    labels_centre = np.argwhere(disc((100, 100), (50, 50), 12)).mean(axis=0)
    big_in_crop = crop.pixels[:, :75] > 0  # the small disc sits 45 px to the right of the big one
    np.testing.assert_allclose(np.argwhere(big_in_crop).mean(axis=0), labels_centre)
    assert crop.corner_index[:2] == (60 - 50, 80 - 50)


def test_anisotropic_spacing_is_resampled_to_1mm():
    import SimpleITK as sitk

    spacing = (0.5, 0.8, 3.0)  # x, y, z in mm
    shape = (10, 250, 400)  # (z, y, x): 30 x 200 x 200 mm
    z, y, x = np.meshgrid(np.arange(shape[0]) * spacing[2], np.arange(shape[1]) * spacing[1],
                          np.arange(shape[2]) * spacing[0], indexing="ij")
    inside = ((y - 90.0) ** 2 + (x - 120.0) ** 2 <= 15.0 ** 2) & (np.abs(z - 12.0) <= 4.0)
    image = sitk.GetImageFromArray(np.where(inside, 50.0, -800.0).astype(np.float32))
    image.SetSpacing(spacing)
    mask = sitk.GetImageFromArray(inside.astype(np.uint8))
    mask.SetSpacing(spacing)
    [crop] = tumour_slices(image, mask)
    assert abs(crop.area_mm2 - np.pi * 15 ** 2) < 0.03 * np.pi * 15 ** 2  # 1 mm pixels, 30 mm disc
    centre = crop_centre(crop.pixels)
    assert np.all(np.abs(centre - 50) <= 0.6)
    point = np.array(crop.corner_point()) + [50, 50, 0]
    assert abs(point[0] - 120) <= 1 and abs(point[1] - 90) <= 1 and abs(point[2] - 12) <= 4


def test_top_k_slices_by_area_and_other_sizes():
    ct, mask = volume_with_discs({2: [((100, 100), 5)], 6: [((100, 100), 9)], 8: [((100, 100), 7)]})
    crops = tumour_slices(ct, mask, top_k=2, size_mm=60)
    assert [c.slice_index for c in crops] == [6, 8]
    assert crops[0].pixels.shape == (60, 60)


def test_crop_leaving_the_image_is_padded_as_background():
    ct, mask = volume_with_discs({3: [((5, 5), 4)]}, shape=(6, 40, 40))
    pixels = max_area_slice(ct, mask)
    np.testing.assert_allclose(crop_centre(pixels), (50, 50))
    assert (pixels > 0).sum() == mask[3].sum()


def test_bad_input_is_named():
    ct, mask = volume_with_discs({3: [((50, 50), 4)]}, shape=(6, 100, 100))
    with pytest.raises(InputError, match="mask is empty"):
        max_area_slice(ct, np.zeros_like(mask))
    with pytest.raises(InputError, match="shape"):
        max_area_slice(ct, mask[:, :50])
    with pytest.raises(InputError, match="context"):
        max_area_slice(ct, mask, context="blur")
