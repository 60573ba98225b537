"""Shared fixtures: a fresh real MRML scene (slicer-core) per test, and small seeded images."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO / "RadiotherapyResponse"
if str(LIBRARY) not in sys.path:  # tests also run from a plain checkout without `pip install -e`
    sys.path.insert(0, str(LIBRARY))


@pytest.fixture
def scene():
    """A new vtkMRMLScene with the segmentation converter rules registered, as Slicer does."""
    pytest.importorskip("slicer", reason="slicer-core is needed for MRML tests")
    from rtresponse import mrml

    mrml_scene = mrml.new_scene()
    yield mrml_scene
    mrml_scene.Clear(1)


def oblique_direction(angles_deg=(20.0, -35.0, 50.0)) -> np.ndarray:
    """A proper rotation (det +1) about x, then y, then z."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


@pytest.fixture
def oblique_image():
    """A small anisotropic, obliquely oriented float32 CT-like image with a random texture."""
    import SimpleITK as sitk

    rng = np.random.default_rng(7)
    voxels = rng.normal(40, 200, size=(6, 9, 11)).astype(np.float32)  # (z, y, x)
    image = sitk.GetImageFromArray(voxels)
    image.SetSpacing((0.7, 1.3, 3.1))
    image.SetOrigin((-12.5, 30.25, 101.0))
    image.SetDirection(tuple(oblique_direction().ravel()))
    return image


@pytest.fixture(scope="session")
def synthetic_cohort(tmp_path_factory):
    """A small synthetic cohort written once per test session (read-only for tests)."""
    from rtresponse.sampledata.synthetic import write_cohort

    return write_cohort(tmp_path_factory.mktemp("synthetic") / "cohort", n_patients=6, seed=3)


@pytest.fixture(scope="session")
def pyradiomics_cases():
    """Folder of the cached, checksum-verified PyRadiomics cases (fetched from PyPI on first use)."""
    import os

    from rtresponse.sampledata import pyradiomics as pyradiomics_sample

    folder = pyradiomics_sample.cache_folder()
    if os.environ.get("RTRESPONSE_OFFLINE") and pyradiomics_sample._verified(folder,
                                                                             pyradiomics_sample.catalogue()["files"]):
        pytest.skip("RTRESPONSE_OFFLINE is set and the PyRadiomics cases are not cached")
    return pyradiomics_sample.fetch()


def copy_cohort(manifest, target):
    """A writable copy of a cohort folder; returns the copied manifest path."""
    import shutil

    shutil.copytree(manifest.parent, target)
    return target / manifest.name


def rank_auc(scores, labels) -> float:
    """AUC as the Mann-Whitney probability that a positive outranks a negative (ties count half)."""
    scores = np.asarray(scores, float)
    labels = np.asarray(labels).astype(bool)
    pos, neg = scores[labels], scores[~labels]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))
