"""Plausible alternative delineations of one tumour, for feature-robustness (ICC) analysis.

Radiomic features that change a lot when the tumour is delineated slightly differently are not
worth modelling. Zwanenburg et al. (2019, "Assessing robustness of radiomic features by image
perturbation", Sci Rep 9:614) measure this by computing every feature on several perturbed
versions of the same region of interest and keeping features with a high intraclass correlation.
:func:`perturbed_masks` produces those versions; :func:`dice` compares two masks.

Perturbation kinds
------------------
``"erode"`` / ``"dilate"``
    Binary erosion / dilation with a ball whose physical radius is about the smallest voxel
    spacing: one voxel along the finest axes, and along a thick-slice axis only as many voxels as
    that radius covers (usually none). The two finest axes always get at least one voxel.
    These two are deterministic, so with ``n`` larger than ``len(kinds)`` they repeat.
``"contour"``
    Contour randomisation: the mask's signed distance map (mm, negative inside, zero level half-way
    between inside and outside voxels) plus a smooth random field of standard deviation
    ``contour_noise_mm`` is thresholded at 0. The outline moves in and out by about
    ``contour_noise_mm`` in smooth lumps (Gaussian correlation of 3 mm, or twice the smallest
    spacing if larger). The field's mean over the voxels along the outline is subtracted, so a draw
    reshapes the outline rather than growing or shrinking it as a whole (that is what erode and
    dilate do), and the volume stays about the same.
``"translate"``
    The mask shifted against the image, as a slightly different delineation or registration gives.
    A shift of at most ``max_shift_mm`` is drawn uniformly along each image axis and applied with
    nearest-neighbour resampling on the same grid, which moves the mask by the rounded number of
    voxels. Draws that would move no voxel are redrawn, unless ``max_shift_mm`` is below half of
    every voxel spacing (then no shift can move a voxel and the mask comes back unchanged).

Masks that would become empty
-----------------------------
Draw ``i`` (1-based) uses ``kinds[(i - 1) % len(kinds)]``. When that perturbation would leave no
voxel (erosion of a thin or tiny mask, a contour draw that swallows a one-voxel mask, a shift off
the grid), it is skipped and the next kind in ``kinds`` is tried for the same draw, cycling for up
to three rounds; the name records the kind actually used. If no requested kind yields a non-empty
mask, :class:`~rtresponse.errors.InputError` says the mask is too small: an unperturbed copy is
never substituted for a perturbation that failed. (Perturbations of a mask of a few voxels can
still come back unchanged, e.g. a contour draw on a one-voxel mask; only emptiness is skipped.)
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

KINDS = ("erode", "dilate", "contour", "translate")
_ROUNDS = 3                       # rounds over ``kinds`` before a draw gives up
_MIN_CORRELATION_MM = 3.0         # smoothing (Gaussian sigma) of the contour noise field
_TRANSLATE_REDRAWS = 1000


def perturbed_masks(mask: "sitk.Image", image: "sitk.Image | None" = None, n: int = 10,
                    random_state: int | None = 0, kinds: Sequence[str] = KINDS,
                    max_shift_mm: float = 1.0, contour_noise_mm: float = 1.0) -> list[tuple[str, "sitk.Image"]]:
    """``n`` perturbed versions of ``mask`` as ``(name, mask)`` pairs.

    Parameters
    ----------
    mask:
        3D mask; every non-zero voxel is tumour. Not modified.
    image:
        Optional image the mask belongs to. It must share the mask's grid (size, spacing, origin,
        direction), otherwise InputError. It is only validated: it is accepted so callers can pass
        (image, mask) pairs uniformly, and for future intensity-based perturbations.
    n:
        Number of perturbed masks, at least 1.
    random_state:
        Seed of the numpy Generator (``None``: fresh entropy). The same seed gives the same masks.
    kinds:
        Perturbation kinds used in turn, any of ``"erode"``, ``"dilate"``, ``"contour"``,
        ``"translate"`` (see the module docstring).
    max_shift_mm:
        Largest translation along each image axis, in mm (``"translate"``).
    contour_noise_mm:
        Standard deviation of the boundary displacement, in mm (``"contour"``).

    Returns
    -------
    list of ``(name, mask)``: names are the kind plus the draw number ("erode-1", "dilate-2",
    "contour-3", "translate-4", ...), unique within the list. Each mask is a non-empty uint8 0/1
    image on exactly the input grid. A draw whose perturbation would empty the mask moves on to the
    next kind (see "Masks that would become empty" in the module docstring).
    """
    import SimpleITK as sitk

    _check_3d(mask, "mask")
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 1:
        raise InputError(f"n must be a whole number of perturbations of at least 1, got {n!r}")
    kinds = _check_kinds(kinds)
    max_shift_mm = _check_non_negative(max_shift_mm, "max_shift_mm")
    contour_noise_mm = _check_non_negative(contour_noise_mm, "contour_noise_mm")
    if image is not None:
        _check_3d(image, "image")
        from ..imageio import describe_geometry, same_geometry

        if not same_geometry(mask, image):
            raise InputError(f"mask and image grids differ (mask: {describe_geometry(mask)}; "
                             f"image: {describe_geometry(image)})")

    original = sitk.GetArrayFromImage(mask) != 0  # a copy, (z, y, x)
    if not original.any():
        raise InputError("mask is empty")
    spacing_zyx = np.array(mask.GetSpacing(), float)[::-1]
    rng = np.random.default_rng(random_state)

    deterministic: dict[str, np.ndarray] = {}
    contour = None
    results: list[tuple[str, sitk.Image]] = []
    for draw in range(1, int(n) + 1):
        start = (draw - 1) % len(kinds)
        for attempt in range(_ROUNDS * len(kinds)):
            kind = kinds[(start + attempt) % len(kinds)]
            if kind in ("erode", "dilate"):
                if kind not in deterministic:
                    deterministic[kind] = _morphology(original, spacing_zyx, kind)
                perturbed = deterministic[kind]
            elif kind == "contour":
                if contour is None:
                    contour = _ContourRandomiser(original, spacing_zyx, contour_noise_mm)
                perturbed = contour(rng)
            else:
                perturbed = _translate(original, spacing_zyx, max_shift_mm, rng)
            if perturbed.any():
                break
        else:
            raise InputError(f"mask of {int(original.sum())} voxel(s) is too small to perturb: every "
                             f"requested perturbation ({', '.join(dict.fromkeys(kinds))}) empties it")
        out = sitk.GetImageFromArray(perturbed.astype(np.uint8))
        out.CopyInformation(mask)
        results.append((f"{kind}-{draw}", out))
    return results


def dice(a: "sitk.Image", b: "sitk.Image") -> float:
    """Dice overlap ``2|A∩B| / (|A| + |B|)`` of two masks on the same grid (non-zero = inside).

    Two empty masks agree perfectly: 1.0.
    """
    import SimpleITK as sitk

    for name, m in (("first mask", a), ("second mask", b)):
        if not isinstance(m, sitk.Image):
            raise InputError(f"{name} must be a SimpleITK image, got {type(m).__name__}")
    from ..imageio import describe_geometry, same_geometry

    if not same_geometry(a, b):
        raise InputError(f"mask grids differ ({describe_geometry(a)} vs {describe_geometry(b)})")
    va = sitk.GetArrayViewFromImage(a) != 0
    vb = sitk.GetArrayViewFromImage(b) != 0
    total = int(va.sum()) + int(vb.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(va, vb).sum()) / total


# --------------------------------------------------------------------------- validation

def _check_3d(image, what: str) -> None:
    import SimpleITK as sitk

    if not isinstance(image, sitk.Image):
        raise InputError(f"{what} must be a SimpleITK image, got {type(image).__name__}")
    if image.GetDimension() != 3:
        raise InputError(f"{what} must be a 3D image, got {image.GetDimension()}D")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{what} must be a scalar image, got {image.GetNumberOfComponentsPerPixel()} "
                         "components per voxel")


def _check_kinds(kinds) -> tuple[str, ...]:
    if isinstance(kinds, str):
        kinds = (kinds,)
    try:
        kinds = tuple(kinds)
    except TypeError:
        raise InputError(f"kinds must be a sequence of perturbation kinds ({', '.join(KINDS)}), "
                         f"got {kinds!r}") from None
    if not kinds:
        raise InputError(f"kinds is empty; known kinds: {', '.join(KINDS)}")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise InputError(f"unknown perturbation kind(s) {', '.join(repr(k) for k in unknown)}; "
                         f"known kinds: {', '.join(KINDS)}")
    return kinds


def _check_non_negative(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < 0:
        raise InputError(f"{name} must be a finite number of mm >= 0, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- perturbations

def _crop(voxels: np.ndarray, pad_zyx) -> tuple[slice, ...]:
    """The mask's bounding box grown by ``pad_zyx`` voxels per axis, clipped to the grid."""
    box = []
    for axis, pad in enumerate(pad_zyx):
        others = tuple(a for a in range(voxels.ndim) if a != axis)
        hits = np.flatnonzero(voxels.any(axis=others))
        lo = max(0, int(hits[0]) - int(pad))
        hi = min(voxels.shape[axis], int(hits[-1]) + int(pad) + 1)
        box.append(slice(lo, hi))
    return tuple(box)


