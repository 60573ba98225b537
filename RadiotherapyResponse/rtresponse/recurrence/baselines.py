"""The paper's two clinical baselines: a percentage-of-SUVmax threshold, and the GTV itself.

SUVmax is taken inside the GTV; voxels at or above ``fraction`` x SUVmax are the predicted
relapse, minus any voxel of a brain mask (physiological uptake). The fraction is chosen by
sweeping 1-100 % on the validation patients for the best mean Dice (the paper found 38 %).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from ..errors import InputError
from ..evaluation.segmentation import dice

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

PAPER_FRACTION = 0.38
SWEEP = tuple(np.round(np.arange(1, 101) / 100, 2))


def _arrays(*images):
    """numpy arrays of numpy arrays or SimpleITK images (and the first SimpleITK image, for the output's geometry)."""
    reference = None
    arrays = []
    for image in images:
        if image is None or isinstance(image, np.ndarray):
            arrays.append(image)
            continue
        import SimpleITK as sitk

        reference = reference or image
        arrays.append(sitk.GetArrayFromImage(image))
    return arrays, reference


def suvmax_threshold(pet, gtv, fraction: float, brain=None):
    """Voxels with SUV >= ``fraction`` x (SUVmax inside ``gtv``), outside ``brain``; arrays or SimpleITK images.

    Returns the same kind as ``pet`` (a uint8 image with the PET's geometry for SimpleITK input).
    """
    if not 0 < fraction <= 1:
        raise InputError(f"fraction must be in (0, 1], got {fraction}")
    (suv, tumour, brain_mask), reference = _arrays(pet, gtv, brain)
    tumour = np.asarray(tumour) != 0
    if tumour.shape != suv.shape or (brain_mask is not None and brain_mask.shape != suv.shape):
        raise InputError("PET, GTV and brain masks must share one grid (resample the PET onto the CT first)")
    if not tumour.any():
        raise InputError("GTV mask is empty: SUVmax is taken inside it")
    prediction = suv >= fraction * float(suv[tumour].max())
    if brain_mask is not None:
        prediction &= np.asarray(brain_mask) == 0
    if reference is None:
        return prediction
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(prediction.astype(np.uint8))
    image.CopyInformation(reference)
    return image


def pet_values_warning(pet, what: str = "the PET") -> str | None:
    """One line when a PET of unknown units (array or SimpleITK image) looks like Bq/mL: its largest value is above
    :data:`~rtresponse.cohort.PLAUSIBLE_SUV_MAX`. The threshold itself is a fraction of each patient's SUVmax, so
    a constant factor does not change it; SUV values read from it and cohort-wide comparisons would be wrong."""
    from ..cohort import PLAUSIBLE_SUV_MAX

    (values,), _ = _arrays(pet)
    top = float(np.max(values)) if np.size(values) else 0.0
    if top <= PLAUSIBLE_SUV_MAX:
        return None
    return (f"{what} looks like Bq/mL, not SUV (largest value {top:.6g} > {PLAUSIBLE_SUV_MAX:g}); convert it to SUV "
            "first (rtresponse import-dicom, or Slicer's PET-DICOM/SUV tools)")


def sweep_fraction(cases: Iterable[tuple], fractions: Sequence[float] = SWEEP) -> tuple[float, "pd.DataFrame"]:
    """The fraction with the best mean Dice over ``cases`` ((pet, gtv, relapse, brain or None) each), and the curve.

    Ties go to the smallest fraction. The curve has columns ``fraction`` and ``mean_dice``.
    """
    import pandas as pd

    cases = list(cases)
    if not cases:
        raise InputError("the threshold sweep needs at least one patient")
    scores = np.zeros(len(fractions))
    for pet, gtv, relapse, brain in cases:
        (suv, tumour, reference, brain_mask), _ = _arrays(pet, gtv, relapse, brain)
        suvmax = float(suv[np.asarray(tumour) != 0].max())
        allowed = np.ones(suv.shape, bool) if brain_mask is None else np.asarray(brain_mask) == 0
        for i, fraction in enumerate(fractions):
            scores[i] += dice((suv >= fraction * suvmax) & allowed, reference)
    curve = pd.DataFrame({"fraction": list(fractions), "mean_dice": scores / len(cases)})
    return float(curve.loc[curve["mean_dice"].idxmax(), "fraction"]), curve
