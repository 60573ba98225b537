"""The NPC paper's classifier input: a "rectangular segmentation" crop of every axial tumour slice.

For each axial slice (the image's third index axis, the acquisition plane of an axial MR) with at
least ``min_pixels`` tumour pixels, the tumour's bounding rectangle on that slice, widened by a
margin (10 mm) and made square so the resize keeps the aspect ratio, is cut from the normalised
slice *with* the tissue around the tumour (the paper kept it on purpose: the surroundings carry
information) and resized to the network's square input. Each :class:`SliceSample` keeps its slice
index and box on the MR grid, so maps computed on the crop (Grad-CAM) go back exactly
(:func:`paste_maps`).

Intensities: MR has no absolute scale, so each patient's volume is mapped linearly to [0, 1]
between its 0.5th and 99.5th percentiles and clipped. The percentiles are taken inside the body
(voxels above the volume's Otsu threshold) by default; over the whole image they would shift with
the share of air in the field of view. ``reference="image"`` takes them over the whole volume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

REFERENCES = ("body", "image")
PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class SliceSample:
    """One tumour slice: the network input, its tumour mask, and where it lies on the MR grid.

    ``box`` is ``(x0, y0, x1, y1)``, half-open voxel indices on slice ``slice_index``; it may reach
    past the image (the crop is padded with 0 there). ``pixels``/``mask`` are (size, size), rows
    along y and columns along x, ``pixels`` float32 in [0, 1].
    """

    patient_id: str
    slice_index: int
    box: tuple[int, int, int, int]
    pixels: np.ndarray
    mask: np.ndarray
    area_pixels: int
    area_mm2: float

    @property
    def box_shape(self) -> tuple[int, int]:
        """(rows, columns) of the box on the MR slice."""
        x0, y0, x1, y1 = self.box
        return y1 - y0, x1 - x0


def _body_threshold(values: np.ndarray) -> float:
    import SimpleITK as sitk

    otsu = sitk.OtsuThresholdImageFilter()
    otsu.Execute(sitk.GetImageFromArray(values))
    return float(otsu.GetThreshold())


def normalise(image: "sitk.Image", reference: str = "body", percentiles: Sequence[float] = PERCENTILES,
              patient_id: str | None = None) -> np.ndarray:
    """(z, y, x) float32 in [0, 1]: linear between the volume's percentiles (see the module docstring)."""
    import SimpleITK as sitk

    if reference not in REFERENCES:
        raise InputError(f"intensity reference must be one of {', '.join(REFERENCES)}, got '{reference}'")
    values = sitk.GetArrayFromImage(image).astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise InputError("image has non-finite voxel values", patient=patient_id)
    sample = values
    if reference == "body":
        inside = values > _body_threshold(values)
        if inside.sum() >= 100:
            sample = values[inside]
    low, high = (float(v) for v in np.percentile(sample, percentiles))
    if not high > low:
        raise InputError(f"image has no intensity range between its {percentiles[0]}th and {percentiles[1]}th "
                         f"percentiles ({low:g})", patient=patient_id)
    return np.clip((values - low) / (high - low), 0.0, 1.0).astype(np.float32)


def resize(array: np.ndarray, shape: Sequence[int], order: int = 1) -> np.ndarray:
    """``array`` (2D) resampled to ``shape`` pixel-centre to pixel-centre; Gaussian anti-aliasing when shrinking.

    ``order`` 1 is bilinear (images, maps), 0 nearest (masks).
    """
    from scipy import ndimage

    array = np.asarray(array)
    factors = np.array(array.shape, float) / np.array(shape, float)
    source = array.astype(np.float32)
    if order > 0 and np.any(factors > 1):
        source = ndimage.gaussian_filter(source, np.maximum(0.0, (factors - 1) / 2), mode="nearest")
    rows = (np.arange(shape[0]) + 0.5) * factors[0] - 0.5
    cols = (np.arange(shape[1]) + 0.5) * factors[1] - 0.5
    grid = np.meshgrid(rows, cols, indexing="ij")
    out = ndimage.map_coordinates(source, grid, order=order, mode="nearest")
    return out.astype(array.dtype if order == 0 else np.float32)


def tumour_box(slice_mask: np.ndarray, spacing_xy: Sequence[float], margin_mm: float = 10.0,
               square: bool = True) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the tumour's bounding rectangle plus ``margin_mm``, squared in mm when ``square``."""
    rows, cols = np.nonzero(slice_mask)
    r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
    sx, sy = float(spacing_xy[0]), float(spacing_xy[1])
    width_mm = (c1 - c0 + 1) * sx + 2 * margin_mm
    height_mm = (r1 - r0 + 1) * sy + 2 * margin_mm
    if square:
        width_mm = height_mm = max(width_mm, height_mm)
    width = max(c1 - c0 + 1, int(np.ceil(width_mm / sx - 1e-6)))  # the margin rounded up to whole pixels
    height = max(r1 - r0 + 1, int(np.ceil(height_mm / sy - 1e-6)))
    x0 = int(np.floor((c0 + c1) / 2 - (width - 1) / 2 + 0.5))
    y0 = int(np.floor((r0 + r1) / 2 - (height - 1) / 2 + 0.5))
    x0, y0 = min(x0, int(c0)), min(y0, int(r0))  # rounding never cuts the tumour
    x0, y0 = max(x0, int(c1) + 1 - width), max(y0, int(r1) + 1 - height)
    return x0, y0, x0 + width, y0 + height


