"""Frozen I3D features of a cohort, computed once and cached.

The backbone never changes during training, so each patient's 2048 (per pass) numbers are
computed once and reused by every epoch and every Optuna trial: tuning costs head-training
time, not 3D-CNN time. The cache is an ``.npz`` (read with ``allow_pickle=False``) keyed by
the input configuration and the backbone's weights; a different key recomputes, missing
patients are added, failed patients are retried next time.

Augmented copies (``augment_copies=n``): n extra feature vectors per patient from randomly
augmented inputs (seeded per patient and copy), for training the head with augmentation.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ...errors import Cancelled  # noqa: F401 - callers import it from here
from .preprocess import VolumeConfig, volume_input


@dataclass
class CohortFeatures:
    patient_ids: list            # one entry per row
    copies: np.ndarray           # 0 = the unaugmented input, 1.. = augmented copies
    values: np.ndarray           # (rows, 2048 * passes) float32
    failures: dict = field(default_factory=dict)  # patient_id -> reason
    execution: dict = field(default_factory=dict)  # where the features were computed (Execution.describe())

    def of(self, patient_ids: Sequence[str], copies: bool = False) -> tuple[np.ndarray, list]:
        """Rows of these patients (copy 0 only, or all copies), and the patient id of each row."""
        wanted = set(patient_ids)
        rows = [i for i, pid in enumerate(self.patient_ids) if pid in wanted and (copies or self.copies[i] == 0)]
        order = {pid: n for n, pid in enumerate(patient_ids)}
        rows.sort(key=lambda i: (order[self.patient_ids[i]], self.copies[i]))
        return self.values[rows], [self.patient_ids[i] for i in rows]

    def frame(self) -> "pd.DataFrame":
        import pandas as pd

        columns = [f"i3d_{i:04d}" for i in range(self.values.shape[1])]
        table = pd.DataFrame(self.values, columns=columns)
        table.insert(0, "copy", self.copies)
        table.insert(0, "patient_id", self.patient_ids)
        return table


def weights_identity(weights, weights_folder=None) -> str:
    """What identifies the backbone's weights in the cache key (file name, size and time, or 'random')."""
    if weights is None:
        return "random"
    if isinstance(weights, str) and weights == "imagenet":
        from ...features.deep2d.weights import require_weights

        weights = require_weights("resnet50", weights_folder)
    path = Path(weights)
    stat = path.stat()
    return f"{path.name}:{stat.st_size}:{int(stat.st_mtime)}"


def cache_key(config: VolumeConfig, weights, seed: int, depth_stride, weights_folder=None) -> str:
    text = json.dumps({"config": config.to_dict(), "weights": weights_identity(weights, weights_folder), "seed": seed,
                       "depth_stride": depth_stride}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_cache(path: Path, key: str):
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        if str(data["key"]) != key or "sources" not in data.files:
            return None
        return list(data["patient_ids"]), data["copies"], data["values"], list(data["sources"])


def _write_cache(path: Path, key: str, patient_ids, copies, values, sources) -> None:
    from ...atomic import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, key=np.array(key), patient_ids=np.array(patient_ids, dtype=str),
                     copies=np.asarray(copies, dtype=np.int64), values=np.asarray(values, dtype=np.float32),
                     sources=np.array(sources, dtype=str))


def _sources(cohort, patient_id: str, config: VolumeConfig) -> str:
    """What a patient's row was computed from: path, size and modification time of its image and mask files.

    A cached row is reused only while this is unchanged (a re-run after the images changed recomputes).
    """
    from ...cohort import file_fingerprint

    columns = [f"image_{name}" for name in config.sequences] + [f"mask_{config.mask}"]
    cells = [cohort.table.at[patient_id, c] if c in cohort.table.columns else "" for c in columns]
    return file_fingerprint([cohort.resolve(cell) for cell in cells if cell])


def extract(network, volume: np.ndarray, device: str = "cpu", amp: bool = False) -> np.ndarray:
    """Features of one patient's (passes, 3, z, y, x) input: the passes' 2048-vectors concatenated."""
    import torch

    from ...settings import autocast

    with torch.no_grad(), autocast(device, amp):
        output = network(torch.from_numpy(volume).to(device))
    return output.float().reshape(-1).cpu().numpy()


_NETWORKS: dict = {}  # this process's backbone, kept for its next task: {(weights identity, ...): network}


def backbone(weights, weights_folder, seed: int, depth_stride, device: str):
    """The frozen I3D backbone, built once per process (a Dask worker or local process builds it for its first
    task and reuses it) and never sent with a task; a different weights file (name, size, time) builds anew."""
    from .backbone import i3d_resnet50

    key = (weights_identity(weights, weights_folder), str(weights), str(weights_folder), int(seed), str(depth_stride),
           str(device))
    if key not in _NETWORKS:
        _NETWORKS.clear()  # one backbone at a time (a ResNet-50 3D is large)
        _NETWORKS[key] = i3d_resnet50(weights, weights_folder, seed, depth_stride).to(device)
    return _NETWORKS[key]


