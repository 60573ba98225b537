"""A seeded, fast synthetic head-and-neck cohort with a planted, tunable image signal.

Each patient has a planning CT (HU), an FDG-PET (SUV, coarser grid), T1- and T2-weighted MR
(co-registered to the CT), primary and nodal GTVs (one ``.seg.nrrd``), a boost CT with the
shrunken primary GTV two weeks into treatment, a relapse mask for patients who recur, clinical
factors with a few missing values, and outcomes.

The signal: two latent per-patient scores drive both images and outcomes.

``z_het`` (intra-tumour heterogeneity)
    sets the amplitude of the tumour texture on CT and MR; it drives ``outcome_response``
    (non-response when high), the early regression rate (boost GTV), and residual tumour
    after CCRT / IC+CCRT (``outcome_residual_CCRT``, ``outcome_residual_IC_CCRT``; the regimen
    the patient received is ``clin_regimen`` and its outcome ``outcome_residual``).
``z_hot`` (metabolic hot spot)
    sets the SUV of a hot sub-volume inside the GTV; it drives ``outcome_recurrence``, and the
    relapse volume grows from that hot sub-volume.

``signal`` scales how strongly the latents act on the outcomes (0: outcomes are independent
of the images; 1: default; larger: easier). The latents are written to ``latent.csv`` beside
the manifest (not a manifest column) so tests can check what was planted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import write_text
from ..imageio import write_image, write_segmentation

CT_SPACING = (2.0, 2.0, 3.0)        # mm (x, y, z)
PET_SPACING = (4.0, 4.0, 4.0)
DEFAULT_SIZE = (64, 64, 24)         # voxels (x, y, z): 128 x 128 x 72 mm


@dataclass(frozen=True)
class Patient:
    patient_id: str
    z_het: float
    z_hot: float
    row: dict


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _gaussian(array: np.ndarray, sigma_vox: float) -> np.ndarray:
    """Gaussian smoothing with a sigma in voxels."""
    import SimpleITK as sitk

    smoothed = sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(array.astype(np.float64)), float(sigma_vox))
    return sitk.GetArrayFromImage(smoothed)


def _texture(rng, shape, sigma_vox=1.2):
    noise = _gaussian(rng.standard_normal(shape), sigma_vox)
    return noise / (noise.std() + 1e-12)


def _ellipsoid(shape, centre_mm, radii_mm, spacing, rng=None, irregularity=0.0):
    """Boolean (z, y, x) mask of an ellipsoid in mm coordinates, optionally with a lumpy surface."""
    z, y, x = np.indices(shape, dtype=np.float64)
    coords = [x * spacing[0], y * spacing[1], z * spacing[2]]
    r2 = sum(((c - c0) / r) ** 2 for c, c0, r in zip(coords, centre_mm, radii_mm))
    if irregularity and rng is not None:
        r2 = r2 * (1 + irregularity * _texture(rng, shape, sigma_vox=2.5))
    return r2 <= 1.0


def _image(voxels: np.ndarray, spacing, origin=(0.0, 0.0, 0.0), dtype=None):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(voxels if dtype is None else voxels.astype(dtype))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    return image


def _patient(rng: np.random.Generator, index: int, size, signal: float, out: Path) -> Patient:
    import SimpleITK as sitk

    pid = f"P{index + 1:03d}"
    shape = (size[2], size[1], size[0])
    fov = np.array(size) * CT_SPACING
    origin = (-fov[0] / 2, -fov[1] / 2, -fov[2] / 2)  # LPS, centred on the isocentre
    z_het, z_hot = rng.multivariate_normal([0, 0], [[1, 0.3], [0.3, 1]])

    # anatomy: an elliptical neck of soft tissue with a spine, air outside
    neck = _ellipsoid(shape, fov / 2, (fov[0] * 0.42, fov[1] * 0.36, fov[2] * 10), CT_SPACING)
    spine = _ellipsoid(shape, fov / 2 + [0, fov[1] * 0.2, 0], (9, 8, fov[2] * 10), CT_SPACING)

    # primary GTV: a lumpy ellipsoid off the midline; a nodal GTV beside it for most patients
    radii = rng.uniform(9, 16, 3) * [1, 1, 0.9]
    centre = fov / 2 + [rng.uniform(-14, 14), rng.uniform(-20, -8), rng.uniform(-6, 6)]
    gtvp = _ellipsoid(shape, centre, radii, CT_SPACING, rng, irregularity=0.15) & neck & ~spine
    has_node = rng.random() < 0.75
    node_centre = centre + [np.sign(rng.standard_normal()) * rng.uniform(24, 30), rng.uniform(8, 16), 0]
    gtvn = (_ellipsoid(shape, node_centre, [rng.uniform(5, 8)] * 3, CT_SPACING) & neck & ~gtvp & ~spine
            if has_node else np.zeros(shape, bool))

    # CT: heterogeneity amplitude carries z_het
    texture = _texture(rng, shape)
    heterogeneity = float(np.clip(22 + 12 * z_het, 4, 60))
    ct = np.where(neck, 35.0, -1000.0) + rng.normal(0, 12, shape)
    ct[spine] = 650 + rng.normal(0, 40, int(spine.sum()))
    tumour = gtvp | gtvn
    ct[tumour] = 55 + heterogeneity * texture[tumour] + rng.normal(0, 6, int(tumour.sum()))

    # MR (co-registered): T1 darker tumour, T2 bright tumour; texture shared with CT
    t1 = np.where(neck, 420.0, 5.0) + rng.normal(0, 15, shape)
    t1[spine] = 250
    t1[tumour] = 360 + 2.5 * heterogeneity * texture[tumour]
    t2 = np.where(neck, 300.0, 5.0) + rng.normal(0, 15, shape)
    t2[spine] = 180
    t2[tumour] = 520 + 4.0 * heterogeneity * texture[tumour]

    # PET: background uptake, tumour uptake, and a hot sub-volume whose SUV carries z_hot
    hot_centre = centre + rng.uniform(-0.35, 0.35, 3) * radii
    hot = _ellipsoid(shape, hot_centre, radii * 0.45, CT_SPACING) & gtvp
    if not hot.any():
        hot = gtvp & _ellipsoid(shape, centre, radii * 0.45, CT_SPACING)
    suv = np.where(neck, 1.0, 0.02)
    suv[gtvn] = 4.0
    suv[gtvp] = 5.0 + 0.8 * texture[gtvp]
    suv[hot] = float(np.clip(9.0 + 3.0 * z_hot, 5.5, 20))
    suv = _gaussian(suv, 1.0)  # scanner resolution, then resampled to the coarser PET grid
    pet_ct_grid = _image(suv.astype(np.float32), CT_SPACING, origin)
    pet_size = [int(round(s * c / p)) for s, c, p in zip(size, CT_SPACING, PET_SPACING)]
    pet_origin = tuple(o - c / 2 + p / 2 for o, c, p in zip(origin, CT_SPACING, PET_SPACING))
    pet = sitk.Resample(pet_ct_grid, pet_size, sitk.Transform(), sitk.sitkLinear, pet_origin, PET_SPACING,
                        pet_ct_grid.GetDirection(), 0.0, sitk.sitkFloat32)

    # outcomes: logistic in the latents, scaled by `signal`
    response = int(rng.random() < _sigmoid(0.3 - 1.8 * signal * z_het))
    recurrence = int(rng.random() < _sigmoid(-0.2 + 1.8 * signal * z_hot))
    residual_ccrt = int(rng.random() < _sigmoid(-0.3 + 1.8 * signal * z_het))
    residual_ic = int(rng.random() < _sigmoid(-1.3 + 1.8 * signal * z_het)) if residual_ccrt else \
        int(rng.random() < 0.08)

    # boost CT after `days` of treatment: the GTV shrank at a rate that grows with z_het
    days = int(rng.integers(10, 17))
    rate = float(np.clip(0.014 + 0.006 * signal * z_het + rng.normal(0, 0.002), 0.002, 0.04))  # fraction / day
    keep = max(0.2, 1 - rate * days)
    boost = gtvp & _ellipsoid(shape, centre, radii * keep ** (1 / 3), CT_SPACING, rng, irregularity=0.1)
    if not boost.any():
        boost = gtvp & _ellipsoid(shape, centre, radii * 0.7, CT_SPACING)
    ct_boost = ct.copy()
    shrunk = gtvp & ~boost
    ct_boost[shrunk] = 35 + rng.normal(0, 12, int(shrunk.sum()))

    # relapse (recurring patients): grows from the hot sub-volume, partly outside the GTV
    relapse = (_ellipsoid(shape, hot_centre + rng.normal(0, 3, 3), radii * rng.uniform(0.5, 0.8), CT_SPACING, rng,
                          irregularity=0.2) & neck) if recurrence else None

    # clinical factors (weakly informative, some missing)
    age = int(np.clip(round(rng.normal(61, 9)), 30, 88))
    sex = "M" if rng.random() < 0.78 else "F"
    volume_cc = float(gtvp.sum() * np.prod(CT_SPACING) / 1000)
    t_stage = int(np.clip(1 + np.searchsorted([8, 20, 40], volume_cc) + (rng.random() < 0.2), 1, 4))
    n_stage = int(0 if not has_node else rng.integers(1, 4))
    hpv = "" if rng.random() < 0.1 else ("positive" if rng.random() < _sigmoid(0.4 * (response - 0.5)) else "negative")
    hemoglobin = "" if rng.random() < 0.08 else f"{rng.normal(13.2 - 0.3 * signal * z_het, 1.3):.1f}"
    # the regimen the patient received (drawn last so earlier draws keep their values) and its outcome
    regimen = "IC+CCRT" if rng.random() < 0.5 else "CCRT"
    residual = residual_ic if regimen == "IC+CCRT" else residual_ccrt

    folder = out / pid
    write_image(_image(ct, CT_SPACING, origin, np.int16), folder / "CT.nrrd")
    write_image(_image(ct_boost, CT_SPACING, origin, np.int16), folder / "CT_boost.nrrd")
    pet.SetMetaData("rtresponse_units", "SUVbw")  # known SUV: Cohort.suv_state reads it, nothing warns
    write_image(pet, folder / "PET.nrrd")
    write_image(_image(t1, CT_SPACING, origin, np.float32), folder / "T1.nrrd")
    write_image(_image(t2, CT_SPACING, origin, np.float32), folder / "T2.nrrd")
    masks = {"GTVp": _image(gtvp, CT_SPACING, origin, np.uint8)}
    if has_node and gtvn.any():
        masks["GTVn"] = _image(gtvn, CT_SPACING, origin, np.uint8)
    write_segmentation(masks, folder / "GTV.seg.nrrd")
    write_image(_image(boost, CT_SPACING, origin, np.uint8), folder / "GTVp_boost.nrrd")
    if relapse is not None:
        write_image(_image(relapse, CT_SPACING, origin, np.uint8), folder / "relapse.nrrd")

    row = {
        "patient_id": pid,
        "image_CT": f"{pid}/CT.nrrd", "image_PET": f"{pid}/PET.nrrd", "image_T1": f"{pid}/T1.nrrd",
        "image_T2": f"{pid}/T2.nrrd", "image_CT_boost": f"{pid}/CT_boost.nrrd",
        "mask_GTVp": f"{pid}/GTV.seg.nrrd", "mask_GTVn": f"{pid}/GTV.seg.nrrd" if "GTVn" in masks else "",
        "mask_GTVp_boost": f"{pid}/GTVp_boost.nrrd", "mask_relapse": f"{pid}/relapse.nrrd" if recurrence else "",
        "clin_age": str(age), "clin_sex": sex, "clin_T_stage": str(t_stage), "clin_N_stage": str(n_stage),
        "clin_HPV": hpv, "clin_hemoglobin": hemoglobin, "clin_treatment_days": str(days), "clin_regimen": regimen,
        "outcome_response": str(response), "outcome_recurrence": str(recurrence),
        "outcome_residual_CCRT": str(residual_ccrt), "outcome_residual_IC_CCRT": str(residual_ic),
        "outcome_residual": str(residual),
    }
    return Patient(pid, float(z_het), float(z_hot), row)


def write_cohort(out_dir: str | os.PathLike, n_patients: int = 24, seed: int = 0,
                 size: tuple[int, int, int] = DEFAULT_SIZE, signal: float = 1.0, progress=None) -> Path:
    """Write ``n_patients`` synthetic patients and ``manifest.csv`` into ``out_dir``; returns the manifest.

    Same ``seed``, ``n_patients``, ``size`` and ``signal`` give identical voxels and manifest.
    ``progress(done, total)`` is called after each patient.
    """
    from ..errors import InputError

    if n_patients < 1:
        raise InputError(f"n_patients must be at least 1, got {n_patients}")
    if min(size) < 16 or size[0] < 48 or size[1] < 48:
        raise InputError(f"size {size} is too small for the synthetic anatomy (at least 48 x 48 x 16 voxels)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    patients = []
    for index in range(n_patients):
        # one child generator per patient: patient k is the same whatever n_patients is
        patients.append(_patient(np.random.default_rng(rng.integers(2 ** 63)), index, size, signal, out))
        if progress:
            progress(index + 1, n_patients)
    columns = list(patients[0].row)
    lines = [",".join(columns)] + [",".join(p.row[c] for c in columns) for p in patients]
    write_text(out / "latent.csv", "patient_id,z_het,z_hot\n" + "".join(
        f"{p.patient_id},{p.z_het:.6f},{p.z_hot:.6f}\n" for p in patients))
    return write_text(out / "manifest.csv", "\n".join(lines) + "\n")
