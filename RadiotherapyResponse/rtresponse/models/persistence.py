"""Saving and loading fitted response models without executing code (skops, never pickle).

A model file holds the fitted scikit-learn pipeline and what is needed to apply it to new
patients: the feature names in order, the outcome and its positive class, and the decision
cut-off. Loading trusts only types from scikit-learn, NumPy, SciPy and rtresponse; a file that
needs anything else is refused with the list of types.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..atomic import atomic_path
from ..errors import InputError

FORMAT = "rtresponse-model-1"
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "rtresponse.", "builtins.", "collections.")


def save_model(path: str | os.PathLike, model, features, outcome: str, positive, cutoff: float,
               description: str = "") -> Path:
    """Write a fitted model and its metadata to ``path`` (``.skops``), atomically."""
    import skops.io as sio

    path = Path(path)
    if path.suffix != ".skops":
        raise InputError("model files end in .skops", path=str(path))
    bundle = {"format": FORMAT, "model": model, "features": [str(f) for f in features], "outcome": str(outcome),
              "positive": positive if isinstance(positive, (int, float, str)) else str(positive),
              "cutoff": float(cutoff), "description": str(description)}
    with atomic_path(path) as tmp:
        sio.dump(bundle, tmp)
    return path


def load_model(path: str | os.PathLike) -> dict:
    """The bundle written by :func:`save_model`; refuses files that need untrusted types."""
    import skops.io as sio

    path = Path(path)
    if not path.is_file():
        raise InputError("model file not found", path=str(path))
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as error:  # not a skops file at all
        raise InputError(f"not a model file ({str(error).splitlines()[0][:200]})", path=str(path)) from None
    refused = [name for name in untrusted if not name.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise InputError(f"the file needs types this program does not trust: {', '.join(refused[:8])}",
                         path=str(path))
    bundle = sio.load(path, trusted=untrusted)
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise InputError("not an rtresponse model file", path=str(path))
    return bundle


def predict(bundle: dict, features) -> "object":
    """Probabilities of the positive class for the rows of ``features`` (a DataFrame with the model's columns)."""
    import pandas as pd

    from ..evaluation.bootstrap import decision_scores

    missing = [f for f in bundle["features"] if f not in features.columns]
    if missing:
        raise InputError(f"the features lack {len(missing)} column(s) the model needs, e.g. {', '.join(missing[:5])}")
    scores = decision_scores(bundle["model"], features[bundle["features"]])
    return pd.DataFrame({"probability": scores, "predicted_positive": (scores >= bundle["cutoff"]).astype(int)},
                        index=features.index)