def _patient_task(pid: str, copies: Sequence[int], *, cohort, config, weights, weights_folder, seed, depth_stride,
                  device, amp) -> tuple:
    """One task: (patient id, {copy: features}, the patient's problem or None). The network passes run on a fixed
    torch thread count (:func:`rtresponse.settings.task_torch_threads`): the same numbers wherever it runs."""
    from ...errors import InputError
    from ...settings import task_torch_threads

    found = {}
    for copy in copies:
        try:
            images = {name: cohort.read_image(pid, name) for name in config.sequences}
            mask = cohort.read_mask(pid, config.mask, reference=images[config.sequences[0]])
            volume = volume_input(images, mask, config, augment=copy > 0, seed=_seed(pid, copy, seed), patient=pid)
        except (InputError, RuntimeError, OSError) as error:
            return pid, found, (str(error) if pid in str(error) else f"patient {pid}: {error}")  # one line each
        network = backbone(weights, weights_folder, seed, depth_stride, device)
        with task_torch_threads():
            found[copy] = extract(network, volume, device, amp)
    return pid, found, None


def cohort_features(cohort, config: VolumeConfig, patient_ids: Sequence[str] | None = None, weights="imagenet",
                    weights_folder: str | os.PathLike | None = None, cache: str | os.PathLike | None = None,
                    augment_copies: int = 0, device: str = "cpu", amp: bool = False, seed: int = 0,
                    depth_stride="same", progress: Callable[[int, int], None] | None = None,
                    should_cancel: Callable[[], bool] | None = None, execution=None) -> CohortFeatures:
    """Features of every patient (and ``augment_copies`` augmented copies each), reusing ``cache``.

    A patient whose images cannot be read or whose mask is empty is skipped and reported in
    ``failures`` (one line naming the patient and the problem); the others go on.
    ``execution``: where the patients run (:mod:`rtresponse.execution`: an ``Execution``, a dask ``Client`` or a
    scheduler setting; default this process): one task per patient still to compute, the backbone built once
    per worker; the features are the same wherever they run. ``progress(done, total)`` counts those patients.
    """
    from ...errors import InputError
    from ...execution import resolve

    ids = list(cohort.patient_ids if patient_ids is None else patient_ids)
    key = cache_key(config, weights, seed, depth_stride, weights_folder)
    cache_path = Path(cache) if cache else None
    known = _read_cache(cache_path, key) if cache_path else None
    rows: dict[tuple[str, int], np.ndarray] = {}
    sources = {pid: _sources(cohort, pid, config) for pid in ids}
    if known is not None:
        for pid, copy, vector, source in zip(*known):
            if sources.get(str(pid), source) == source:  # rows of other patients are kept as they are
                rows[(str(pid), int(copy))] = vector
                sources.setdefault(str(pid), source)
    wanted = [(pid, copy) for pid in ids for copy in range(augment_copies + 1)]
    todo = [item for item in wanted if item not in rows]
    patients = list(dict.fromkeys(pid for pid, _ in todo))
    tasks = [(pid, [copy for p, copy in todo if p == pid]) for pid in patients]
    failures: dict[str, str] = {}
    runner, owned = resolve(execution, 1)
    try:
        shared = dict(cohort=cohort, config=config, weights=weights, weights_folder=weights_folder, seed=seed,
                      depth_stride=depth_stride, device=device, amp=amp)
        results = runner.map(_patient_task, tasks, shared=shared, progress=progress, should_cancel=should_cancel,
                             cancelled="I3D feature extraction cancelled",
                             on_lost=lambda i, error: (patients[i], {}, f"patient {patients[i]}: worker lost while "
                                                                        f"extracting ({error})"))
        where = runner.describe()
    finally:
        if owned:
            runner.close()
    for pid, found, problem in results:
        rows.update({(pid, copy): vector for copy, vector in found.items()})  # copies before a failing one, as before
        if problem is not None:
            failures[pid] = problem
    if cache_path and todo:
        everything = sorted(rows)
        _write_cache(cache_path, key, [p for p, _ in everything], [c for _, c in everything],
                     np.stack([rows[item] for item in everything]), [sources[p] for p, _ in everything])
    present = [item for item in wanted if item in rows]
    if not present:
        raise InputError("no patient gave I3D features: " + "; ".join(failures.values()))
    return CohortFeatures(patient_ids=[p for p, _ in present], copies=np.array([c for _, c in present]),
                          values=np.stack([rows[item] for item in present]), failures=failures, execution=where)


def _seed(patient_id: str, copy: int, seed: int) -> int:
    """A stable seed per patient and copy (Python's hash() is salted per process)."""
    digest = hashlib.sha256(f"{patient_id}:{copy}:{seed}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % 2 ** 31
