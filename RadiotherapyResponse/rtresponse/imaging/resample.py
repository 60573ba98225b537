"""Resampling onto an isotropic grid that keeps the image's origin and direction."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk


def resample_isotropic(image: "sitk.Image", spacing_mm: float = 1.0, interpolator: str = "nearest",
                       default: float | None = None) -> "sitk.Image":
    """``image`` on a ``spacing_mm`` isotropic grid with the same origin, direction and extent.

    ``interpolator`` is ``nearest`` (the head-and-neck paper's choice, for CT and masks alike)
    or ``linear``. Voxels outside the input get ``default`` (the image minimum when None).
    """
    import SimpleITK as sitk

    methods = {"nearest": sitk.sitkNearestNeighbor, "linear": sitk.sitkLinear}
    if interpolator not in methods:
        raise ValueError(f"interpolator must be one of {', '.join(methods)}, got '{interpolator}'")
    old_spacing = np.array(image.GetSpacing(), dtype=float)
    old_size = np.array(image.GetSize(), dtype=float)
    new_size = [max(1, int(round(n))) for n in old_size * old_spacing / spacing_mm]
    if default is None:
        default = float(sitk.GetArrayViewFromImage(image).min())
    return sitk.Resample(image, new_size, sitk.Transform(), methods[interpolator], image.GetOrigin(),
                         (spacing_mm,) * 3, image.GetDirection(), default, image.GetPixelID())
