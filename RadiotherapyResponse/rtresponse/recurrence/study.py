"""A recurrence study over a cohort: the 6:2:2 patient split, samples, and the methods compared on the test set."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from ..errors import InputError
from ..evaluation.segmentation import case_metrics
from .baselines import suvmax_threshold
from .preprocess import BOX_XYZ, Sample, prepare_patient
from .training import predict_boxes

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..cohort import Cohort

SPLITS = ("train", "validation", "test")


def split_patients(patient_ids: Sequence[str], ratios=(6, 2, 2), seed: int = 0) -> dict[str, list[str]]:
    """Seeded random split by patient (the paper's 6:2:2); every part gets at least one patient when n >= 3."""
    ids = list(patient_ids)
    if len(ids) < 3:
        raise InputError(f"a train/validation/test split needs at least 3 patients, got {len(ids)}")
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    total = float(sum(ratios))
    n_validation = max(1, int(round(len(ids) * ratios[1] / total)))
    n_test = max(1, int(round(len(ids) * ratios[2] / total)))
    n_train = len(ids) - n_validation - n_test
    if n_train < 1:
        raise InputError(f"{len(ids)} patients leave none for training at ratios {ratios}")
    return {"train": order[:n_train], "validation": order[n_train:n_train + n_validation],
            "test": order[n_train + n_validation:]}


def patients_with_mask(cohort: "Cohort", mask: str) -> list[str]:
    return [pid for pid in cohort.patient_ids if cohort.patient(pid).masks.get(mask)]


def load_samples(cohort: "Cohort", patient_ids: Sequence[str], ct: str = "CT", pet: str = "PET", gtv: str = "GTVp",
                 label: str | None = "relapse", brain: str | None = None, box_xyz=BOX_XYZ,
                 progress: Callable[[int, int], None] | None = None) -> tuple[list[Sample], dict[str, str]]:
    """Samples of the patients that load, and {patient: why not} for the others (one failure does not stop the rest)."""
    samples, failures = [], {}
    for done, pid in enumerate(patient_ids, start=1):
        try:
            samples.append(prepare_patient(cohort, pid, ct, pet, gtv, label, brain, box_xyz))
        except InputError as error:
            failures[pid] = str(error)
        if progress:
            progress(done, len(patient_ids))
    return samples, failures


def compare_methods(samples: Sequence[Sample], fraction: float, network=None, device: str = "cpu",
                    threshold: float = 0.5, amp: bool = False) -> "pd.DataFrame":
    """One row per patient and method (CNN when a network is given, SUVmax threshold, GTV) with every metric."""
    import pandas as pd

    probabilities = predict_boxes(network, samples, device, amp) if network is not None else [None] * len(samples)
    rows = []
    for sample, probability in zip(samples, probabilities):
        if sample.label is None:
            raise InputError("no relapse mask to compare with", patient=sample.patient_id)
        methods = {"SUVmax threshold": suvmax_threshold(sample.pet_suv, sample.gtv, fraction, sample.brain),
                   "GTV contour": sample.gtv}
        if probability is not None:
            methods = {"CNN": probability >= threshold, **methods}
        for method, prediction in methods.items():
            rows.append({"patient_id": sample.patient_id, "method": method,
                         **case_metrics(prediction, sample.label, sample.spacing_zyx)})
    return pd.DataFrame(rows)


_MODELS: dict = {}  # this process's model, kept for its next task: {(file, size, time, device): (network, config)}


def cached_model(path, device: str = "cpu") -> tuple:
    """:func:`~.model.load_model`, once per process (a Dask worker or local process loads it for its first task
    and reuses it; the model is never sent with a task); a changed file (size, time) is loaded anew."""
    import os

    from .model import load_model

    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns, str(device))
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = load_model(path, device)
    return _MODELS[key]


def _predict_task(pid: str, *, cohort, model, ct, pet, gtv, brain, box_xyz, device) -> dict:
    """One task: a patient's relapse probability in its box (float32), the box and the PET warnings, or its problem.
    The network pass runs on a fixed torch thread count: the same numbers wherever it runs."""
    from ..settings import task_torch_threads

    try:
        sample = prepare_patient(cohort, pid, ct, pet, gtv, None, brain, box_xyz)
    except InputError as error:
        return {"patient_id": pid, "problem": str(error)}
    network, _ = cached_model(model, device)
    with task_torch_threads():
        [probability] = predict_boxes(network, [sample], device)
    return {"patient_id": pid, "probability": probability.astype(np.float32), "crop": sample.crop,
            "warnings": list(sample.warnings), "problem": None}


def predict_cohort(cohort: "Cohort", model, patient_ids: Sequence[str] | None = None, ct: str = "CT",
                   pet: str = "PET", gtv: str = "GTVp", brain: str | None = None, box_xyz=BOX_XYZ,
                   device: str = "cpu", progress: Callable[[int, int], None] | None = None,
                   should_cancel: Callable[[], bool] | None = None, execution=None) -> tuple[list[dict], dict]:
    """Relapse probability maps of a cohort's patients: ([one dict per patient], where it ran).

    Each dict has ``patient_id`` and ``problem`` (None, or why the patient has no map: the others go on) and, for
    a map, ``probability`` (the box, float32), ``crop`` (where the box lies: :func:`.preprocess.prediction_to_image`
    pastes it on the CT) and ``warnings``. ``model``: the model file, loaded once per process. One task per
    patient: ``execution`` (:mod:`rtresponse.execution`; default this process) says where; the maps are the same
    wherever they are computed. The boxes come back; images are read by the workers from the manifest's paths.
    """
    from ..execution import resolve

    ids = list(cohort.patient_ids if patient_ids is None else patient_ids)
    runner, owned = resolve(execution, 1)
    try:
        results = runner.map(_predict_task, [(pid,) for pid in ids],
                             shared=dict(cohort=cohort, model=str(model), ct=ct, pet=pet, gtv=gtv, brain=brain,
                                         box_xyz=tuple(box_xyz), device=device),
                             progress=progress, should_cancel=should_cancel, cancelled="prediction cancelled",
                             on_lost=lambda i, error: {"patient_id": ids[i],
                                                       "problem": f"patient {ids[i]}: worker lost ({error})"})
        where = runner.describe()
    finally:
        if owned:
            runner.close()
    return results, where
