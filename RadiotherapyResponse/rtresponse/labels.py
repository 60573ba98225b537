"""Outcome labels derived from images: early tumour regression between planning and boost CT.

Tanaka et al.: ΔGTV/treatment day = (initial GTV − boost GTV) / initial GTV / number of
treatment days before the boost CT; patients above the cohort median regress (label 1),
the others do not; GTVs under 5 cm³ are excluded.

Rates and thresholds are fractions of the initial volume per day everywhere (the ``rate`` column, the
``threshold`` argument, ``attrs["threshold"]``): 0.0202 per day is the paper's 2.02 %/day.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import SimpleITK as sitk

    from .cohort import Cohort

STATUS = "status"
RATE_UNIT = "fraction of the initial GTV volume per day (x 100 = %/day)"
UNITS = {"initial_cc": "cm3", "boost_cc": "cm3", "treatment_days": "days", "rate": RATE_UNIT,
         "regression": "1 = rate > threshold, 0 = not, empty = excluded"}


def regression_rate(initial_volume_cc, boost_volume_cc, treatment_days):
    """(initial − boost) / initial / treatment days: the fraction of the tumour lost per day (× 100 for %/day)."""
    initial = np.asarray(initial_volume_cc, dtype=float)
    boost = np.asarray(boost_volume_cc, dtype=float)
    days = np.asarray(treatment_days, dtype=float)
    if np.any(initial <= 0):
        raise InputError("initial volume must be positive")
    if np.any(days <= 0):
        raise InputError("treatment days must be positive")
    rate = (initial - boost) / initial / days
    return float(rate) if rate.ndim == 0 else rate


def mask_volume_cc(mask: "sitk.Image") -> float:
    """Volume of a mask's non-zero voxels in cm³ (voxel count × voxel volume)."""
    import SimpleITK as sitk

    voxels = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
    return voxels * float(np.prod(mask.GetSpacing())) / 1000.0


def _volumes_task(pid: str, *, cohort, initial, boost, image, boost_image) -> tuple:
    """One task: (initial GTV cm³, boost GTV cm³, None) of a patient, or what is known and the problem."""
    volumes = [np.nan, np.nan]
    try:
        volumes[0] = mask_volume_cc(cohort.read_mask(pid, initial, image=image))
        volumes[1] = mask_volume_cc(cohort.read_mask(pid, boost, image=boost_image))
    except InputError as error:
        return volumes[0], volumes[1], error.problem
    return volumes[0], volumes[1], None


def label_cohort(cohort: "Cohort", initial: str = "GTVp", boost: str = "GTVp_boost", days: str = "treatment_days",
                 threshold: float | None = None, min_volume_cc: float = 5.0, image: str = "CT",
                 boost_image: str | None = None, n_jobs: int = 1, execution=None, progress=None,
                 should_cancel=None) -> "pd.DataFrame":
    """Regression labels of every patient (index ``patient_id``).

    Columns: ``initial_cc``, ``boost_cc``, ``treatment_days``, ``rate`` (fraction per day),
    ``regression`` (1 when ``rate`` > ``threshold``, default the median rate of the included
    patients; empty for excluded ones) and ``status`` (``ok``, or why the patient is excluded:
    initial GTV under ``min_volume_cc``, or an unreadable mask). The boost mask is read on
    ``boost_image`` (default ``<image>_boost`` when the manifest has it, else ``image``). The threshold used is in
    ``result.attrs["threshold"]`` (a fraction per day, as ``threshold`` and ``rate``), and how the labels were made
    (threshold, its source and unit, volumes, masks, column units) in ``result.attrs["provenance"]``.

    The masks are read one task per patient: ``n_jobs`` local processes, or ``execution`` (:mod:`rtresponse.execution`:
    an ``Execution``, a dask ``Client`` or a scheduler setting); the table is the same wherever they run.
    ``progress(done, total)`` as each patient's volumes are in; ``should_cancel()`` True raises Cancelled.
    """
    import pandas as pd

    from . import provenance
    from .execution import resolve

    for name in (initial, boost):
        if name not in cohort.mask_names:
            raise InputError(f"no column mask_{name} (masks: {', '.join(cohort.mask_names)})", path=str(cohort.path))
    clinical = cohort.clinical()
    if days not in clinical.columns:
        raise InputError(f"no column clin_{days} (clinical: {', '.join(clinical.columns)})", path=str(cohort.path))
    if boost_image is None:  # the boost mask lies on the boost CT when the manifest has one
        boost_image = f"{image}_boost" if f"{image}_boost" in cohort.image_names else image
    ids = cohort.patient_ids
    runner, owned = resolve(execution, max(1, min(int(n_jobs or 1), len(ids) or 1)))
    try:
        volumes = runner.map(_volumes_task, [(pid,) for pid in ids],
                             shared=dict(cohort=cohort, initial=initial, boost=boost, image=image,
                                         boost_image=boost_image),
                             progress=progress, should_cancel=should_cancel, cancelled="labelling cancelled",
                             on_lost=lambda i, error: (np.nan, np.nan,
                                                       f"worker lost while reading the masks ({error})"))
        where = runner.describe()
    finally:
        if owned:
            runner.close()
    rows = []
    for pid, (initial_cc, boost_cc, problem) in zip(ids, volumes):
        row = {"patient_id": pid, "initial_cc": initial_cc, "boost_cc": boost_cc,
               "treatment_days": pd.to_numeric(clinical.loc[pid, days], errors="coerce"), "rate": np.nan}
        try:
            if problem is not None:
                raise InputError(problem)
            if not row["treatment_days"] > 0:
                raise InputError(f"clin_{days} must be a positive number, got {clinical.loc[pid, days]!r}", patient=pid)
            if row["initial_cc"] < min_volume_cc:
                raise InputError(f"excluded: initial GTV {row['initial_cc']:.2f} cm³ < {min_volume_cc:g} cm³",
                                 patient=pid)
            row["rate"] = regression_rate(row["initial_cc"], row["boost_cc"], row["treatment_days"])
            row[STATUS] = "ok"
        except InputError as error:
            row[STATUS] = error.problem
        rows.append(row)
    table = pd.DataFrame(rows).set_index("patient_id")
    included = table[STATUS] == "ok"
    source = "given"
    if threshold is None:
        source = f"median rate of the {int(included.sum())} included patients"
        if not included.any():
            raise InputError("no patient has both volumes and treatment days: nothing to take the median of",
                             path=str(cohort.path))
        threshold = float(table.loc[included, "rate"].median())
    table["regression"] = pd.Series((table["rate"] > threshold).astype(int), dtype="Int64").where(included)
    table = table[["initial_cc", "boost_cc", "treatment_days", "rate", "regression", STATUS]]
    table.attrs["threshold"] = threshold
    table.attrs["provenance"] = provenance.record(
        settings={"initial": initial, "boost": boost, "days": days, "threshold": threshold,
                  "min_volume_cc": min_volume_cc, "image": image, "boost_image": boost_image},
        threshold={"value": float(threshold), "unit": RATE_UNIT, "percent_per_day": float(threshold) * 100,
                   "source": source},
        min_volume_cc=min_volume_cc, masks={"initial": f"mask_{initial} on image_{image}",
                                            "boost": f"mask_{boost} on image_{boost_image}"},
        treatment_days=f"clin_{days}", units=UNITS, execution=where)
    return table


