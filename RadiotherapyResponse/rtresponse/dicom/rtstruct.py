"""RTSTRUCT: the ROIs of a structure set, and their closed planar contours as masks on an image grid.

Rasterisation: each contour's points go to the continuous voxel index of the reference image; a contour must
lie on one slice (within 0.1 slice) of the image. A voxel is inside when its centre is inside the polygon or on
its outline (within 0.01 voxel) — contours traced through the centres of the boundary voxels (rt-utils,
OpenCV) give back the mask they came from, and contours on voxel edges (most TPSs) the voxels whose centres
they enclose. Several contours on one slice combine by nesting: a contour inside an odd number of others is a
hole (its outline stays inside the ROI). A contour of one or two points (OpenCV's trace of a single voxel or a
one-voxel line) marks the voxels it passes through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from . import require

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

ON_SLICE = 0.1     # a contour's distance from the nearest slice, in slices
ON_OUTLINE = 0.01  # a voxel centre this close to the outline (in voxels) is inside


@dataclass
class ROI:
    number: int
    name: str
    frame_of_reference: str = ""
    color: tuple[int, int, int] | None = None
    contours: list[np.ndarray] = field(default_factory=list)  # CLOSED_PLANAR, each (n, 3) in mm
    other_contours: int = 0  # POINT, OPEN_PLANAR, OPEN_NONPLANAR: not areas


@dataclass
class StructureSet:
    path: Path
    frame_of_reference: str
    referenced_series: list[str]
    rois: list[ROI]
    label: str = ""

    def roi(self, name: str) -> ROI:
        for roi in self.rois:
            if roi.name == name:
                return roi
        raise InputError(f"no ROI named '{name}' (ROIs: {', '.join(r.name for r in self.rois) or 'none'})",
                         path=str(self.path))


def read_rtstruct(path: str | Path) -> StructureSet:
    """The ROIs (names, frames of reference, colours, contours) of an RTSTRUCT file."""
    pydicom = require("pydicom")
    path = Path(path)
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as error:  # noqa: BLE001
        raise InputError(f"cannot read RTSTRUCT ({type(error).__name__}: {error})", path=str(path)) from None
    if str(ds.get("Modality", "")).upper() != "RTSTRUCT" or "StructureSetROISequence" not in ds:
        raise InputError("not an RTSTRUCT (no Structure Set ROI Sequence)", path=str(path))
    frames, series = [], []
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
        frames.append(str(frame.get("FrameOfReferenceUID", "")))
        for study in frame.get("RTReferencedStudySequence", []):
            for item in study.get("RTReferencedSeriesSequence", []):
                series.append(str(item.get("SeriesInstanceUID", "")))
    rois = {}
    for item in ds.StructureSetROISequence:
        number = int(item.ROINumber)
        rois[number] = ROI(number, str(item.get("ROIName", f"ROI {number}")).strip(),
                           str(item.get("ReferencedFrameOfReferenceUID", "")))
    for item in ds.get("ROIContourSequence", []):
        roi = rois.get(int(item.get("ReferencedROINumber", -1)))
        if roi is None:
            continue
        if "ROIDisplayColor" in item:
            roi.color = tuple(int(c) for c in item.ROIDisplayColor)
        for contour in item.get("ContourSequence", []):
            kind = str(contour.get("ContourGeometricType", "")).upper()
            data = contour.get("ContourData")
            if kind != "CLOSED_PLANAR" or not data:
                roi.other_contours += 1
                continue
            points = np.asarray([float(v) for v in data], dtype=np.float64)
            if points.size % 3:  # one or two points are kept: a contour around a single voxel or a thin line
                raise InputError(f"ROI '{roi.name}': a contour has {points.size} coordinates (not 3 per point)",
                                 path=str(path))
            roi.contours.append(points.reshape(-1, 3))
    frame = str(ds.get("FrameOfReferenceUID", "")) or (frames[0] if frames else "")
    return StructureSet(path, frame, series, list(rois.values()), label=str(ds.get("StructureSetLabel", "")))


def rasterise(roi: ROI, reference: "sitk.Image", where: str = "") -> "sitk.Image":
    """``roi``'s closed planar contours as a uint8 mask on ``reference``'s grid."""
    import SimpleITK as sitk

    size = reference.GetSize()
    mask = np.zeros((size[2], size[1], size[0]), np.uint8)
    if not roi.contours:
        raise InputError(f"ROI '{roi.name}' has no closed contours" + (
            f" ({roi.other_contours} point or open contour(s))" if roi.other_contours else ""), path=where or None)
    origin = np.array(reference.GetOrigin())
    matrix = np.array(reference.GetDirection()).reshape(3, 3) * np.array(reference.GetSpacing())
    inverse = np.linalg.inv(matrix)
    slices: dict[int, list[np.ndarray]] = {}
    for points in roi.contours:
        index = (points - origin) @ inverse.T  # continuous (x, y, z) voxel index
        z = index[:, 2]
        k = int(round(float(z.mean())))
        if np.abs(z - k).max() > ON_SLICE:
            raise InputError(f"ROI '{roi.name}': a contour at {points[0].round(2).tolist()} mm is not on a slice of "
                             "the referenced image (not parallel to its slices, or between two)", path=where or None)
        if not 0 <= k < size[2]:
            raise InputError(f"ROI '{roi.name}': a contour at {points[0].round(2).tolist()} mm lies outside the "
                             "referenced image", path=where or None)
        slices.setdefault(k, []).append(index[:, :2])
    for k, polygons in slices.items():
        mask[k] = _fill_slice(polygons, (size[1], size[0]))
    if not mask.any():
        raise InputError(f"ROI '{roi.name}' encloses no voxel centre of the referenced image", path=where or None)
    image = sitk.GetImageFromArray(mask)
    image.CopyInformation(reference)
    return image


def _fill_slice(polygons: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Even-odd combination of the polygons (x, y in voxel index units) on a (rows, columns) grid."""
    depth = [sum(_contains(other, polygon[0]) for j, other in enumerate(polygons) if j != i)
             for i, polygon in enumerate(polygons)]
    count = np.zeros(shape, np.int32)
    for polygon, level in zip(polygons, depth):
        inside, outline = _polygon(polygon, shape)
        count += (inside | outline) if level % 2 == 0 else (inside & ~outline)
    return (count % 2).astype(np.uint8)


