"""1000 deep features per patient: the max-area GTV slice through a frozen network, batched over a cohort.

Cohort and segment tables say which weights made them: a ``weights`` column ("random (seed 0)", or the
file's name and the start of its SHA-256), and ``frame.attrs["provenance"]`` with the network, the weights
record (file and SHA-256, or random and the seed), the preprocessing, the device and the z-scoring.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable

import numpy as np

from ... import provenance
from ...errors import Cancelled, InputError, RTResponseError
from ...imaging import tumour_slices
from ...settings import TASK_TORCH_THREADS, autocast, resolve_device
from .catalogue import PAPER_DEFAULT, model_spec
from .networks import load_network, to_input, weights_provenance

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ...cohort import Cohort

STATUS = "status"
WEIGHTS = "weights"  # which weights made the row: "random (seed N)" or "file <name> sha256 <first 12>"
NOT_FEATURES = (STATUS, WEIGHTS)
N_FEATURES = 1000


def feature_names(model: str) -> list[str]:
    return [f"{model_spec(model).name}_{i:04d}" for i in range(N_FEATURES)]


def network_outputs(crops: list[np.ndarray], model: str, weights="imagenet", device: str = "cpu",
                    amp: bool = False, seed: int = 0, weights_folder=None) -> np.ndarray:
    """(len(crops), 1000) float32 outputs of the frozen network for preprocessed crops."""
    import torch

    spec = model_spec(model)
    network = load_network(spec, weights, seed, weights_folder, device)
    with torch.inference_mode(), autocast(device, amp):
        outputs = network(to_input(crops, spec, device))
    outputs = outputs.float().cpu().numpy()
    if outputs.shape[1] != N_FEATURES:
        raise RTResponseError(f"{spec.name} gave {outputs.shape[1]} outputs, expected {N_FEATURES}")
    return outputs


def extract(image, mask, model: str = PAPER_DEFAULT, weights: str | os.PathLike | None = "imagenet",
            device: str = "auto", size_mm: float = 100.0, level: float = 50.0, width: float = 350.0,
            context: str = "mask", top_k: int = 1, amp: bool = False, seed: int = 0,
            weights_folder=None) -> np.ndarray:
    """(1000,) deep features of one tumour: the last fully connected layer's outputs.

    ``image``/``mask``: SimpleITK images on one grid (see :func:`rtresponse.imaging.tumour_slices`
    for the preprocessing and the options beyond the paper; ``top_k > 1`` averages the
    features of the k largest slices). ``weights``: ``"imagenet"``, a file, or None (random, ``seed``).
    """
    from ...inputs import binary_mask, finite_voxels, require_image

    _check_options(size_mm, level, width, context, top_k)
    image = finite_voxels(require_image(image, "image"))
    mask = binary_mask(mask)
    crops = [crop.pixels for crop in tumour_slices(image, mask, size_mm, level, width, context, top_k)]
    outputs = network_outputs(crops, model, weights, resolve_device(device), amp, seed, weights_folder)
    return outputs.mean(axis=0)


def _check_options(size_mm, level, width, context, top_k) -> None:
    """The preprocessing options, checked once before any patient (not once per patient as a failure)."""
    import math

    if not (math.isfinite(size_mm) and size_mm > 0):
        raise InputError(f"size_mm must be a positive number of millimetres, got {size_mm}")
    if not (math.isfinite(width) and width > 0) or not math.isfinite(level):
        raise InputError(f"the window needs a finite level and a positive width, got level {level}, width {width}")
    if context not in ("mask", "keep"):
        raise InputError(f"context must be 'mask' or 'keep', got {context!r}")
    if int(top_k) != top_k or top_k < 1:
        raise InputError(f"top_k must be a whole number >= 1, got {top_k}")


def zscore(features: "pd.DataFrame", statistics: "pd.DataFrame | None" = None) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Z-scored feature columns and the statistics used (rows ``mean`` and ``std``, ddof 1 as MATLAB's zscore).

    Pass the statistics saved with a training cohort to score new patients the same way.
    A feature constant over the cohort gets std 1 (its z-score is then 0, not NaN).
    """
    import pandas as pd

    columns = [c for c in features.columns if c not in NOT_FEATURES]
    values = features[columns].astype(float)
    if statistics is None:
        std = values.std(ddof=1).fillna(0.0)
        statistics = pd.DataFrame([values.mean(), std.where(std > 0, 1.0)], index=["mean", "std"])
    missing = [c for c in columns if c not in statistics.columns]
    if missing:
        raise InputError(f"z-score statistics lack {len(missing)} feature(s), e.g. {missing[0]}")
    scored = (values - statistics.loc["mean", columns].astype(float)) / statistics.loc["std", columns].astype(float)
    out = features.copy()
    out[columns] = scored
    return out, statistics[columns]


