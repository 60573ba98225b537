"""The head-and-neck paper's 2D network input: the axial slice with the largest GTV area.

Tanaka et al. ("Deep feature extraction"): resample CT and GTV to 1 x 1 x 1 mm (nearest
neighbour); take the axial slice with the largest GTV area; crop 100 x 100 mm centred on the
GTV's centre of gravity in that slice, re-centred on the largest tumour when the slice holds
several; set every non-GTV pixel to the minimum CT value; window level 50 HU / width 350 HU.

Beyond the paper (options, defaults reproduce the paper): ``context="keep"`` keeps the
peritumoral tissue instead of blanking it, ``top_k`` returns the k largest slices (to pool
their features), and any crop size, window or grid spacing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from .resample import resample_isotropic

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

CONTEXTS = ("mask", "keep")


@dataclass(frozen=True)
class SliceCrop:
    """One preprocessed slice and where it came from, so maps computed on it can be put back.

    ``pixels`` is (size, size) float32 in [0, 1], rows along the image's y axis and columns
    along x. ``corner_index`` is the (x, y, z) index of ``pixels[0, 0]`` on the isotropic grid
    described by ``grid_origin`` / ``grid_spacing_mm`` / ``grid_direction``.
    """

    pixels: np.ndarray
    corner_index: tuple[int, int, int]
    area_mm2: float
    grid_origin: tuple[float, float, float]
    grid_spacing_mm: float
    grid_direction: tuple[float, ...]

    @property
    def slice_index(self) -> int:
        return self.corner_index[2]

    def corner_point(self) -> tuple[float, float, float]:
        """Physical (LPS) position of the centre of ``pixels[0, 0]``."""
        direction = np.array(self.grid_direction).reshape(3, 3)
        offset = direction @ (np.array(self.corner_index, dtype=float) * self.grid_spacing_mm)
        return tuple(float(v) for v in np.array(self.grid_origin) + offset)


def window(values: np.ndarray, level: float = 50.0, width: float = 350.0) -> np.ndarray:
    """Linear window: ``level - width/2`` maps to 0, ``level + width/2`` to 1, clipped, float32."""
    if width <= 0:
        raise InputError(f"window width must be positive, got {width}")
    lower = level - width / 2.0
    return np.clip((np.asarray(values, dtype=np.float64) - lower) / width, 0.0, 1.0).astype(np.float32)


def _as_images(image, mask) -> tuple["sitk.Image", "sitk.Image"]:
    """SimpleITK images on one grid; numpy (z, y, x) arrays are taken as 1 mm isotropic."""
    import SimpleITK as sitk

    from ..imageio import align_mask

    if isinstance(image, np.ndarray):
        image = sitk.GetImageFromArray(np.asarray(image, dtype=np.float32))
    if isinstance(mask, np.ndarray):
        array = np.asarray(mask)
        if array.shape != sitk.GetArrayViewFromImage(image).shape:
            raise InputError(f"mask shape {array.shape} differs from image shape "
                             f"{sitk.GetArrayViewFromImage(image).shape}")
        mask = sitk.GetImageFromArray((array != 0).astype(np.uint8))
        mask.CopyInformation(image)
    if image.GetDimension() != 3 or mask.GetDimension() != 3:
        raise InputError("image and mask must be 3D")
    return image, align_mask(mask, image)


def _centre_of_gravity(region: np.ndarray) -> np.ndarray:
    return np.argwhere(region).mean(axis=0)  # (row, col)


def _crop_start(centre: np.ndarray, size: int) -> np.ndarray:
    return np.floor(centre - size / 2.0 + 0.5).astype(int)


def _crop(array: np.ndarray, start: np.ndarray, size: int, fill: float) -> np.ndarray:
    """``array[start:start+size]`` in both axes, ``fill`` where the window leaves the slice."""
    out = np.full((size, size), fill, dtype=array.dtype)
    lo = np.maximum(start, 0)
    hi = np.minimum(start + size, array.shape)
    if np.all(hi > lo):
        out[lo[0] - start[0]:hi[0] - start[0], lo[1] - start[1]:hi[1] - start[1]] = array[lo[0]:hi[0], lo[1]:hi[1]]
    return out


def _crop_centre(slice_mask: np.ndarray, size: int) -> np.ndarray:
    """The GTV's centre of gravity; with several tumours, the largest one's inside the first crop."""
    from scipy import ndimage

    centre = _centre_of_gravity(slice_mask)
    labels, count = ndimage.label(slice_mask, structure=np.ones((3, 3)))
    if count > 1:
        window_labels = _crop(labels, _crop_start(centre, size), size, 0)
        areas = np.bincount(window_labels.ravel(), minlength=count + 1)[1:]
        centre = _centre_of_gravity(labels == int(np.argmax(areas)) + 1)
    return centre


def tumour_slices(image, mask, size_mm: float = 100.0, level: float = 50.0, width: float = 350.0,
                  context: str = "mask", top_k: int = 1, spacing_mm: float = 1.0) -> list[SliceCrop]:
    """The ``top_k`` axial slices with the largest GTV area, preprocessed as in the paper.

    ``image`` and ``mask`` are SimpleITK images on one grid (or numpy (z, y, x) arrays taken as
    1 mm isotropic). Slices are ordered by decreasing area (ties: lower slice index first).
    """
    import SimpleITK as sitk

    if context not in CONTEXTS:
        raise InputError(f"context must be one of {', '.join(CONTEXTS)}, got '{context}'")
    if top_k < 1:
        raise InputError(f"top_k must be at least 1, got {top_k}")
    size = int(round(size_mm / spacing_mm))
    if size < 1:
        raise InputError(f"crop size {size_mm} mm is smaller than one {spacing_mm} mm pixel")
    image, mask = _as_images(image, mask)
    if not sitk.GetArrayViewFromImage(mask).any():
        raise InputError("mask is empty")
    image = resample_isotropic(image, spacing_mm, "nearest")
    mask = resample_isotropic(mask, spacing_mm, "nearest", default=0)
    values = sitk.GetArrayFromImage(image).astype(np.float32)  # (z, y, x)
    gtv = sitk.GetArrayFromImage(mask) != 0
    if not gtv.any():
        raise InputError(f"mask has no voxel left on the {spacing_mm} mm grid (tumour smaller than a voxel)")
    areas = gtv.sum(axis=(1, 2))
    order = np.argsort(-areas, kind="stable")
    chosen = [int(z) for z in order[:top_k] if areas[z] > 0]
    minimum = float(values.min())
    crops = []
    for z in chosen:
        start = _crop_start(_crop_centre(gtv[z], size), size)
        tissue = _crop(values[z], start, size, minimum)
        inside = _crop(gtv[z], start, size, False)
        pixels = window(tissue, level, width)
        if context == "mask":
            pixels[~inside] = 0.0  # the paper's "minimum CT value", exactly 0 whatever the window
        crops.append(SliceCrop(pixels=pixels, corner_index=(int(start[1]), int(start[0]), z),
                               area_mm2=float(areas[z]) * spacing_mm ** 2,
                               grid_origin=tuple(image.GetOrigin()), grid_spacing_mm=float(spacing_mm),
                               grid_direction=tuple(image.GetDirection())))
    return crops


def max_area_slice(image, mask, size_mm: float = 100.0, level: float = 50.0, width: float = 350.0,
                   context: str = "mask") -> np.ndarray:
    """The paper's network input: (size, size) float32 in [0, 1], exactly 0 outside the GTV."""
    return tumour_slices(image, mask, size_mm=size_mm, level=level, width=width, context=context)[0].pixels
