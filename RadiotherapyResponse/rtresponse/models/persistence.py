"""Saving and loading fitted response models without executing code (skops, never pickle).

A model file holds the fitted scikit-learn pipeline and what is needed to apply it to new
patients: the feature names in order, the outcome and its positive class (the outcome value the
probability is for), and the decision cut-off; and a model card (``bundle["card"]``): that class
again, the fitted model's parameters as used (after any tuning), the package versions, the date and
what the caller adds (training-data hash, validation settings). Loading accepts only the exact
types (and the skops loader of each) that the models this library makes need, listed in
``data/skops_allowlist.json``; a file that needs anything else, is not a zip archive, or looks like
a zip bomb is refused with one message naming it.
"""

from __future__ import annotations

import json
import os
import zipfile
from functools import lru_cache
from pathlib import Path

from ..atomic import atomic_path
from ..errors import InputError
from ..safezip import check_zip

FORMAT = "rtresponse-model-1"
ALLOW_LIST = Path(__file__).resolve().parent.parent / "data" / "skops_allowlist.json"


@lru_cache(maxsize=1)
def allowed_types() -> dict[str, frozenset]:
    """skops loader name -> the exact type names accepted with that loader."""
    with open(ALLOW_LIST, encoding="utf-8") as handle:
        return {loader: frozenset(names) for loader, names in json.load(handle)["loaders"].items()}


