"""The fast LDA of the bootstrap grid on one feature (forward selection's first step) equals scikit-learn's.

Ledoit-Wolf shrinkage of a single standardised feature divides 0 by 0 unless it is special-cased, as
scikit-learn does; the grid then failed with "SVD did not converge" on Tanaka's protocol."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")


def test_single_feature_lda_matches_scikit_learn():
    from rtresponse.evaluation.bootstrap import decision_scores
    from rtresponse.evaluation.fast_fits import fit_predict
    from rtresponse.models.classifiers import make_classifier
    from rtresponse.models.grid import _with_imputer

    # class 0: two values three times each; standardised, its Ledoit-Wolf terms are 0 and a rounding error
    values = [37 / 9] * 3 + [68 / 9] * 3 + [2.0, 5.0, 9.0, 4.0, 7.0, 6.0] + [3.0, 8.0, 5.5, 4.5]
    X = np.array(values)[:, None]
    y = np.array([0] * 6 + [1] * 6 + [0, 1, 0, 1])
    train, test = np.arange(12), np.arange(12, 16)
    fast = fit_predict("lda", X, y, train, test)
    model = _with_imputer(make_classifier("lda", 0)).fit(X[train], y[train])
    assert np.all(np.isfinite(fast))
    assert np.allclose(fast, decision_scores(model, X[test]))
