"""A DICOM image series (one slice per file) as a SimpleITK image with its patient geometry.

Slices are sorted along the normal of Image Orientation (Patient); the origin is the first slice's Image
Position (Patient), the spacing Pixel Spacing (column spacing along x, row spacing along y) and the distance
between slices. Every slice is rescaled with its own Rescale Slope/Intercept (PET scanners write one per
slice). Refused with a message naming the series: mixed orientations or sizes, two slices at one position,
uneven slice spacing (a missing slice), a tilted gantry, multi-frame files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from . import require

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

    from .index import Series

SPACING_TOLERANCE = 0.01  # relative difference allowed between slice gaps
POSITION_TOLERANCE = 0.01  # mm: in-plane shift of a slice (a tilted gantry shifts slices)


@dataclass
class Volume:
    """A read series: the image, its sorted headers (no pixel data) and the SOP instance UIDs in slice order."""

    image: "sitk.Image"
    headers: list
    sop_uids: list[str]


def _vector(value, count: int, what: str, where: str) -> np.ndarray:
    try:
        vector = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what} is missing or not numeric", path=where) from None
    if vector.shape != (count,) or not np.all(np.isfinite(vector)):
        raise InputError(f"{what} must hold {count} numbers, got {value!r}", path=where)
    return vector


def slice_geometry(dataset, where: str):
    """(row direction, column direction, normal, position, (column spacing, row spacing)) of one slice."""
    orientation = _vector(dataset.get("ImageOrientationPatient"), 6, "Image Orientation (Patient)", where)
    position = _vector(dataset.get("ImagePositionPatient"), 3, "Image Position (Patient)", where)
    spacing = _vector(dataset.get("PixelSpacing"), 2, "Pixel Spacing", where)
    row, column = orientation[:3], orientation[3:]
    if abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(column) - 1) > 1e-3 or abs(row @ column) > 1e-3:
        raise InputError(f"Image Orientation (Patient) {orientation.tolist()} is not two unit, orthogonal vectors",
                         path=where)
    return row, column, np.cross(row, column), position, (spacing[1], spacing[0])


def read_series(series: "Series", pixels: bool = True) -> Volume:
    """Read ``series`` (an :class:`~rtresponse.dicom.index.Series`) as a float32 (PET) or int16/float image."""
    pydicom = require("pydicom")
    import SimpleITK as sitk

    where = f"{series.label}, {series.files[0].parent}"
    if series.multiframe:
        raise InputError("multi-frame (enhanced) image files are not supported; export the series as one file "
                         "per slice", path=where)
    if not series.files:
        raise InputError("series has no files", path=where)
    datasets = []
    for path in series.files:
        try:
            datasets.append(pydicom.dcmread(path, stop_before_pixels=not pixels, force=True))
        except Exception as error:  # noqa: BLE001
            raise InputError(f"cannot read DICOM file ({type(error).__name__}: {error})", path=str(path)) from None
    geometry = [slice_geometry(ds, str(path)) for ds, path in zip(datasets, series.files)]
    row, column, normal, _, spacing = geometry[0]
    size = (int(datasets[0].get("Columns", 0)), int(datasets[0].get("Rows", 0)))
    for (r, c, _, _, s), ds, path in zip(geometry, datasets, series.files):
        if not (np.allclose(r, row, atol=1e-4) and np.allclose(c, column, atol=1e-4)):
            raise InputError("slices with different orientations in one series", path=str(path))
        if not np.allclose(s, spacing, atol=1e-4) or (int(ds.get("Columns", 0)), int(ds.get("Rows", 0))) != size:
            raise InputError("slices with different sizes or pixel spacings in one series", path=str(path))
    heights = np.array([g[3] @ normal for g in geometry])
    order = np.argsort(heights, kind="stable")
    heights = heights[order]
    datasets = [datasets[i] for i in order]
    positions = [geometry[i][3] for i in order]
    files = [series.files[i] for i in order]
    gaps = np.diff(heights)
    if len(gaps) and gaps.min() < 1e-3:
        twin = int(np.argmin(gaps))
        raise InputError(f"two slices at the same position ({files[twin].name}, {files[twin + 1].name}); the folder "
                         "may hold the series twice", path=where)
    if len(gaps) and (gaps.max() - gaps.min()) > SPACING_TOLERANCE * np.median(gaps):
        raise InputError(f"uneven slice spacing ({gaps.min():.3g} to {gaps.max():.3g} mm): a slice is missing or "
                         "the series mixes acquisitions", path=where)
    for position, path in zip(positions, files):
        shift = position - positions[0]
        shift = shift - (shift @ normal) * normal
        if np.linalg.norm(shift) > POSITION_TOLERANCE:
            raise InputError("slices are shifted in-plane (a tilted gantry); resample the series first", path=str(path))
    slice_spacing = float(np.median(gaps)) if len(gaps) else float(datasets[0].get("SliceThickness") or 1.0)
    if pixels:
        planes = []
        for ds, path in zip(datasets, files):
            try:
                plane = ds.pixel_array.astype(np.float64)
            except Exception as error:  # noqa: BLE001 - a compressed file without its decoder, truncated data
                raise InputError(f"cannot decode the pixel data ({type(error).__name__}: {error})",
                                 path=str(path)) from None
            if plane.ndim != 2:
                raise InputError(f"expected one grey-level plane per file, got pixel data of shape {plane.shape}",
                                 path=str(path))
            planes.append(plane * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0))
        voxels = np.stack(planes)
        integral = series.modality == "CT" and np.allclose(voxels, np.round(voxels)) and \
            voxels.min() >= -32768 and voxels.max() <= 32767
        voxels = voxels.astype(np.int16 if integral else np.float32)
    else:
        voxels = np.zeros((len(datasets), size[1], size[0]), np.uint8)
    image = sitk.GetImageFromArray(voxels)
    image.SetOrigin(tuple(float(v) for v in positions[0]))
    image.SetSpacing((float(spacing[0]), float(spacing[1]), slice_spacing))
    image.SetDirection(tuple(float(v) for v in np.column_stack([row, column, normal]).ravel()))
    headers = datasets if not pixels else [_without_pixels(ds) for ds in datasets]
    return Volume(image, headers, [str(ds.SOPInstanceUID) for ds in datasets])


def _without_pixels(dataset):
    if "PixelData" in dataset:
        del dataset.PixelData
    return dataset