def schema_types(schema) -> set[tuple[str, str]]:
    """Every (loader, "module.Class") pair of the nodes in a skops ``schema.json``.

    Walks every dict and list (iteratively: the nesting depth is the file's choice), so no node
    escapes the check wherever it hides.
    """
    found, stack = set(), [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__loader__" in item or "__class__" in item or "__module__" in item:
                found.add((str(item.get("__loader__")), f"{item.get('__module__')}.{item.get('__class__')}"))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _refused(pairs, allowed: dict[str, frozenset]) -> list[str]:
    names = []
    for loader, name in sorted(pairs, key=lambda pair: pair[1]):
        if name in allowed.get(loader, ()):
            continue
        trusted_elsewhere = any(name in names_ for names_ in allowed.values())
        names.append(f"{name} (as {loader})" if trusted_elsewhere else name)
    return list(dict.fromkeys(names))


DEFAULT_POSITIVE = 1  # the positive class when none was named: assemble()'s default for 0/1 outcomes


def model_parameters(model) -> dict:
    """The fitted model's parameters that are plain values (``get_params(deep=True)``), as used after any tuning."""
    try:
        params = model.get_params(deep=True)
    except Exception:  # noqa: BLE001 - not a scikit-learn estimator: nothing to list
        return {}
    found = {}
    for name, value in sorted(params.items()):
        if hasattr(value, "item") and type(value).__module__ == "numpy":
            value = value.item()  # numpy scalars (a tuned C, say) as plain numbers
        if value is None or isinstance(value, (bool, int, float, str)):
            found[str(name)] = value
    return found


def model_card(model, features, outcome: str, positive, cutoff: float, description: str = "",
               details: dict | None = None) -> dict:
    """The card saved in a model file: what the probability is of, the parameters used, versions, date, ``details``."""
    from .. import provenance

    card = {"outcome": str(outcome), "positive_class": positive, "probability_of": positive,
            "probability": f"P({outcome} = {positive})", "cutoff": float(cutoff),
            "decision": f"predicted_positive = probability >= {float(cutoff):.6g}", "description": str(description),
            "features": [str(f) for f in features], "model_type": type(model).__name__,
            "model_parameters": model_parameters(model)}
    card.update(details or {})
    return provenance.record(**card)


def save_model(path: str | os.PathLike, model, features, outcome: str, positive, cutoff: float,
               description: str = "", details: dict | None = None) -> Path:
    """Write a fitted model and its metadata to ``path`` (``.skops``), atomically.

    ``positive``: the outcome value the probability is for (None: 1, the default of :func:`.tables.assemble` for
    0/1 outcomes); ``details``: what the model card also holds (plain values: text, numbers, lists, dicts),
    such as the training data's hash and the validation settings.
    """
    import skops.io as sio

    path = Path(path)
    if path.suffix != ".skops":
        raise InputError("model files end in .skops", path=str(path))
    if positive is None:
        positive = DEFAULT_POSITIVE
    positive = positive.item() if hasattr(positive, "item") else positive  # numpy scalars as plain numbers
    positive = positive if isinstance(positive, (int, float, str)) else str(positive)
    bundle = {"format": FORMAT, "model": model, "features": [str(f) for f in features], "outcome": str(outcome),
              "positive": positive, "cutoff": float(cutoff), "description": str(description),
              "card": model_card(model, features, outcome, positive, cutoff, description, details)}
    with atomic_path(path) as tmp:
        sio.dump(bundle, tmp)
    return path


def load_model(path: str | os.PathLike) -> dict:
    """The bundle written by :func:`save_model`; refuses files that need untrusted types.

    Order matters: the zip is checked (bomb, member names) before anything reads it, the types
    in ``schema.json`` are checked against the allow-list before skops builds its tree, and
    skops' own audit must agree before anything is constructed.
    """
    import skops.io as sio

    path = Path(path)
    if not path.is_file():
        raise InputError("model file not found", path=str(path))
    check_zip(path, "a model file")
    allowed = allowed_types()
    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json"))
        pairs = schema_types(schema)
    except Exception as error:  # noqa: BLE001 - no schema, bad JSON, absurd nesting: not a model file
        raise InputError(f"not a model file ({_first_line(error)})", path=str(path)) from None
    refused = _refused(pairs, allowed)
    if refused:
        raise InputError(f"the file needs types this program does not trust: {', '.join(refused[:8])}"
                         + (f" and {len(refused) - 8} more" if len(refused) > 8 else ""), path=str(path))
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as error:  # noqa: BLE001 - skops cannot parse it
        raise InputError(f"not a model file ({_first_line(error)})", path=str(path)) from None
    # skops names more than node types (a bound method as "module.Class.method"): all must be allowed
    everything = frozenset().union(*allowed.values())
    refused = [name for name in untrusted if name not in everything]
    if refused:
        raise InputError(f"the file needs types this program does not trust: {', '.join(refused[:8])}",
                         path=str(path))
    try:
        bundle = sio.load(path, trusted=untrusted)
    except Exception as error:  # noqa: BLE001 - allowed types, inconsistent content
        raise InputError(f"cannot read the model file ({_first_line(error)})", path=str(path)) from None
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise InputError("not an rtresponse model file", path=str(path))
    if bundle.get("positive") is None:  # files from before the class was always stored
        bundle["positive"] = DEFAULT_POSITIVE
    bundle.setdefault("card", {})
    return bundle


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return (text.splitlines()[0][:200] if text else type(error).__name__)


def predict(bundle: dict, features) -> "object":
    """Probabilities of the positive class for the rows of ``features`` (a DataFrame with the model's columns).

    Columns: ``probability`` (of ``outcome`` = ``positive_class``), ``predicted_positive`` (probability at or above
    the model's cut-off), ``outcome`` and ``positive_class`` (the same on every row, so the table says it).
    """
    import pandas as pd

    from ..evaluation.bootstrap import decision_scores

    missing = [f for f in bundle["features"] if f not in features.columns]
    if missing:
        raise InputError(f"the features lack {len(missing)} column(s) the model needs, e.g. {', '.join(missing[:5])}")
    scores = decision_scores(bundle["model"], features[bundle["features"]])
    positive = bundle.get("positive")
    return pd.DataFrame({"probability": scores, "predicted_positive": (scores >= bundle["cutoff"]).astype(int),
                         "outcome": str(bundle["outcome"]),
                         "positive_class": DEFAULT_POSITIVE if positive is None else positive},
                        index=features.index)