def read_labels(path, patients=None) -> "pd.DataFrame":
    """A labels CSV (``patient_id`` and one column per label, as ``rtresponse labels`` writes it) indexed by
    patient_id: the outcomes ``evaluate --labels`` and ``study run`` take from it.

    A ``status`` column, when there, blanks the labels of the rows whose status is not ``ok`` (excluded patients)
    and is dropped. A patient with two rows, or (``patients``: the manifest's ids) one the manifest lacks, is an
    InputError naming the file and the patient.
    """
    import os

    from .inputs import ID_COLUMN, read_table

    where = os.fspath(path)
    frame = read_table(path, "labels file")
    if ID_COLUMN not in frame.columns:
        raise InputError(f"a labels file needs a {ID_COLUMN} column (it has {', '.join(map(str, frame.columns))})",
                         path=where)
    ids = frame[ID_COLUMN].astype(str).str.strip()
    if ids.duplicated().any():
        raise InputError("has more than one row in the labels file", patient=ids[ids.duplicated()].iloc[0], path=where)
    frame = frame.drop(columns=ID_COLUMN).set_axis(ids.to_numpy(), axis=0).rename_axis(ID_COLUMN)
    if patients is not None:
        known = set(map(str, patients))
        unknown = [pid for pid in frame.index if pid not in known]
        if unknown:
            more = f" ({len(unknown)} such patients)" if len(unknown) > 1 else ""
            raise InputError(f"is in the labels file but not in the manifest{more}", patient=unknown[0], path=where)
    if STATUS in frame.columns:
        ok = frame[STATUS].astype(str) == "ok"
        frame = frame.drop(columns=STATUS)
        frame = frame.where(ok, axis=0)
    if frame.shape[1] == 0:
        raise InputError("the labels file has no label column besides patient_id and status", path=where)
    return frame


def merge_labels(outcomes: "pd.DataFrame", paths, source: str = "the manifest") -> "pd.DataFrame":
    """The outcomes (index patient_id: the manifest's, ``cohort.outcomes()``) with each labels file's columns
    (:func:`read_labels`) added; a patient a file does not label has none (NaN).

    A label in the outcomes (or an earlier file) and a file with a different value for a patient is an
    InputError naming the file, the patient and the label; where only one of them has a value, it is taken.
    """
    import os

    merged = outcomes.copy()
    merged.index = merged.index.astype(str)
    origin = {column: source for column in merged.columns}
    for path in paths or []:
        labels = read_labels(path, patients=merged.index)
        for column in labels.columns:
            given = labels[column].reindex(merged.index)
            if column in merged.columns:
                have = merged[column]
                for pid in merged.index[have.notna() & given.notna()]:
                    if not _same(have[pid], given[pid]):
                        raise InputError(f"label '{column}' is {_text(given[pid])} here but {_text(have[pid])} in "
                                         f"{origin[column]}", patient=pid, path=os.fspath(path))
                merged[column] = have.where(have.notna(), given)
            else:
                merged[column] = given
                origin[column] = os.fspath(path)
    return merged


def _same(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a).strip() == str(b).strip()


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)