def _as_image(voxels: np.ndarray, spacing_zyx: np.ndarray, dtype=np.uint8) -> "sitk.Image":
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(voxels.astype(dtype))
    img.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    return img


def _paste(shape, box, sub: np.ndarray) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    out[box] = sub
    return out


def morphology_radius(spacing_xyz: Sequence[float]) -> tuple[int, ...]:
    """Ball radius in voxels (x, y, z) whose physical radius is about the smallest spacing.

    Each axis gets ``round(min spacing / spacing)`` voxels; the two finest axes get at least one.
    """
    spacing = np.asarray(spacing_xyz, float)
    radius = np.rint(spacing.min() / spacing).astype(int)
    for axis in np.argsort(spacing, kind="stable")[:2]:
        radius[axis] = max(1, radius[axis])
    return tuple(int(r) for r in radius)


def _morphology(original: np.ndarray, spacing_zyx: np.ndarray, kind: str) -> np.ndarray:
    import SimpleITK as sitk

    radius_xyz = morphology_radius(spacing_zyx[::-1])
    box = _crop(original, [r + 1 for r in radius_xyz[::-1]])
    sub = _as_image(original[box], spacing_zyx)
    if kind == "erode":
        result = sitk.BinaryErode(sub, kernelRadius=radius_xyz, kernelType=sitk.sitkBall,
                                  backgroundValue=0.0, foregroundValue=1.0, boundaryToForeground=True)
    else:
        result = sitk.BinaryDilate(sub, kernelRadius=radius_xyz, kernelType=sitk.sitkBall,
                                   backgroundValue=0.0, foregroundValue=1.0, boundaryToForeground=False)
    return _paste(original.shape, box, sitk.GetArrayFromImage(result) != 0)