def cut(slice_values: np.ndarray, box: Sequence[int], fill: float = 0.0) -> np.ndarray:
    """The box of a 2D slice, ``fill`` where it reaches past the slice."""
    x0, y0, x1, y1 = box
    out = np.full((y1 - y0, x1 - x0), fill, dtype=slice_values.dtype)
    r_lo, r_hi = max(y0, 0), min(y1, slice_values.shape[0])
    c_lo, c_hi = max(x0, 0), min(x1, slice_values.shape[1])
    if r_hi > r_lo and c_hi > c_lo:
        out[r_lo - y0:r_hi - y0, c_lo - x0:c_hi - x0] = slice_values[r_lo:r_hi, c_lo:c_hi]
    return out


def tumour_voxels(image: "sitk.Image", mask: "sitk.Image", patient_id: str | None = None) -> np.ndarray:
    """(z, y, x) bool tumour on ``image``'s grid; an empty or misplaced mask is an error naming the patient."""
    import SimpleITK as sitk

    from ..imageio import align_mask

    if image.GetDimension() != 3 or mask.GetDimension() != 3:
        raise InputError("image and mask must be 3D", patient=patient_id)
    try:
        aligned = align_mask(mask, image)
    except InputError as error:
        raise InputError(error.problem, patient=patient_id) from None
    tumour = sitk.GetArrayFromImage(aligned) != 0
    if not tumour.any():
        raise InputError("tumour mask is empty", patient=patient_id)
    return tumour


def rectangular_crops(image: "sitk.Image", mask: "sitk.Image", patient_id: str = "", size: int = 224,
                      margin_mm: float = 10.0, min_pixels: int = 10, square: bool = True,
                      reference: str = "body") -> list[SliceSample]:
    """One :class:`SliceSample` per axial slice with at least ``min_pixels`` tumour pixels, in slice order.

    ``image`` (MR) and ``mask`` are SimpleITK images on one grid (a ``.seg.nrrd`` sub-grid is fine).
    An empty mask, or one with no slice large enough, is an error naming the patient.
    """
    if size < 8:
        raise InputError(f"crop size must be at least 8 pixels, got {size}")
    if margin_mm < 0:
        raise InputError(f"margin must be 0 mm or more, got {margin_mm}")
    pid = patient_id or None
    tumour = tumour_voxels(image, mask, pid)
    values = normalise(image, reference, patient_id=pid)
    spacing = image.GetSpacing()
    areas = tumour.sum(axis=(1, 2))
    chosen = np.flatnonzero(areas >= max(1, min_pixels))
    if chosen.size == 0:
        raise InputError(f"no axial slice has at least {min_pixels} tumour pixels (largest: {int(areas.max())})",
                         patient=pid)
    samples = []
    for z in chosen:
        box = tumour_box(tumour[z], spacing[:2], margin_mm, square)
        pixels = resize(cut(values[z], box, 0.0), (size, size), order=1)
        inside = resize(cut(tumour[z], box, False), (size, size), order=0)
        samples.append(SliceSample(patient_id=patient_id, slice_index=int(z), box=box,
                                   pixels=np.clip(pixels, 0.0, 1.0).astype(np.float32), mask=inside.astype(bool),
                                   area_pixels=int(areas[z]), area_mm2=float(areas[z] * spacing[0] * spacing[1])))
    return samples


def paste_maps(samples: Iterable[SliceSample], maps: Iterable[np.ndarray], reference: "sitk.Image") -> "sitk.Image":
    """Maps on the crops (each (size, size)) as a float32 image with ``reference``'s geometry, 0 elsewhere.

    Each map is resized to its box and written on its slice; where boxes overlap the larger value wins.
    """
    import SimpleITK as sitk

    volume = np.zeros(sitk.GetArrayViewFromImage(reference).shape, np.float32)
    for sample, values in zip(samples, maps):
        x0, y0, x1, y1 = sample.box
        patch = resize(np.asarray(values, np.float32), sample.box_shape, order=1)
        r_lo, r_hi = max(y0, 0), min(y1, volume.shape[1])
        c_lo, c_hi = max(x0, 0), min(x1, volume.shape[2])
        if r_hi <= r_lo or c_hi <= c_lo:
            continue
        target = volume[sample.slice_index, r_lo:r_hi, c_lo:c_hi]
        np.maximum(target, patch[r_lo - y0:r_hi - y0, c_lo - x0:c_hi - x0], out=target)
    out = sitk.GetImageFromArray(volume)
    out.CopyInformation(reference)
    return out
