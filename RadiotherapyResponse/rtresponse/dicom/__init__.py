"""DICOM in and out: a cohort from a DICOM export (CT/MR/PET series + RTSTRUCT), PET in SUV, masks back as
RTSTRUCT and DICOM-SEG that reference the planning CT.

Libraries (the optional extra ``rtresponse[dicom]``, imported only inside the functions that need them):

- pydicom: reading every file (index, series, RTSTRUCT, PET tags) and writing image series;
- rt-utils: writing RTSTRUCT (a mask per ROI on the planning CT series, contours per slice referencing its
  SOP instances);
- highdicom: writing and reading DICOM-SEG.

RTSTRUCT contours are rasterised here (:mod:`.rtstruct`): rt-utils' reader rounds each vertex to the
nearest voxel and finds contours only through the optional Contour Image Sequence, which is wrong for
sub-voxel TPS contours; the tests check this rasteriser against rt-utils' reader on rt-utils' contours.
See ``docs/dicom.md``.
"""

from __future__ import annotations

from ..errors import RTResponseError

EXTRA = "pip install 'rtresponse[dicom]'"
PACKAGES = {"pydicom": "pydicom", "rt_utils": "rt-utils", "highdicom": "highdicom"}


class MissingPackage(RTResponseError):
    """An optional DICOM package is not installed."""


def require(module: str):
    """Import ``module`` (pydicom, rt_utils, highdicom) or raise one clear line saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingPackage(f"{PACKAGES.get(module, module)} is not installed; DICOM import and export need "
                             f"it: {EXTRA}") from None