def _signed_distance(voxels: np.ndarray, spacing_zyx: np.ndarray) -> np.ndarray:
    """Signed distance in mm, negative inside, with the zero level half-way between inside and
    outside voxels (so thresholding it at 0 gives back the mask, even a one-voxel mask)."""
    import SimpleITK as sitk

    def maurer(v):
        return sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(
            _as_image(v, spacing_zyx), insideIsPositive=False, squaredDistance=False, useImageSpacing=True))

    return 0.5 * (maurer(voxels) - maurer(~voxels))


class _ContourRandomiser:
    """Contour randomisation of one mask; the distance map and the noise scale are computed once."""

    def __init__(self, original: np.ndarray, spacing_zyx: np.ndarray, noise_mm: float):
        self.original = original
        self.spacing = spacing_zyx
        self.noise_mm = noise_mm
        if noise_mm == 0:
            return
        self.sigma = max(_MIN_CORRELATION_MM, 2.0 * float(spacing_zyx.min()))
        pad_mm = 4.0 * noise_mm + 2.0 * self.sigma
        self.box = _crop(original, np.ceil(pad_mm / spacing_zyx).astype(int) + 1)
        self.distance = _signed_distance(original[self.box], spacing_zyx)
        # voxels on either side of the outline: where the mean displacement is measured
        self.band = np.abs(self.distance) <= 0.5 * float(spacing_zyx.max()) + 1e-6
        # the variance of smoothed unit white noise is the sum of the squared kernel weights
        half = np.ceil(4 * self.sigma / spacing_zyx).astype(int) + 1
        impulse = np.zeros(tuple(2 * half + 1), np.float32)
        impulse[tuple(half)] = 1.0
        self.scale = math.sqrt(float((self._smooth(impulse).astype(float) ** 2).sum()))

    def _smooth(self, field: np.ndarray) -> np.ndarray:
        import SimpleITK as sitk

        width = int(2 * math.ceil(4 * self.sigma / self.spacing.min()) + 3)
        return sitk.GetArrayFromImage(sitk.DiscreteGaussian(
            _as_image(field, self.spacing, np.float32), variance=[self.sigma ** 2] * 3,
            maximumKernelWidth=width, maximumError=0.01, useImageSpacing=True))

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        if self.noise_mm == 0:
            return self.original.copy()
        white = rng.standard_normal(self.distance.shape).astype(np.float32)
        noise = self._smooth(white).astype(float) / self.scale
        # a net shift of the whole outline is what erode/dilate do; keep only the reshaping
        noise -= noise[self.band].mean()
        return _paste(self.original.shape, self.box, self.distance + self.noise_mm * noise < 0)


def _translate(original: np.ndarray, spacing_zyx: np.ndarray, max_shift_mm: float,
               rng: np.random.Generator) -> np.ndarray:
    """Nearest-neighbour resampling of the mask shifted by a random vector on the same grid:
    output voxel i takes input voxel i - round(shift / spacing), outside the grid is background."""
    can_move = max_shift_mm / spacing_zyx.min() > 0.5
    for _ in range(_TRANSLATE_REDRAWS):
        shift_mm = rng.uniform(-max_shift_mm, max_shift_mm, size=3)
        voxels = np.rint(shift_mm / spacing_zyx).astype(int)
        if voxels.any() or not can_move:
            break
    out = np.zeros_like(original)
    src, dst = [], []
    for v, size in zip(voxels, original.shape):
        if abs(v) >= size:
            return out
        src.append(slice(max(0, -v), size - max(0, v)))
        dst.append(slice(max(0, v), size - max(0, -v)))
    out[tuple(dst)] = original[tuple(src)]
    return out
