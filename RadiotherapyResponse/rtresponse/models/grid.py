"""The selector x classifier grid judged by the 0.632+ bootstrap AUC (Tanaka et al.).

For every selector the top ``k`` features are ranked on all patients (the paper's selection
step), then for every classifier the 0.632+ AUC is estimated either on those ``k`` features or,
with ``forward=True`` (the paper), after forward selection over them in rank order. Every model
is evaluated on the same bootstrap draws, so any two grid cells can be compared pairwise
(:func:`rtresponse.evaluation.resampled_ttest.corrected_resampled_ttest` on ``per_bootstrap``).

``undersample=R`` repeats the whole evaluation on R random class-balanced subsets (majority
class undersampled) and averages, for imbalanced outcomes.

Selecting on all patients before the bootstrap is what the paper did; it is optimistic.
``selection="inside"`` (beyond the paper) refits the ranker inside every bootstrap sample
instead, so the estimate also covers the selection step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from ..errors import InputError
from .classifiers import PAPER_CLASSIFIERS, make_classifier

PAPER_SELECTORS = ("chi2", "wilcoxon", "nca", "relieff", "inffs")


@dataclass
class GridResult:
    table: "object"                                   # pandas DataFrame, one row per selector x classifier
    per_bootstrap: dict = field(default_factory=dict)  # (selector, classifier) -> per-bootstrap 0.632+ terms
    indices: np.ndarray | None = None                  # the shared bootstrap draws (first subset)


def _with_imputer(estimator):
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    # missing clinical numbers: median of the training data, decided inside each fit
    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), estimator)


def ranked_features(selector_name: str, X, y, k: int, random_state=0) -> list:
    """The selector's top-k columns of X (in rank order where the selector ranks)."""
    from sklearn.impute import SimpleImputer

    from ..selection import make_selector

    selector = make_selector(selector_name, k=min(k, X.shape[1]), random_state=random_state)
    filled = SimpleImputer(strategy="median", keep_empty_features=True).fit_transform(X)
    selector.fit(filled, y)
    columns = np.asarray(X.columns)
    chosen = np.flatnonzero(selector.get_support())
    ranking = getattr(selector, "ranking_", None)  # 1 = best; ties already broken by the selector
    if ranking is not None and len(ranking) == X.shape[1]:
        chosen = chosen[np.argsort(np.asarray(ranking)[chosen], kind="stable")]
    return list(columns[chosen])


def _undersampled(y: np.ndarray, repeats: int, random_state) -> list[np.ndarray]:
    if repeats <= 0:
        return [np.arange(y.size)]
    rng = np.random.default_rng(random_state)
    minority = int(np.argmin(np.bincount(y, minlength=2)))
    keep_minority = np.flatnonzero(y == minority)
    majority = np.flatnonzero(y != minority)
    return [np.sort(np.r_[keep_minority, rng.choice(majority, keep_minority.size, replace=False)])
            for _ in range(repeats)]


# relative cost of one bootstrap fit (fast paths for all but lr; nb and knn = 1), for longest-first scheduling
_COST = {"rf": 40.0, "lr": 25.0, "svm": 8.0, "lda": 2.5}


def _evaluate_cell(selector_name: str, classifier_name: str, Xs, ys, top: list, draws: np.ndarray, k: int,
                   n_bootstrap: int, forward: bool, selection: str, random_state, n_jobs):
    """One grid cell: (chosen features, BootstrapResult)."""
    from ..evaluation.bootstrap import bootstrap_632plus_auc, forward_selection
    from ..evaluation.fast_fits import FAST_CLASSIFIERS, agrees_with_scikit_learn
    from ..selection import make_selector

    model = _with_imputer(make_classifier(classifier_name, random_state))
    # the fast fits impute missing values as this pipeline does, so sets with NaN take them too
    fast = (classifier_name if classifier_name in FAST_CLASSIFIERS
            and agrees_with_scikit_learn(classifier_name) else None)
    if selection == "inside":
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline

        ranker = make_selector(selector_name, k=min(k, Xs.shape[1]), random_state=random_state)
        model = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), ranker,
                              make_classifier(classifier_name, random_state))
        return top, bootstrap_632plus_auc(model, Xs, ys, indices=draws, n_jobs=n_jobs)
    if forward:
        return forward_selection(model, Xs, ys, candidates=top, n_bootstrap=n_bootstrap, random_state=random_state,
                                 n_jobs=n_jobs, fast=fast)
    return top, bootstrap_632plus_auc(model, Xs[top], ys, indices=draws, n_jobs=n_jobs, fast=fast)


