"""Hyper-parameter search of the fusion head with Optuna, on cached features (minimising validation loss).

The paper ran 100 trials of random settings and kept the one with the lowest validation loss;
``sampler="random"`` (default) does that, ``sampler="tpe"`` uses Optuna's TPE instead (beyond
the paper). The search space is data (:data:`SEARCH_SPACE`): name -> (kind, low, high) or
(kind, choices); it can be narrowed or widened by passing another mapping.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Mapping

from ...errors import InputError
from .training import HeadConfig, train_head

SEARCH_SPACE = {
    "learning_rate": ("log", 1e-4, 1e-2),
    "hidden": ("int_log", 16, 512),
    "clinical_hidden": ("int_log", 8, 128),
    "batch_size": ("choice", (4, 8, 16, 32)),
    "dropout": ("float", 0.0, 0.5),
    "weight_decay": ("log", 1e-6, 1e-2),
}


def _suggest(trial, name: str, spec) -> object:
    kind = spec[0]
    if kind == "log":
        return trial.suggest_float(name, spec[1], spec[2], log=True)
    if kind == "float":
        return trial.suggest_float(name, spec[1], spec[2])
    if kind == "int_log":
        return trial.suggest_int(name, spec[1], spec[2], log=True)
    if kind == "int":
        return trial.suggest_int(name, spec[1], spec[2])
    if kind == "choice":
        return trial.suggest_categorical(name, list(spec[1]))
    raise InputError(f"unknown search-space kind '{kind}' for {name}")


def tune(image_train, y_train, image_val, y_val, clinical_train=None, clinical_val=None, n_trials: int = 100,
         base: HeadConfig = HeadConfig(), space: Mapping = SEARCH_SPACE, sampler: str = "random", seed: int = 0,
         device: str = "cpu", progress: Callable[[int, int, float], None] | None = None,
         should_cancel: Callable[[], bool] | None = None):
    """Search ``space`` for ``n_trials``; returns ``(best HeadConfig, trials DataFrame)``.

    Each trial trains a head with early stopping and is scored by its best validation loss.
    """
    import optuna

    from .features import Cancelled

    if n_trials < 1:
        raise InputError(f"n_trials must be at least 1, got {n_trials}")
    unknown = [name for name in space if name not in HeadConfig.__dataclass_fields__]
    if unknown:
        raise InputError(f"unknown hyper-parameter(s) {', '.join(unknown)}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers = {"random": optuna.samplers.RandomSampler, "tpe": optuna.samplers.TPESampler}
    if sampler not in samplers:
        raise InputError(f"sampler must be one of {', '.join(samplers)}, got '{sampler}'")
    study = optuna.create_study(direction="minimize", sampler=samplers[sampler](seed=seed))

    def objective(trial):
        if should_cancel is not None and should_cancel():
            raise Cancelled("tuning cancelled")
        config = replace(base, **{name: _suggest(trial, name, spec) for name, spec in space.items()})
        result = train_head(image_train, y_train, image_val, y_val, clinical_train, clinical_val, config, device,
                            should_cancel=should_cancel)
        trial.set_user_attr("best_epoch", result.best_epoch)
        return result.best_validation_loss

    def report(study_, trial):
        if progress:
            progress(trial.number + 1, n_trials, study_.best_value)

    study.optimize(objective, n_trials=n_trials, callbacks=[report], catch=())
    best = replace(base, **study.best_params)
    trials = study.trials_dataframe(attrs=("number", "value", "params", "user_attrs"))
    return best, trials
