"""A study's tables: the feature sets a response model is judged on, the positive class, a new patient's inputs.

One set of rules for the Response Model module and the ``rtresponse evaluate`` / ``predict`` commands. Pure pandas:
the callers turn table nodes or files into DataFrames and pass a ``label`` (node name or path) for the messages.
A clinical table has one row per patient (``patient_id`` column or index) with clinical factors and outcomes;
in the module they keep their ``clin_`` / ``outcome_`` prefixes, in a cohort manifest's ``clinical()`` they do not.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence, Union

from ..errors import InputError
from .tables import encode_clinical, join_sets, read_csv, read_feature_table

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

PATIENT_ID = "patient_id"
CLINICAL_PREFIX = "clin_"
OUTCOME_PREFIX = "outcome_"
CLINICAL_SET = "clinical"  # the name of the clinical factors' feature set

Table = Union[str, os.PathLike, "pd.DataFrame"]


def clinical_frame(frame: "pd.DataFrame", label: str = "clinical table") -> "pd.DataFrame":
    """The clinical table indexed by patient_id (str), one row per patient; ``frame`` is left as it is."""
    if PATIENT_ID in frame.columns:
        frame = frame.set_index(PATIENT_ID)
    if frame.index.name != PATIENT_ID:
        raise InputError("the clinical table needs a patient_id column (one row per patient)", node=label)
    frame = frame.copy()
    frame.index = frame.index.astype(str)
    if frame.index.duplicated().any():
        raise InputError(f"patient {frame.index[frame.index.duplicated()][0]} has more than one row", node=label)
    return frame


def feature_table(table: Table, name: str, label: str | None = None) -> "pd.DataFrame":
    """A numeric feature table indexed by patient_id, failed rows left out; refuses tables holding outcomes.

    ``table``: a DataFrame or a CSV path; ``name``: the feature set's name; ``label``: the node the table came from,
    named in messages (default: the CSV path).
    """
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        frame, where = table, ({} if label is None else {"node": label})
    else:
        frame, where = read_csv(table, "feature table"), ({"path": os.fspath(table)} if label is None
                                                          else {"node": label})
    leaks = [str(c) for c in frame.columns if str(c).startswith(OUTCOME_PREFIX)]
    if leaks:
        raise InputError(f"feature table '{name}' has outcome column(s) {', '.join(leaks[:3])}: the outcome "
                         "would be a feature (is it the clinical table?)", **where)
    features = read_feature_table(frame, name=label or where.get("path") or name)
    if features.empty:
        raise InputError(f"feature table '{name}' has no row whose status is ok", **where)
    return features


def feature_set_names(table_names: Iterable[str], with_clinical: bool = False, combine: bool = True) -> list[str]:
    """The feature sets a run evaluates, in order: each table, the clinical factors, then all combined."""
    names = list(table_names) + ([CLINICAL_SET] if with_clinical else [])
    return names + (["+".join(names)] if combine and len(names) > 1 else [])


def feature_sets(feature_tables: Mapping[str, Table], clinical: "pd.DataFrame | None" = None,
                 clinical_columns: Sequence[str] = (), combine: bool = True) -> dict[str, "pd.DataFrame"]:
    """{set name: numeric DataFrame indexed by patient_id}: each table, the encoded clinical factors, all combined.

    ``feature_tables``: {name: DataFrame or CSV path}, each read by ``feature_table``. ``clinical``: the clinical
    table (patient_id column or index), needed when ``clinical_columns`` names factors to add as the "clinical" set.
    With ``combine``, all sets joined on their common patients are one more set (named as by ``feature_set_names``);
    columns that two sets share are prefixed "<set>:" there.
    """
    sets = {name: feature_table(table, name) for name, table in dict(feature_tables or {}).items()}
    clinical_columns = list(clinical_columns or [])
    if clinical_columns:
        if clinical is None:
            raise InputError("no clinical table for the clinical factors")
        clinical = clinical_frame(clinical)
        unknown = [c for c in clinical_columns if c not in clinical.columns]
        if unknown:
            raise InputError(f"no clinical factor(s) {', '.join(map(str, unknown))} in the clinical table "
                             f"(it has {', '.join(map(str, clinical.columns)) or 'none'})")
        if CLINICAL_SET in sets:
            raise InputError("'clinical' names the clinical factors: rename the feature table")
        sets[CLINICAL_SET] = encode_clinical(clinical, clinical_columns)
    if not sets:
        raise InputError("choose at least one feature table or clinical factor")
    names = feature_set_names(sets, combine=combine)
    if len(names) > len(sets):
        sets[names[-1]] = join_sets(sets)
    return sets


def parse_positive(text, outcome: "pd.Series"):
    """The positive outcome value typed as text, converted to the outcome's type ("" or None: the default)."""
    import pandas as pd

    if text is None or str(text).strip() == "":
        return None
    text = str(text).strip()
    if pd.api.types.is_numeric_dtype(outcome) and not pd.api.types.is_bool_dtype(outcome):
        try:
            return float(text) if any(ch in text for ch in ".eE") else int(text)
        except ValueError:
            raise InputError(f"the positive class '{text}' is not a number, but outcome '{outcome.name}' is "
                             "numeric") from None
    return text