def _cell_task(data_key: tuple, selector_name: str, classifier_name: str, top: list, k: int, n_bootstrap: int,
               forward: bool, selection: str, random_state, n_jobs, *, subsets):
    """One grid cell as a task: ``subsets`` ((feature set, subset number) -> X, y and draws) is the data every cell
    shares, sent to each worker once."""
    Xs, ys, draws = subsets[data_key]
    return _evaluate_cell(selector_name, classifier_name, Xs, ys, top, draws, k, n_bootstrap, forward, selection,
                          random_state, n_jobs)


def run_grid(X, y, selectors: Sequence[str] = PAPER_SELECTORS, classifiers: Sequence[str] = PAPER_CLASSIFIERS,
             k: int = 10, n_bootstrap: int = 1000, forward: bool = True, selection: str = "paper",
             undersample: int = 0, random_state=0, n_jobs=None,
             progress: Callable[[int, int], None] | None = None,
             should_cancel: Callable[[], bool] | None = None, execution=None, cell_cache=None) -> GridResult:
    """Evaluate every selector x classifier on (X, y); returns a :class:`GridResult`.

    ``X`` is a DataFrame (columns = features, NaN allowed), ``y`` 0/1. The table has columns
    selector, classifier, auc632plus, auc_sd, sensitivity, specificity, apparent_auc, oob_auc,
    n_features, features (";"-joined). ``n_jobs`` > 1 evaluates cells in parallel worker
    processes, the costliest classifiers first; ``execution`` (:mod:`rtresponse.execution`: an ``Execution``,
    a dask ``Client`` or a scheduler setting) runs the cells there instead, the data sent to each worker once.
    The results depend on neither.

    ``cell_cache`` (a resumable run, :class:`rtresponse.models.cells.CellCache`): an object with ``get(key)`` (a
    finished cell's result, or None) and ``put(key, result)``, keys ``(subset, selector, classifier)``; cells it
    has are not computed again (nor the rankings of selectors whose cells it all has), and each computed cell is put
    as soon as it finishes. It must belong to this (X, y) and these settings (the caller keys it by them).
    """
    return run_grids({"": X}, y, selectors, classifiers, k=k, n_bootstrap=n_bootstrap, forward=forward,
                     selection=selection, undersample=undersample, random_state=random_state, n_jobs=n_jobs,
                     progress=progress, should_cancel=should_cancel, execution=execution,
                     cell_caches=None if cell_cache is None else {"": cell_cache})[""]


