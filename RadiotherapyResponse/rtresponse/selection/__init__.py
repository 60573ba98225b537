"""Feature selection for radiomics response models, as scikit-learn transformers.

Paper 000 selects in two steps: (1) robust features (ICC > 0.7 across repeated delineations,
:class:`ICCFilter`) without redundancy (|Spearman rho| <= 0.8, :class:`CollinearityFilter`); (2) the
top 10 by one of five rankers (chi-square, Wilcoxon, NCA, ReliefF, Inf-FS). Paper 001 uses
logistic-regression RFE to 20 features; the lasso is the other common embedded choice. Every
selector is a ``SelectorMixin`` transformer, so any selector and any classifier make a Pipeline::

    from sklearn.pipeline import Pipeline
    from sklearn.linear_model import LogisticRegression
    pipe = Pipeline([("icc", ICCFilter(repeats=long_table)), ("collinearity", CollinearityFilter()),
                     ("rank", make_selector("relieff", k=10)), ("model", LogisticRegression())])

``SELECTORS`` maps a name to the selector class (a factory: call it with its parameters);
:func:`make_selector` builds one by name, passing only the parameters it accepts.
"""

from __future__ import annotations

import inspect

from ..errors import InputError
from .base import NoSelection, RankingSelector
from .collinearity import CollinearityFilter, spearman_abs
from .embedded import LassoSelector, RFESelector
from .inffs import InfFSSelector, inffs_scores
from .nca import NCASelector, nca_weights
from .rankers import Chi2Selector, WilcoxonSelector, quantile_bins
from .relieff import ReliefFSelector, relieff_weights
from .robustness import ICCFilter, icc

SELECTORS = {
    "none": NoSelection,       # no ranking: keep every feature
    "chi2": Chi2Selector,
    "wilcoxon": WilcoxonSelector,
    "nca": NCASelector,
    "relieff": ReliefFSelector,
    "inffs": InfFSSelector,
    "lasso": LassoSelector,
    "rfe": RFESelector,
}


def make_selector(name: str, **params):
    """The selector registered as ``name`` (see ``SELECTORS``), built with the ``params`` it accepts.

    Parameters that the selector does not take (``k`` for "none", ``random_state`` for most
    rankers) are ignored, so callers can pass one set of options to every name; ``None`` values
    are also skipped so the selector's defaults apply.
    """
    key = str(name).strip().lower()
    if key not in SELECTORS:
        raise InputError(f"unknown feature selector {name!r}; known: {', '.join(SELECTORS)}")
    factory = SELECTORS[key]
    accepted = inspect.signature(factory.__init__).parameters
    return factory(**{k: v for k, v in params.items() if k in accepted and v is not None})


__all__ = [
    "SELECTORS", "make_selector",
    "icc", "ICCFilter", "CollinearityFilter", "spearman_abs",
    "RankingSelector", "NoSelection", "Chi2Selector", "WilcoxonSelector", "NCASelector", "ReliefFSelector",
    "InfFSSelector", "LassoSelector", "RFESelector",
    "quantile_bins", "nca_weights", "relieff_weights", "inffs_scores",
]
