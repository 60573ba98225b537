"""The DLR study of Jeong et al. on a cohort: split, cached I3D features, LASSO clinical factors,
the image-only and image + clinical models, test-set metrics, Shapley values.

Protocol (the modelling issue's train/test validation): a stratified train/test split; a
validation part of the training patients for early stopping and tuning; the cut-off that
maximises Youden's index on the training patients; on the test patients AUC with DeLong 95 %
CI, balanced accuracy, sensitivity, specificity, PPV, NPV, MCC, F1 and Brier score. The results
are :class:`rtresponse.models.validation.SplitResult` objects, so
:func:`~rtresponse.models.validation.compare_on_test` compares them with the handcrafted SVM
(DeLong, NRI, IDI) on the same test patients.

Clinical factors: encoded (numbers kept, missing numbers = the training median; categories
one-hot with "unknown"), then the ``n_factors`` most informative factors by an L1-penalised
logistic regression on the training patients (a factor ranks by its best one-hot column).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ...errors import InputError
from .features import CohortFeatures
from .training import HeadConfig, HeadResult, predict_proba, train_head

IMAGE_ONLY, WITH_CLINICAL = "DLR (MR)", "DLR (MR + CF)"


@dataclass
class ClinicalEncoding:
    factors: list                 # chosen clinical factors (manifest names without clin_)
    columns: list                 # their encoded columns, in model order
    medians: dict                 # fill values for missing numbers (training medians)

    def encode(self, clinical: "pd.DataFrame") -> "pd.DataFrame":
        from ..tables import encode_clinical

        encoded = encode_clinical(clinical, self.factors).reindex(columns=self.columns, fill_value=0.0)
        return encoded.fillna(self.medians).astype(float)

    def players(self) -> dict:
        """Shapley players: each factor with its encoded columns."""
        return {f: [c for c in self.columns if c == f or c.startswith(f"{f}=")] for f in self.factors}

    def to_dict(self) -> dict:
        return {"factors": self.factors, "columns": self.columns, "medians": self.medians}


def select_clinical(clinical: "pd.DataFrame", y: np.ndarray, n_factors: int = 3, random_state=0) -> ClinicalEncoding:
    """The ``n_factors`` clinical factors an L1 logistic regression ranks highest on these patients."""
    from ...selection import make_selector
    from ..tables import encode_clinical

    if clinical.shape[1] == 0:
        raise InputError("no clinical factors to choose from")
    encoded = encode_clinical(clinical)
    # every numeric column gets its training median: later patients may miss what these patients all have
    numeric = [c for c in encoded.columns if c in clinical.columns]
    medians = {c: float(encoded[c].median()) if encoded[c].notna().any() else 0.0 for c in numeric}
    filled = encoded.fillna(medians).fillna(0.0)
    factor_of = {column: next(f for f in clinical.columns if column == f or column.startswith(f"{f}="))
                 for column in encoded.columns}
    if len(clinical.columns) <= n_factors:
        chosen = list(clinical.columns)
    else:
        lasso = make_selector("lasso", k=encoded.shape[1], random_state=random_state)
        lasso.fit(((filled - filled.mean()) / filled.std().replace(0, 1)).to_numpy(), y)
        chosen = []
        for position in np.argsort(lasso.ranking_, kind="stable"):
            factor = factor_of[encoded.columns[position]]
            if factor not in chosen:
                chosen.append(factor)
            if len(chosen) == n_factors:
                break
    columns = [c for c in encoded.columns if factor_of[c] in chosen]
    return ClinicalEncoding(factors=chosen, columns=columns, medians={c: medians[c] for c in columns if c in medians})


@dataclass
class DLRModel:
    name: str
    head: HeadResult
    clinical: ClinicalEncoding | None
    split: "SplitResult"          # test metrics, scores, cut-off (rtresponse.models.validation)
    train_scores: np.ndarray
    shapley: "pd.DataFrame | None" = None


@dataclass
class I3DStudy:
    train_ids: list
    validation_ids: list
    test_ids: list
    models: dict = field(default_factory=dict)        # name -> DLRModel
    failures: dict = field(default_factory=dict)
    trials: "pd.DataFrame | None" = None

    def metrics_table(self) -> "pd.DataFrame":
        import pandas as pd

        return pd.DataFrame([{"model": name, **model.split.metrics, "cutoff": model.split.cutoff,
                              "best_epoch": model.head.best_epoch,
                              "best_validation_loss": model.head.best_validation_loss}
                             for name, model in self.models.items()])


def split_ids(ids: Sequence[str], y: np.ndarray, test_size: float, validation_size: float, seed: int):
    """Stratified train / validation / test patient ids."""
    from ..validation import stratified_split

    ids = np.asarray(ids)
    rest, test = stratified_split(None, y, test_size, seed)
    inner_train, validation = stratified_split(None, y[rest], validation_size, seed)
    return list(ids[rest][inner_train]), list(ids[rest][validation]), list(ids[test])


def _test_result(y_test, scores_test, y_train, scores_train, model, features, train_ids, test_ids):
    from ...evaluation import classification_metrics, delong_auc_ci, youden_cutoff
    from ..validation import SplitResult

    cutoff = youden_cutoff(y_train, scores_train)
    metrics = classification_metrics(y_test, scores_test, cutoff)
    auc, low, high = delong_auc_ci(y_test, scores_test)
    metrics.update({"auc": auc, "auc_low": low, "auc_high": high})
    return SplitResult(metrics=metrics, model=model, features=features, cutoff=float(cutoff), train_ids=train_ids,
                       test_ids=test_ids, test_scores=scores_test, test_y=np.asarray(y_test))


def run_study(features: CohortFeatures, outcome: "pd.Series", clinical: "pd.DataFrame | None" = None,
              n_factors: int = 3, test_size: float = 1 / 3, validation_size: float = 0.2,
              head: HeadConfig = HeadConfig(), tune_trials: int = 0, sampler: str = "random", seed: int = 0,
              use_augmented: bool = True, device: str = "cpu", shapley: bool = True,
              progress: Callable[[str, int, int], None] | None = None,
              should_cancel: Callable[[], bool] | None = None,
              on_epoch: Callable[[dict], None] | None = None) -> I3DStudy:
    """Train and test DLR (MR) and, with ``clinical``, DLR (MR + CF) on cached features.

    ``outcome``: 0/1 by patient_id (1 = the positive class). ``tune_trials`` > 0 runs the
    Optuna search (:func:`.tuning.tune`) on the image + clinical model (the image-only one when
    there are no clinical factors) and uses the best setting for both. ``on_epoch(row)`` gets each
    epoch of the final models' training, with the model's name under "model" (not the tuning trials').
    """
    import pandas as pd

    outcome = outcome.copy()
    outcome.index = outcome.index.astype(str)
    have = [pid for pid in dict.fromkeys(features.patient_ids) if pid in outcome.index and pd.notna(outcome[pid])]
    if len(have) < 10:
        raise InputError(f"only {len(have)} patients have both I3D features and the outcome; at least 10 needed")
    y_all = outcome[have].astype(int).to_numpy()
    train_ids, validation_ids, test_ids = split_ids(have, y_all, test_size, validation_size, seed)
    y_of = outcome[have].astype(int)

    def data(ids, copies=False):
        values, rows = features.of(ids, copies=copies)
        return values, rows, y_of[rows].to_numpy()

    train_x, train_rows, train_y = data(train_ids, copies=use_augmented)
    val_x, _, val_y = data(validation_ids)
    test_x, _, test_y = data(test_ids)
    fit_x, _, fit_y = data(train_ids + validation_ids)  # every training patient, for the Youden cut-off
    encoding = None
    if clinical is not None and clinical.shape[1]:
        clinical = clinical.copy()
        clinical.index = clinical.index.astype(str)
        encoding = select_clinical(clinical.loc[train_ids], y_of[train_ids].to_numpy(), n_factors, seed)

    def clinical_of(ids):
        return None if encoding is None else encoding.encode(clinical.reindex(ids)).to_numpy()

    study = I3DStudy(train_ids, validation_ids, test_ids, failures=dict(features.failures))
    variants = [(IMAGE_ONLY, False)] + ([(WITH_CLINICAL, True)] if encoding is not None else [])
    config = head
    if tune_trials:
        from .tuning import tune

        with_clinical = encoding is not None
        config, study.trials = tune(train_x, train_y, val_x, val_y,
                                    clinical_of(train_rows) if with_clinical else None,
                                    clinical_of(validation_ids) if with_clinical else None, tune_trials, head,
                                    sampler=sampler, seed=seed, device=device,
                                    progress=(lambda d, t, v: progress("tuning", d, t)) if progress else None,
                                    should_cancel=should_cancel)
    for step, (name, with_clinical) in enumerate(variants, start=1):
        if progress:
            progress(name, step, len(variants))
        c = (lambda ids: clinical_of(ids)) if with_clinical else (lambda ids: None)
        epoch_of = (lambda row, name=name: on_epoch({"model": name, **row})) if on_epoch else None
        result = train_head(train_x, train_y, val_x, val_y, c(train_rows), c(validation_ids), config, device,
                            should_cancel=should_cancel, on_epoch=epoch_of)
        fit_ids = train_ids + validation_ids
        train_scores = predict_proba(result.network, fit_x, c(fit_ids))
        test_scores = predict_proba(result.network, test_x, c(test_ids))
        split = _test_result(test_y, test_scores, fit_y, train_scores, result.network,
                             (["i3d"] + (encoding.columns if with_clinical else [])), fit_ids, test_ids)
        model = DLRModel(name, result, encoding if with_clinical else None, split, train_scores)
        if with_clinical and shapley:
            model.shapley = clinical_shapley(result.network, dict(zip(test_ids, test_x)),
                                             encoding.encode(clinical.reindex(test_ids)),
                                             encoding.encode(clinical.reindex(fit_ids)), encoding.players())
        study.models[name] = model
    return study


def clinical_shapley(network, image_features: dict, explained: "pd.DataFrame", background: "pd.DataFrame",
                     players: dict) -> "pd.DataFrame":
    """Exact Shapley values of the clinical factors, each patient's own image features held fixed.

    The background rows (training patients) supply the 'absent' clinical values.
    """
    import pandas as pd

    from ...evaluation.shapley import shapley_values

    rows = []
    for pid in explained.index:
        image = np.asarray(image_features[pid], np.float32)[None]

        def predict(frame, image=image):
            return predict_proba(network, np.repeat(image, len(frame), axis=0), frame.to_numpy(dtype=np.float32))

        rows.append(shapley_values(predict, explained.loc[[pid]], background, features=players))
    values = pd.concat(rows)
    values.attrs["base_values"] = tuple(b for row in rows for b in row.attrs["base_values"])
    return values