def run_grids(feature_sets: Mapping[str, "object"], y, selectors: Sequence[str] = PAPER_SELECTORS,
              classifiers: Sequence[str] = PAPER_CLASSIFIERS, k: int = 10, n_bootstrap: int = 1000,
              forward: bool = True, selection: str = "paper", undersample: int = 0, random_state=0, n_jobs=None,
              progress: Callable[[int, int], None] | None = None,
              should_cancel: Callable[[], bool] | None = None, execution=None,
              cell_caches: Mapping[str, "object"] | None = None) -> dict:
    """:func:`run_grid` of every feature set (name -> X, the same patients in the same order) against ``y``, as one
    run: all rankings first, then the cells of all sets together, costliest first, so the workers stay busy across
    sets (a set's slowest cell no longer holds the others back) and ``progress`` counts every set's cells. Returns
    name -> :class:`GridResult`, each equal to ``run_grid`` of that set alone. ``cell_caches``: name -> that set's
    ``cell_cache``."""
    import pandas as pd

    from ..evaluation.bootstrap import _binary
    from ..inputs import model_matrix

    sets = {}
    for name, X in feature_sets.items():
        if not hasattr(X, "columns"):
            X = pd.DataFrame(np.asarray(X, dtype=float), columns=[f"f{i}" for i in range(np.shape(X)[1])])
        model_matrix(X)  # NaN is imputed inside each fit; infinity is an error
        sets[name] = X
    y = _binary(y)
    for name, X in sets.items():
        if len(X) != len(y):
            raise InputError(f"feature set '{name}' has {len(X)} patients (rows), the outcome {len(y)}: give both "
                             "for the same patients in the same order")
    if selection not in ("paper", "inside"):
        raise InputError(f"selection must be 'paper' or 'inside', got '{selection}'")
    for name in classifiers:
        make_classifier(name)  # unknown names fail before any work
    from ..execution import resolve

    runner, owned = resolve(execution, 1 if n_jobs in (None, 1) else n_jobs)
    try:
        return _grids(runner, sets, y, selectors, classifiers, k, n_bootstrap, forward, selection, undersample,
                      random_state, n_jobs, progress, should_cancel, cell_caches or {})
    finally:
        if owned:
            runner.close()


def _grids(runner, sets: dict, y, selectors, classifiers, k, n_bootstrap, forward, selection, undersample,
           random_state, n_jobs, progress, should_cancel, caches: Mapping) -> dict:
    from ..evaluation.bootstrap import bootstrap_indices

    subsets = _undersampled(y, undersample, random_state)
    draws = [bootstrap_indices(y[subset], n_bootstrap, random_state) for subset in subsets]  # the same for every set
    data = {(name, number): (X.iloc[subset], y[subset], draws[number])  # shared by the rankings and cells
            for name, X in sets.items() for number, subset in enumerate(subsets)}
    pairs = [(name, number, selector_name) for name, number in data for selector_name in selectors]
    cached = {}  # (set, subset, selector, classifier) -> a finished cell's result, from a resumed run
    for name, number, selector_name in pairs:
        for classifier_name in classifiers if name in caches else ():
            result = caches[name].get((number, selector_name, classifier_name))
            if result is not None:
                cached[(name, number, selector_name, classifier_name)] = result
    if selection == "paper":  # a selector whose cells are all cached needs no ranking (its cells hold their features)
        unranked = [pair for pair in pairs if any((*pair, c) not in cached for c in classifiers)]
        found = dict(zip(unranked, _rank(unranked, runner, data, k, random_state, should_cancel)))
        tops = [found.get(pair) for pair in pairs]
    else:
        tops = [list(sets[name].columns) for name, _, _ in pairs]
    tasks = []  # (set, subset number, selector, classifier, arguments)
    for (name, number, selector_name), top in zip(pairs, tops):
        for classifier_name in classifiers:
            tasks.append((name, number, selector_name, classifier_name,
                          ((name, number), selector_name, classifier_name, top, k, n_bootstrap, forward, selection,
                           random_state, 1 if runner.parallel else n_jobs)))
    results = _run_cells(tasks, runner, data, progress, should_cancel, caches, cached)
    return {name: _grid_result([(task, result) for task, result in zip(tasks, results) if task[0] == name],
                               len(subsets), draws[0]) for name in sets}


def _grid_result(cells: list, subsets: int, first_indices) -> GridResult:
    """One feature set's table and per-bootstrap terms from its (task, (chosen, result)) cells."""
    import pandas as pd

    rows, per_bootstrap = [], {}
    for (_, subset_number, selector_name, classifier_name, _), (chosen, result) in cells:
        rows.append({"subset": subset_number, "selector": selector_name, "classifier": classifier_name,
                     "auc632plus": result.auc, "auc_sd": result.auc_sd,
                     "sensitivity": result.sensitivity, "specificity": result.specificity,
                     "apparent_auc": result.apparent_auc, "oob_auc": result.oob_auc,
                     "n_features": len(chosen), "features": ";".join(map(str, chosen))})
        per_bootstrap.setdefault((selector_name, classifier_name), []).append(result.per_bootstrap)
    table = pd.DataFrame(rows)
    if subsets > 1:  # average over the undersampled subsets; features of the first subset shown
        numeric = ["auc632plus", "auc_sd", "sensitivity", "specificity", "apparent_auc", "oob_auc", "n_features"]
        grouped = table.groupby(["selector", "classifier"], sort=False)
        table = grouped[numeric].mean().join(grouped["features"].first()).reset_index()
    else:
        table = table.drop(columns="subset")
    return GridResult(table=table, per_bootstrap={key: np.concatenate(v) for key, v in per_bootstrap.items()},
                      indices=first_indices)