def patient_slices(cohort: "Cohort", pid: str, image: str, mask: str, options: dict) -> tuple:
    """(the patient's image, its preprocessed tumour slices: SliceCrop, largest first); a problem with the mask is
    an InputError naming the patient and the mask column. ``options``: those of ``tumour_slices``."""
    ct = cohort.read_image(pid, image)
    gtv = cohort.read_mask(pid, mask, image=image, reference=ct)
    try:
        return ct, tumour_slices(ct, gtv, **options)
    except InputError as error:
        raise InputError(error.problem, patient=pid, column=f"mask_{mask}") from None


def check_columns(cohort: "Cohort", image: str, mask: str) -> None:
    """The manifest has columns ``image_<image>`` and ``mask_<mask>``."""
    for kind, name, names in (("image", image, cohort.image_names), ("mask", mask, cohort.mask_names)):
        if name not in names:
            raise InputError(f"no column {kind}_{name} ({kind}s: {', '.join(names)})", path=str(cohort.path))


def _patient_crops(cohort: "Cohort", pid: str, image: str, mask: str, options: dict) -> list[np.ndarray]:
    return [crop.pixels for crop in patient_slices(cohort, pid, image, mask, options)[1]]


def patients_per_task(batch_size: int, top_k: int) -> int:
    """Patients in one task of :func:`extract_cohort`: as many as fill one network batch (``batch_size`` slices,
    ``top_k`` per patient). Fixed by the options alone, never by where the tasks run: a batch's composition changes
    its outputs in the last float32 bits, so the same chunks everywhere give the same numbers."""
    return max(1, int(batch_size) // max(1, int(top_k)))


def _chunk_task(pids: list, *, cohort, image, mask, options, model, weights, device, amp, seed,
                weights_folder) -> list:
    """One task: [(patient id, status, features or None)] for consecutive patients, their slices one network batch.

    The network is built once per process (:func:`load_network` keeps it), not sent with the task; its passes run
    on a fixed torch thread count (:func:`rtresponse.settings.task_torch_threads`)."""
    from ...settings import task_torch_threads

    crops, found = [], []
    for pid in pids:
        try:
            pixels = _patient_crops(cohort, pid, image, mask, options)
        except InputError as error:
            found.append((pid, str(error), None))
            continue
        found.append((pid, "ok", range(len(crops), len(crops) + len(pixels))))
        crops.extend(pixels)
    if not crops:
        return found
    with task_torch_threads():
        outputs = network_outputs(crops, model, weights, device, amp, seed, weights_folder)
    return [(pid, status, None if rows is None else outputs[list(rows)].mean(axis=0)) for pid, status, rows in found]


def extract_cohort(cohort: "Cohort", image: str = "CT", mask: str = "GTVp", model: str = PAPER_DEFAULT,
                   weights: str | os.PathLike | None = "imagenet", device: str = "auto", batch_size: int = 16,
                   amp: bool = False, size_mm: float = 100.0, level: float = 50.0, width: float = 350.0,
                   context: str = "mask", top_k: int = 1, seed: int = 0, weights_folder=None,
                   standardize: bool = True, statistics: "pd.DataFrame | None" = None,
                   progress: Callable[[int, int], None] | None = None,
                   should_cancel: Callable[[], bool] | None = None, n_jobs: int = 1,
                   execution=None) -> "pd.DataFrame":
    """Deep features of every patient: one row per patient (index ``patient_id``) and a ``status`` column.

    Patients are preprocessed and sent to the network in tasks of :func:`patients_per_task` consecutive
    patients (``batch_size`` slices; on the GPU with ``device="auto"`` when there is one), each task's network
    pass on one torch thread. ``n_jobs``: tasks in parallel (local processes); ``execution``: where the tasks run
    instead (:mod:`rtresponse.execution`: an ``Execution``, a dask ``Client`` or a scheduler setting); each worker
    builds the network once. The table is the same wherever the tasks run. A patient whose images fail
    keeps its row with the reason in ``status``. With ``standardize`` the features are z-scored
    over the cohort's successful patients (or with ``statistics`` from an earlier cohort); the
    statistics used are in ``result.attrs["zscore"]``. The ``weights`` column and
    ``result.attrs["provenance"]`` say how the table was made (see the module's docstring).
    """
    import pandas as pd

    from ...execution import resolve

    spec = model_spec(model)
    check_columns(cohort, image, mask)
    _check_options(size_mm, level, width, context, top_k)
    device = resolve_device(device)
    load_network(spec, weights, seed, weights_folder, device)  # fail fast (missing weights) before any patient
    weights_record = weights_provenance(spec, weights, seed, weights_folder)
    options = dict(size_mm=size_mm, level=level, width=width, context=context, top_k=top_k)
    ids = cohort.patient_ids
    size = patients_per_task(batch_size, top_k)
    chunks = [ids[start:start + size] for start in range(0, len(ids), size)]
    rows: dict[str, np.ndarray] = {}
    status: dict[str, str] = {}

    def patients_done(done: int, total: int) -> None:  # tasks finished -> patients, for the caller's progress
        if progress:
            progress(len(ids) if done == total else min(len(ids), done * size), len(ids))

    runner, owned = resolve(execution, max(1, min(int(n_jobs or 1), len(chunks) or 1)))
    try:
        shared = dict(cohort=cohort, image=image, mask=mask, options=options, model=spec.name, weights=weights,
                      device=device, amp=amp, seed=seed, weights_folder=weights_folder)
        results = runner.map(_chunk_task, [(chunk,) for chunk in chunks], shared=shared, progress=patients_done,
                             should_cancel=should_cancel, cancelled="deep feature extraction cancelled",
                             on_lost=lambda i, error: [(pid, f"worker lost while extracting ({error})", None)
                                                       for pid in chunks[i]])
        where = runner.describe()
    finally:
        if owned:
            runner.close()
    for found in results:
        for pid, message, values in found:
            status[pid] = message
            if values is not None:
                rows[pid] = values
    names = feature_names(spec.name)
    table = pd.DataFrame([rows.get(pid, np.full(N_FEATURES, np.nan)) for pid in ids], columns=names,
                         index=pd.Index(ids, name="patient_id"))
    table[STATUS] = [status[pid] for pid in ids]
    zscoring = "none"
    if standardize:
        ok = table[STATUS] == "ok"
        if not ok.any():  # say why, not only that z-scoring has nothing to work on
            pid = table.index[0]
            raise InputError(f"no patient's features could be computed; patient {pid}: {table.at[pid, STATUS]}")
        if statistics is None and ok.sum() < 2:
            raise InputError(f"z-scoring needs at least 2 patients with features, got {int(ok.sum())}")
        zscoring = "given statistics" if statistics is not None else f"this cohort ({int(ok.sum())} patients)"
        _, statistics = zscore(table[ok], statistics)
        table, _ = zscore(table, statistics)
        table.attrs["zscore"] = statistics
    table = table.copy()  # one block again after z-scoring, before one more column
    table.insert(table.columns.get_loc(STATUS), WEIGHTS, weights_column(weights_record))
    table.attrs["provenance"] = provenance.record(
        settings={"image": image, "mask": mask, "model": spec.name, "weights": weights, "seed": seed,
                  "device": device, "batch_size": batch_size, "amp": amp, "standardize": standardize},
        kind="deep2d", network=network_record(spec), weights=weights_record, preprocessing=options,
        device=device_record(device), amp=amp, batch_size=batch_size, zscore=zscoring, execution=where,
        tasks={"patients_per_task": size, "torch_threads": TASK_TORCH_THREADS})
    return table


def weights_column(weights_record: dict) -> str:
    """The ``weights`` column's text: "random (seed 0)", "imagenet: file <name> sha256 <first 12>", "file ..."."""
    label = provenance.weights_label(weights_record)
    return f"imagenet: {label}" if weights_record.get("name") == "imagenet" else label


def network_record(spec) -> dict:
    """The network as a provenance record names it (zoo name, library id, paper name, input)."""
    found = {"name": spec.name, "library": spec.library, "id": spec.id, "paper_name": spec.paper_name,
             "input_size": spec.input_size, "mean": list(spec.mean), "std": list(spec.std),
             "feature_layer": spec.feature_layer}
    if spec.substitute_for:
        found["substitute_for"] = spec.substitute_for
    return found


def device_record(device: str) -> str:
    """The device, with the GPU's name on CUDA."""
    if str(device).startswith("cuda"):
        try:
            import torch

            return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
        except Exception:  # noqa: BLE001 - the name is a courtesy
            return str(device)
    return str(device)