def _contains(polygon: np.ndarray, point: np.ndarray) -> bool:
    x, y = point
    xs, ys = polygon[:, 0], polygon[:, 1]
    xn, yn = np.roll(xs, -1), np.roll(ys, -1)
    crossing = (ys <= y) != (yn <= y)
    with np.errstate(divide="ignore", invalid="ignore"):
        at = xs + (y - ys) * (xn - xs) / (yn - ys)
    return bool(np.count_nonzero(crossing & (at > x)) % 2)


def _polygon(polygon: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(centres strictly inside by the even-odd rule, centres within ON_OUTLINE of the outline)."""
    rows, columns = shape
    inside = np.zeros(shape, bool)
    outline = np.zeros(shape, bool)
    xs, ys = polygon[:, 0], polygon[:, 1]
    xn, yn = np.roll(xs, -1), np.roll(ys, -1)
    low = max(0, int(np.ceil(ys.min() - ON_OUTLINE)))
    high = min(rows - 1, int(np.floor(ys.max() + ON_OUTLINE)))
    grid = np.arange(columns, dtype=np.float64)
    for y in range(low, high + 1):
        crossing = (ys <= y) != (yn <= y)
        if crossing.any():
            at = np.sort(xs[crossing] + (y - ys[crossing]) * (xn[crossing] - xs[crossing]) / (yn[crossing] - ys[crossing]))
            for a, b in zip(at[0::2], at[1::2]):
                inside[y] |= (grid > a) & (grid < b)
    # the outline: voxel centres near each edge
    for x0, y0, x1, y1 in zip(xs, ys, xn, yn):
        c0, c1 = int(np.ceil(min(x0, x1) - ON_OUTLINE)), int(np.floor(max(x0, x1) + ON_OUTLINE))
        r0, r1 = int(np.ceil(min(y0, y1) - ON_OUTLINE)), int(np.floor(max(y0, y1) + ON_OUTLINE))
        c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, columns - 1), min(r1, rows - 1)
        if c1 < c0 or r1 < r0:
            continue
        cy, cx = np.mgrid[r0:r1 + 1, c0:c1 + 1].astype(np.float64)
        dx, dy = x1 - x0, y1 - y0
        length2 = dx * dx + dy * dy
        t = np.clip(((cx - x0) * dx + (cy - y0) * dy) / length2, 0, 1) if length2 else np.zeros_like(cx)
        near = np.hypot(cx - (x0 + t * dx), cy - (y0 + t * dy)) <= ON_OUTLINE
        outline[r0:r1 + 1, c0:c1 + 1] |= near
    return inside, outline