# relative cost of ranking, for longest-first scheduling (nca's optimisation dominates on many features)
_RANK_COST = {"nca": 100.0, "inffs": 5.0, "chi2": 2.0}


def _rank_task(data_key: tuple, selector_name: str, k: int, random_state, *, subsets) -> list:
    """One selector's ranking as a task. One BLAS thread wherever it runs: a ranking computed with another
    thread count can differ in the last bits, and with it a tie between two features."""
    from threadpoolctl import threadpool_limits

    Xs, ys, _ = subsets[data_key]
    with threadpool_limits(1):
        return ranked_features(selector_name, Xs, ys, k, random_state)


def _rank(pairs: list, runner, data: dict, k: int, random_state, should_cancel) -> list:
    """Each (set, subset, selector)'s top features, ranked in parallel (costliest first) where the runner is."""
    order = sorted(range(len(pairs)), key=lambda i: -_RANK_COST.get(pairs[i][2], 1.0))
    return runner.map(_rank_task, [((name, number), selector_name, k, random_state)
                                   for name, number, selector_name in pairs],
                      shared={"subsets": data}, order=order, should_cancel=should_cancel,
                      cancelled="grid evaluation cancelled")


def _run_cells(tasks: list, runner, data: dict, progress, should_cancel, caches: Mapping, cached: dict) -> list:
    """Results in task order; in parallel, the costliest cells are started first. Cells in ``cached`` (what the
    sets' caches held) are taken from it (and counted as done); the others are put into their set's cache as each
    finishes."""
    total = len(tasks)
    keys = [task[:4] for task in tasks]  # (set, subset, selector, classifier)
    results = [cached.get(key) for key in keys]
    todo = [i for i, result in enumerate(results) if result is None]
    reused = total - len(todo)
    if progress:
        progress(reused, total)  # a job runner learns the count before the first (possibly long) cell ends
    order = list(range(len(todo)))
    if runner.parallel:
        order.sort(key=lambda i: -_COST.get(tasks[todo[i]][3], 1.0))

    def keep(i, result):
        name, *key = keys[todo[i]]
        if name in caches:
            caches[name].put(tuple(key), result)

    computed = runner.map(_cell_task, [tasks[i][4] for i in todo], shared={"subsets": data}, order=order,
                          progress=(lambda done, _: progress(reused + done, total)) if progress else None,
                          should_cancel=should_cancel, cancelled="grid evaluation cancelled",
                          on_result=keep if caches else None)
    for i, result in zip(todo, computed):
        results[i] = result
    return results


def heatmap(table, path, value: str = "auc632plus", title: str = "0.632+ bootstrap AUC") -> None:
    """A selector x classifier heat map of ``value`` written as PNG (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_path

    grid = table.pivot(index="selector", columns="classifier", values=value)
    figure, axes = plt.subplots(figsize=(1.2 * grid.shape[1] + 2, 0.8 * grid.shape[0] + 1.5))
    image = axes.imshow(grid.to_numpy(dtype=float), cmap="viridis", vmin=0.5, vmax=1.0)
    axes.set_xticks(range(grid.shape[1]), grid.columns)
    axes.set_yticks(range(grid.shape[0]), grid.index)
    for (i, j), v in np.ndenumerate(grid.to_numpy(dtype=float)):
        axes.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.75 else "black")
    axes.set_title(title)
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=120)
    plt.close(figure)
