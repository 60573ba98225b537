"""PET/CT input of the recurrence U-Net (Kutnár et al.): PET on the CT grid, normalised, a box around the GTV.

CT clipped to [-1024, 1024] HU and mapped to [-1, 1]; PET resampled onto the CT grid (linear)
and z-scored per patient; a box (default 160 x 224 x 128 voxels in x, y, z) centred on the GTV's
centre of mass, padded where it leaves the image. The :class:`Crop` keeps where the box lies on
the CT grid, so a prediction pastes back onto the CT exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

    from ..cohort import Cohort

BOX_XYZ = (160, 224, 128)  # the paper's box, voxels in x, y, z
CT_RANGE_HU = (-1024.0, 1024.0)


@dataclass(frozen=True)
class Crop:
    """A box of ``box_zyx`` voxels whose first voxel is ``start_zyx`` on a grid of ``shape_zyx`` (may overhang)."""

    start_zyx: tuple[int, int, int]
    box_zyx: tuple[int, int, int]
    shape_zyx: tuple[int, int, int]

    def _windows(self):
        start = np.array(self.start_zyx)
        lo = np.maximum(start, 0)
        hi = np.minimum(start + np.array(self.box_zyx), self.shape_zyx)
        grid = tuple(slice(a, b) for a, b in zip(lo, hi))
        box = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start))
        return grid, box

    def extract(self, array: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """The box cut from a grid-shaped array, ``fill`` where it overhangs."""
        out = np.full(self.box_zyx, fill, dtype=array.dtype)
        grid, box = self._windows()
        out[box] = array[grid]
        return out

    def paste(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """A grid-shaped array holding the box's ``values`` (the overhang dropped), ``fill`` elsewhere."""
        if tuple(values.shape) != tuple(self.box_zyx):
            raise InputError(f"values of shape {values.shape} do not fit the box {self.box_zyx}")
        out = np.full(self.shape_zyx, fill, dtype=values.dtype)
        grid, box = self._windows()
        out[grid] = values[box]
        return out


@dataclass
class Sample:
    """One patient's network input: ``image`` (2, z, y, x) CT and PET channels; ``label`` the relapse (or None)."""

    patient_id: str
    image: np.ndarray
    gtv: np.ndarray
    crop: Crop
    label: np.ndarray | None = None
    pet_suv: np.ndarray | None = field(default=None, repr=False)  # SUV in the box, for the baselines
    brain: np.ndarray | None = field(default=None, repr=False)
    spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0)
    warnings: list[str] = field(default_factory=list)  # e.g. a PET that looks like Bq/mL (Cohort.pet_warning)


def normalise_ct(hu: np.ndarray) -> np.ndarray:
    low, high = CT_RANGE_HU
    return (np.clip(hu, low, high) / high).astype(np.float32)


def zscore_pet(suv: np.ndarray) -> tuple[np.ndarray, float, float]:
    mean, std = float(suv.mean()), float(suv.std())
    std = std if std > 0 else 1.0
    return ((suv - mean) / std).astype(np.float32), mean, std


def pet_on_ct(pet: "sitk.Image", ct: "sitk.Image") -> "sitk.Image":
    """PET resampled onto the CT grid (linear; 0 SUV outside the PET)."""
    import SimpleITK as sitk

    return sitk.Resample(pet, ct, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def box_around(mask: np.ndarray, box_xyz=BOX_XYZ) -> Crop:
    """The box centred on the mask's centre of mass (voxel centre rounded down for even sizes)."""
    if not mask.any():
        raise InputError("GTV mask is empty: the box is centred on it")
    box_zyx = tuple(int(v) for v in box_xyz[::-1])
    centre = np.round(np.argwhere(mask).mean(axis=0)).astype(int)
    start = tuple(int(c - b // 2) for c, b in zip(centre, box_zyx))
    return Crop(start, box_zyx, tuple(mask.shape))


def prepare(ct: "sitk.Image", pet: "sitk.Image", gtv: "sitk.Image", label: "sitk.Image | None" = None,
            brain: "sitk.Image | None" = None, box_xyz=BOX_XYZ, patient_id: str = "") -> Sample:
    """The network input of one patient; masks must lie on the CT grid (see ``Cohort.read_mask``)."""
    import SimpleITK as sitk

    def array(image):
        return None if image is None else sitk.GetArrayFromImage(image)

    hu = array(ct).astype(np.float32)
    suv = array(pet_on_ct(pet, ct))
    gtv_voxels = array(gtv) != 0
    for name, mask in (("GTV", gtv_voxels), ("relapse", array(label)), ("brain", array(brain))):
        if mask is not None and mask.shape != hu.shape:
            raise InputError(f"{name} mask shape {mask.shape} differs from the CT's {hu.shape}")
    crop = box_around(gtv_voxels, box_xyz)
    pet_z, mean, std = zscore_pet(suv)
    channels = np.stack([crop.extract(normalise_ct(hu), fill=-1.0),
                         crop.extract(pet_z, fill=(0.0 - mean) / std)])  # padding: air, SUV 0
    return Sample(patient_id=patient_id, image=channels, gtv=crop.extract(gtv_voxels, False), crop=crop,
                  label=None if label is None else crop.extract(array(label) != 0, False),
                  pet_suv=crop.extract(suv, 0.0), brain=None if brain is None else crop.extract(array(brain) != 0, False),
                  spacing_zyx=tuple(float(s) for s in ct.GetSpacing()[::-1]))


def prepare_patient(cohort: "Cohort", patient_id: str, ct: str = "CT", pet: str = "PET", gtv: str = "GTVp",
                    label: str | None = "relapse", brain: str | None = None, box_xyz=BOX_XYZ) -> Sample:
    """:func:`prepare` for a manifest patient; an absent relapse mask (a patient who did not recur) is empty.

    ``Sample.warnings`` holds :meth:`~rtresponse.cohort.Cohort.pet_warning` when the PET looks like Bq/mL."""
    import SimpleITK as sitk

    image = cohort.read_image(patient_id, ct)

    def mask(name):
        if name is None:
            return None
        if not cohort.patient(patient_id).masks.get(name):
            empty = sitk.Image(image.GetSize(), sitk.sitkUInt8)
            empty.CopyInformation(image)
            return empty
        return cohort.read_mask(patient_id, name, image=ct, reference=image)

    pet_image = cohort.read_image(patient_id, pet)
    try:
        sample = prepare(image, pet_image, mask(gtv), mask(label), mask(brain), box_xyz, patient_id)
    except InputError as error:
        raise InputError(error.problem, patient=patient_id) from None
    warning = cohort.pet_warning(patient_id, pet, pet_image)
    if warning:
        sample.warnings.append(warning)
    return sample


def prediction_to_image(values: np.ndarray, sample: Sample, reference: "sitk.Image", fill: float = 0.0) -> "sitk.Image":
    """Box values (e.g. the probability map) as an image with exactly ``reference``'s (the CT's) geometry."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(sample.crop.paste(np.asarray(values), fill))
    image.CopyInformation(reference)
    return image
