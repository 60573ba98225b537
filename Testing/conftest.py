"""Shared fixtures: a fresh real MRML scene (slicer-core) per test, and small seeded images."""

from __future__ import annotations

import contextlib
import importlib.util
import os
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


@pytest.fixture
def weights_only_here(tmp_path, monkeypatch):
    """Pretrained weights are looked up only in this test's empty folders, never in the user's caches."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("RTRESPONSE_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))


@pytest.fixture
def fresh_deep2d_networks(weights_only_here):
    """Deep-feature networks built anew in this test (no cached one with other weights), weights only from this
    test's folders, torch on 2 threads (restored after: later modules' results depend on it)."""
    torch = pytest.importorskip("torch")
    from rtresponse.features.deep2d import networks

    networks._cached.cache_clear()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)
    networks._cached.cache_clear()


def folder_digest(folder) -> str:
    """One SHA-256 of every file's relative path and bytes below ``folder`` (an input left unchanged keeps it)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


def child_env() -> dict:
    """Environment for a child ``python -m rtresponse``: it imports this checkout's rtresponse, installed or not."""
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(LIBRARY), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def copy_cohort(manifest, target):
    """A writable copy of a cohort folder; returns the copied manifest path."""
    import shutil

    shutil.copytree(manifest.parent, target)
    return target / manifest.name


def cohort_with_empty_mask(synthetic_cohort, folder, patient: str, mask: str):
    """A copy of the synthetic cohort in ``folder`` with ``patient``'s ``mask`` emptied (no segment left)."""
    from rtresponse.cohort import load_manifest
    from rtresponse.imageio import write_image

    manifest = copy_cohort(synthetic_cohort, folder)
    cohort = load_manifest(manifest)
    write_image(cohort.read_mask(patient, mask) * 0, cohort.resolve(cohort.table.at[patient, f"mask_{mask}"]))
    return load_manifest(manifest)


def planted_evaluation_inputs(folder, patients: int) -> tuple:
    """(features.csv, manifest.csv) in ``folder`` for `rtresponse evaluate`: 5 features, outcome_response from f1."""
    import pandas as pd

    rng = np.random.default_rng(1)
    ids = [f"P{i:03d}" for i in range(patients)]
    features = pd.DataFrame(rng.normal(size=(patients, 5)), columns=[f"f{i}" for i in range(5)],
                            index=pd.Index(ids, name="patient_id"))
    outcome = (features["f1"] + rng.normal(0, 0.5, patients) > 0).astype(int)
    features.assign(status="ok").to_csv(folder / "features.csv")
    pd.DataFrame({"patient_id": ids, "outcome_response": outcome.to_numpy()}).to_csv(folder / "manifest.csv",
                                                                                      index=False)
    return folder / "features.csv", folder / "manifest.csv"


needs_dask = pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                                reason="dask.distributed is not installed (pip install 'rtresponse[distributed]')")


@pytest.fixture(scope="module")
def client():
    """A real dask.distributed LocalCluster of 2 single-threaded worker processes (as ``--scheduler local-cluster:2``
    starts it), one per test module."""
    pytest.importorskip("distributed")
    from rtresponse.execution import Execution

    with Execution("local-cluster:2") as where:
        where.client.wait_for_workers(2)
        yield where.client


def rank_auc(scores, labels) -> float:
    """AUC as the Mann-Whitney probability that a positive outranks a negative (ties count half)."""
    scores = np.asarray(scores, float)
    labels = np.asarray(labels).astype(bool)
    pos, neg = scores[labels], scores[~labels]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


# --------------------------------------------------------------------------- reproducible CPU training

# One intra-op thread for torch tests unless RTRESPONSE_TEST_THREADS says otherwise. Sums are then split
# the same way whatever the machine's core count, and no OpenMP thread spins waiting for a busy core:
# on this shared 2-core machine the I3D module's head training took 101 s with 2 threads and 7 s with 1
# (the feature extraction 133 s and 14 s) while another pytest ran beside it.
TORCH_TEST_THREADS = int(os.environ.get("RTRESPONSE_TEST_THREADS", "1"))


@contextlib.contextmanager
def reproducible_torch(seed: int = 0, threads: int | None = None):
    """Seeded global RNG, deterministic algorithms (warn only) and a fixed thread count; all restored after.

    This removes what differs between runs on one machine, not between machines: another CPU runs
    other SIMD kernels (AVX-512, AVX2, SSE; MKL and oneDNN choose their own) that round differently.
    Acceptance tests therefore keep their measured value well clear of the threshold and print the
    margin (:func:`margin_message`).
    """
    import torch

    threads_before = torch.get_num_threads()
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    warn_only_before = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(threads or TORCH_TEST_THREADS)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield torch
        finally:
            torch.set_num_threads(threads_before)
            torch.use_deterministic_algorithms(deterministic_before, warn_only=warn_only_before)


@pytest.fixture(scope="module")
def torch_module_reproducible():
    """:func:`reproducible_torch` for a whole module: module-scoped fixtures that train or extract use it."""
    pytest.importorskip("torch")
    with reproducible_torch():
        yield


@pytest.fixture
def torch_reproducible(torch_module_reproducible):
    """:func:`reproducible_torch` per test (seed 0 whatever ran before). Modules that train networks apply it
    to every test with ``pytestmark = pytest.mark.usefixtures("torch_reproducible")``."""
    with reproducible_torch():
        yield


def margin_message(name: str, value: float, threshold: float, above: bool = True, upper: float | None = None) -> str:
    """One line for CI logs: the measured value, its threshold(s) and the margin (positive: passes).

    ``above``: the value must exceed ``threshold``; otherwise stay below it. With ``upper`` the value
    must lie between ``threshold`` and ``upper`` and the margin is the distance to the nearer bound.
    """
    if upper is not None:
        margin = min(value - threshold, upper - value)
        return f"{name} {value:.3f}, band ({threshold:g}, {upper:g}), margin {margin:+.3f}"
    margin = value - threshold if above else threshold - value
    return f"{name} {value:.3f}, threshold {'>' if above else '<'} {threshold:g}, margin {margin:+.3f}"


def check_margin(name: str, value: float, threshold: float, above: bool = True, upper: float | None = None) -> float:
    """Print :func:`margin_message` (seen with ``pytest -s`` or ``-rA``) and assert it; returns the margin."""
    message = margin_message(name, value, threshold, above, upper)
    print(message)
    if upper is not None:
        assert threshold < value < upper, message
        return min(value - threshold, upper - value)
    assert (value > threshold) if above else (value < threshold), message
    return value - threshold if above else threshold - value