def patient_features(model_features: Sequence[str], features: "pd.DataFrame", clinical: "pd.DataFrame | None" = None,
                     *, label: str = "patient features", clinical_label: str = "clinical table") -> "pd.DataFrame":
    """A saved model's inputs for the rows of ``features``, clinical factors encoded from ``clinical``.

    A table without patient_id (a Tumor Features table: one row per segment of the current patient) is used row
    by row, each row labelled by its index; its clinical table must then have one row, used for every row. One-hot
    columns of categories the patients do not have are 0. ``label`` and ``clinical_label`` name the two tables in
    messages.
    """
    import numpy as np
    import pandas as pd

    single_patient = PATIENT_ID not in features.columns and features.index.name != PATIENT_ID
    if single_patient:
        features = features.copy()
        features.index = pd.Index(features.index.astype(str), name=PATIENT_ID)
    features = read_feature_table(features, name=label)
    if features.empty:
        raise InputError("no row whose status is ok", node=label)
    needed = [f for f in model_features if f not in features.columns]
    if needed and clinical is not None:
        clinical = clinical_frame(clinical, clinical_label)
        columns = [c for c in clinical.columns if any(f == c or f.startswith(f"{c}=") for f in needed)]
        encoded = encode_clinical(clinical, columns)
        for f in needed:  # one-hot columns of categories this patient does not have
            if f not in encoded.columns and "=" in f and f.split("=", 1)[0] in columns:
                encoded[f] = 0.0
        if single_patient or not set(features.index) & set(encoded.index):
            if len(encoded) != 1:
                raise InputError(f"the features are not those of the table's patients and the clinical table has "
                                 f"{len(encoded)} rows: choose the current patient's clinical table (one row)",
                                 node=clinical_label)
            encoded = pd.DataFrame(np.repeat(encoded.to_numpy(), len(features), axis=0), index=features.index,
                                   columns=encoded.columns)
        else:
            missing = [pid for pid in features.index if pid not in encoded.index]
            if missing:
                raise InputError(f"no clinical row for patient(s) {', '.join(missing[:5])}", node=clinical_label)
            encoded = encoded.loc[features.index]
        features = features.join(encoded[[c for c in encoded.columns if c not in features.columns]])
    missing = [f for f in model_features if f not in features.columns]
    clinical_missing = [f for f in missing if str(f).startswith(CLINICAL_PREFIX)]
    if clinical_missing and clinical is None:
        raise InputError(f"the model uses clinical factors ({', '.join(clinical_missing[:5])}): choose the "
                         "patient's clinical table")
    if missing:
        hint = ("; if they are clinical factors, give the clinical table (the manifest: `rtresponse predict "
                "--manifest`)") if clinical is None else ""
        raise InputError(f"the features lack {len(missing)} column(s) the model needs, e.g. "
                         f"{', '.join(map(str, missing[:5]))}{hint}", node=label)
    return features
