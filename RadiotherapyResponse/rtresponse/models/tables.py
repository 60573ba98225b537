"""Feature tables in, a modelling matrix out: join by patient, encode clinical factors, align the outcome.

Any CSV or DataFrame indexed (or with a column) ``patient_id`` is a feature table. Rows whose
``status`` is not ``ok`` (a failed extraction) are left out and reported; the text columns that say
how a table was made (``weights`` of deep features: "random (seed 0)" or the weights file) are not
features. Categorical clinical factors are one-hot encoded with missing values as their own
``unknown`` category; missing numbers stay NaN, for the model's imputer (median + missing
indicator) to handle explicitly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Union

from ..errors import InputError
from ..inputs import finite_table, repeated

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

Table = Union[str, os.PathLike, "pd.DataFrame"]
STATUS = "status"
NOT_FEATURES = ("weights",)  # provenance columns of feature tables (besides status): never features


def read_csv(path: str | os.PathLike, what: str = "the table") -> "pd.DataFrame":
    """A CSV file as a DataFrame (patient ids as text, repeated column names refused); InputError naming it."""
    from ..inputs import read_table

    return read_table(path, what)


def read_feature_table(table: Table, name: str | None = None) -> "pd.DataFrame":
    """A numeric DataFrame indexed by ``patient_id``; failed rows (``status`` != ok) and the columns
    :data:`NOT_FEATURES` dropped."""
    import pandas as pd

    label = name or (str(table) if not isinstance(table, pd.DataFrame) else "feature table")
    frame = table.copy() if isinstance(table, pd.DataFrame) else read_csv(table, "feature table")
    if "patient_id" in frame.columns:
        frame = frame.set_index("patient_id")
    if frame.index.name != "patient_id":
        raise InputError("a feature table needs a patient_id column or index", path=label)
    if "perturbation" in frame.columns or "perturbation" in (frame.index.names or []):
        raise InputError("this is a long table of perturbations; pass it to ICCFilter, not as features", path=label)
    frame.index = frame.index.astype(str)
    if len(set(map(str, frame.columns))) != frame.shape[1]:
        raise InputError(f"column {repeated([str(c) for c in frame.columns])[0]} appears more than once", path=label)
    if frame.index.duplicated().any():
        raise InputError(f"duplicate patient_id {frame.index[frame.index.duplicated()][0]}", path=label)
    if STATUS in frame.columns:
        frame = frame[frame[STATUS].astype(str) == "ok"].drop(columns=STATUS)
    frame = frame.drop(columns=[c for c in NOT_FEATURES if c in frame.columns])
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if text:
        raise InputError(f"non-numeric feature column(s) {', '.join(map(str, text[:5]))}; clinical factors go "
                         "through encode_clinical", path=label)
    return finite_table(frame.astype(float), label)


def encode_clinical(clinical: "pd.DataFrame", columns=None) -> "pd.DataFrame":
    """Clinical factors ready for a model: numbers kept (NaN = missing), categories one-hot with ``unknown``."""
    import pandas as pd

    frame = clinical if columns is None else clinical[list(columns)]
    parts = []
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            parts.append(values.astype(float).rename(column))
        else:
            categories = values.astype(object).where(values.notna(), "unknown").astype(str)
            parts.append(pd.get_dummies(categories, prefix=column, prefix_sep="=", dtype=float))
    return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=frame.index)


def join_sets(tables: Mapping[str, "pd.DataFrame"]) -> "pd.DataFrame":
    """Feature sets side by side on the patients they all have (inner join on patient_id).

    Columns keep their names, prefixed ``<set>:`` only where two sets share a name.
    """
    import pandas as pd

    names = [str(c) for frame in tables.values() for c in frame.columns]
    clashes = {c for c in names if names.count(c) > 1}
    parts = [frame.rename(columns=lambda c, n=name: f"{n}:{c}" if str(c) in clashes else c)
             for name, frame in tables.items()]
    return pd.concat(parts, axis=1, join="inner")


@dataclass
class ModellingData:
    X: "pd.DataFrame"
    y: "np.ndarray"
    positive: object
    dropped: dict[str, str] = field(default_factory=dict)  # patient_id -> why it is not in X


def assemble(tables: Mapping[str, "pd.DataFrame"], outcome: "pd.Series", positive=None) -> ModellingData:
    """Join feature tables on patient_id (inner join) and align a binary outcome.

    Columns are named as by ``join_sets``. ``positive``
    names the positive outcome label (default: 1, or the larger of two numeric labels).
    """
    if not tables:
        raise InputError("no feature tables given")
    X = join_sets(tables)
    dropped: dict[str, str] = {}
    everyone = set().union(*(set(frame.index) for frame in tables.values())) | set(outcome.index.astype(str))
    for pid in sorted(everyone - set(X.index)):
        missing = [name for name, frame in tables.items() if pid not in frame.index]
        dropped[pid] = f"no row in {', '.join(missing)}" if missing else "not in every table"
    outcome = outcome.copy()
    outcome.index = outcome.index.astype(str)
    labels = outcome.reindex(X.index)
    for pid in X.index[labels.isna()]:
        dropped[pid] = "outcome missing"
    X = X[labels.notna()]
    labels = labels[labels.notna()]
    values = sorted(labels.unique(), key=str)
    if len(values) != 2:
        raise InputError(f"outcome '{outcome.name}' must have two classes among the patients with features, "
                         f"found {len(values)} ({values[:5]})")
    if positive is None:
        positive = 1 if 1 in values else max(values) if all(isinstance(v, (int, float)) for v in values) else None
        if positive is None:
            raise InputError(f"name the positive class of outcome '{outcome.name}' (one of {values})")
    if positive not in values:
        raise InputError(f"positive class {positive!r} is not among the outcome's values {values}")
    y = (labels == positive).to_numpy().astype(int)
    return ModellingData(X=X, y=y, positive=positive, dropped=dropped)
