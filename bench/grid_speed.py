"""Time of the selector x classifier grid (0.632+ bootstrap, forward selection) against a plain loop.

The plain loop is what one would write by hand: for every model and draw, clone, fit and
`roc_auc_score` on the out-of-bag patients. Both must give the same estimates; the table shows
seconds and the speed-up. Defaults are small so the script finishes in minutes on 2 cores; the
issue's full setting is `--patients 100 --features 1000 --draws 1000 --paper`.

Every evaluated feature subset costs (draws + 1) fits, so times grow linearly with --draws, apart
from ranking the features (once per selector, the same in both methods, timed apart): the "s at
1000 draws" column scales the rest to --target draws (the paper's 1000), marked as extrapolated.
`--run-target [WORKERS ...]` also runs run_grid at --target draws (measured); the plain
loop at 1000 draws would take about a day, so it is extrapolated from its own time per fit in
each cell and the number of fits that cell needs at --target draws (taken from the measured run,
as forward selection may stop at another step with more draws).
`--skip-plain` times only run_grid (its estimates are then not compared).
`--clinical` times run_grid instead on a clinical-like set (numbers with 10 % missing, categorical
factors one-hot with an "unknown" column; the fast paths impute as the pipeline does) against the
numeric set of the same size: seconds, fits made (forward selection may stop at another step on
the other set) and milliseconds per fit, and their ratios; `--repeat R` times each set R times,
alternately, and keeps the fastest (on a shared machine the load changes between runs).

Usage: python bench/grid_speed.py [--patients 60] [--features 100] [--draws 50] [--paper] [--workers 1 2]
       [--target 1000] [--run-target [WORKERS ...]] [--skip-plain] [--clinical [--repeat 1]]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "RadiotherapyResponse"))

from rtresponse.evaluation.bootstrap import bootstrap_indices, combine_632plus  # noqa: E402
from rtresponse.models.classifiers import PAPER_CLASSIFIERS, make_classifier  # noqa: E402
from rtresponse.models.grid import PAPER_SELECTORS, _with_imputer, ranked_features, run_grid  # noqa: E402


def plain_estimate(estimator, X, y, draws) -> float:
    """0.632+ AUC by the obvious loop (sklearn's roc_auc_score on probabilities)."""
    from sklearn.base import clone
    from sklearn.metrics import roc_auc_score

    apparent = roc_auc_score(y, clone(estimator).fit(X, y).predict_proba(X)[:, 1])
    oob = []
    for sample in draws:
        out = np.setdiff1d(np.arange(len(y)), sample)
        model = clone(estimator).fit(X.iloc[sample], y[sample])
        oob.append(roc_auc_score(y[out], model.predict_proba(X.iloc[out])[:, 1]))
    return float(combine_632plus(apparent, np.array(oob)).mean())


def plain_grid(X, y, selectors, classifiers, k, draws) -> tuple[dict, dict]:
    """Estimates per cell, and per cell the seconds spent fitting and the number of fits made."""
    estimates, costs = {}, {}
    for selector in selectors:
        top = ranked_features(selector, X, y, k)
        for classifier in classifiers:
            start = time.perf_counter()
            model = _with_imputer(make_classifier(classifier))
            chosen, best, evaluations = [], -np.inf, 0
            while len(chosen) < len(top):  # forward selection, as the grid does
                trials = [(plain_estimate(model, X[chosen + [c]], y, draws), c) for c in top if c not in chosen]
                evaluations += len(trials)
                value, feature = max(trials)
                if value <= best:
                    break
                chosen.append(feature)
                best = value
            estimates[(selector, classifier)] = best
            costs[(selector, classifier)] = (time.perf_counter() - start, evaluations * (len(draws) + 1))
    return estimates, costs


def forward_evaluations(n_chosen: int, k: int) -> int:
    """Subsets forward selection evaluates when it ends with n_chosen of k candidates."""
    steps = n_chosen if n_chosen == k else n_chosen + 1  # the last step found no improvement, unless all were taken
    return sum(k - j for j in range(steps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=60)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--draws", type=int, default=50)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--paper", action="store_true", help="the paper's 5 x 5 grid (default: 2 x 3 cheap cells)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--target", type=int, default=1000, help="draws the last column is scaled to")
    parser.add_argument("--run-target", type=int, nargs="*", metavar="WORKERS",
                        help="also run run_grid at --target draws with these worker counts (default: --workers)")
    parser.add_argument("--skip-plain", action="store_true", help="time run_grid only")
    parser.add_argument("--clinical", action="store_true",
                        help="time a clinical-like set (missing values, one-hot factors) against the numeric set "
                             "instead")
    parser.add_argument("--repeat", type=int, default=1, help="with --clinical: time each set this often, keep the "
                        "fastest")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(args.patients, args.features)),
                     columns=[f"f{i}" for i in range(args.features)])
    y = (X["f0"] - X["f1"] + rng.normal(0, 1, args.patients) > 0).astype(int).to_numpy()
    selectors = PAPER_SELECTORS if args.paper else ("wilcoxon", "relieff")
    classifiers = PAPER_CLASSIFIERS if args.paper else ("nb", "lda", "knn")
    if args.clinical:
        clinical_table(X, y, selectors, classifiers, args)
        return
    draws = bootstrap_indices(y, args.draws, random_state=0)

    # ranking the features (each selector once, on all patients) costs the same in both methods and does
    # not grow with the draws: timed apart; the rest grows with the fits made, (draws + 1) per evaluated subset
    for selector in selectors:  # imports and first-call set-up, which are not ranking
        ranked_features(selector, X.iloc[:, : 2 * args.k], y, args.k)
    start = time.perf_counter()
    for selector in selectors:
        ranked_features(selector, X, y, args.k)
    ranking = time.perf_counter() - start
    scale = (args.target + 1) / (args.draws + 1)
    rows, reference, costs = [], None, None  # rows: (method, workers, draws, seconds, max |diff|, s at target)
    if not args.skip_plain:
        start = time.perf_counter()
        reference, costs = plain_grid(X, y, selectors, classifiers, args.k, draws)
        seconds = time.perf_counter() - start
        rows.append(["plain loop", 1, args.draws, seconds, 0.0, ranking + max(seconds - ranking, 0.0) * scale])
    chosen = None  # features chosen per cell, from the run that is closest to --target draws
    for workers in args.workers:
        seconds, ours, chosen = _timed_grid(X, y, selectors, classifiers, args.k, args.draws, workers)
        difference = max(abs(ours[key] - reference[key]) for key in reference) if reference else float("nan")
        rows.append(["run_grid", workers, args.draws, seconds, difference,
                     ranking + max(seconds - ranking, 0.0) * scale])
    measured = args.run_target is not None and args.target != args.draws
    if measured:
        for workers in args.run_target or args.workers:
            seconds, _, chosen = _timed_grid(X, y, selectors, classifiers, args.k, args.target, workers)
            rows.append(["run_grid", workers, args.target, seconds, float("nan"), seconds])
    if costs is not None and measured:
        # the plain loop at --target draws: its own time per fit in each cell, times the fits that cell needs at
        # --target draws (forward selection may stop at another step than with few draws)
        rows[0][5] = ranking + sum(seconds / fits * forward_evaluations(chosen[key], args.k) * (args.target + 1)
                                   for key, (seconds, fits) in costs.items())

    print(f"{args.patients} patients x {args.features} features, {len(selectors)} x {len(classifiers)} cells "
          f"({', '.join(selectors)} x {', '.join(classifiers)}), k = {args.k}, forward selection")
    print(f"{'method':<12} {'workers':>7} {'draws':>6} {'seconds':>9} {'max |diff|':>11} "
          f"{'s at ' + str(args.target) + ' draws':>18} {'speed-up':>9}")
    print(f"{'ranking':<12} {1:>7} {'':>6} {ranking:>9.1f} {'':>11} {ranking:>18.0f}   (in every row below)")
    plain_target = rows[0][5] if costs is not None else None
    for method, workers, n_draws, seconds, difference, at_target in rows:
        how = "measured" if n_draws == args.target else "extrapolated"
        speedup = f"{plain_target / at_target:>8.2f}x" if plain_target else f"{'':>9}"
        print(f"{method:<12} {workers:>7} {n_draws:>6} {seconds:>9.1f} {difference:>11.2e} {at_target:>18.0f} "
              f"{speedup}   ({how})")
    print("speed-up: the plain loop's time at the target (extrapolated from its own time per fit) over the row's")


def clinical_like(patients: int, columns: int, rng) -> tuple[pd.DataFrame, np.ndarray]:
    """Clinical factors as rtresponse.models.tables.encode_clinical gives them: about half the columns numbers
    with 10 % missing, the rest categorical factors one-hot (levels a, b and unknown for the missing)."""
    factors = columns // 6
    frame = {}
    for j in range(columns - 3 * factors):
        values = rng.normal(60, 10, patients).round() if j % 2 else rng.lognormal(1, 0.5, patients)
        values[rng.random(patients) < 0.1] = np.nan
        frame[f"number{j}"] = values
    for j in range(factors):
        level = rng.choice(3, patients, p=[0.5, 0.4, 0.1])
        for code, name in enumerate(("a", "b", "unknown")):
            frame[f"factor{j}={name}"] = (level == code).astype(float)
    X = pd.DataFrame(frame)
    signal = X["number0"].fillna(X["number0"].median()).rank() / patients + X.iloc[:, -3]
    y = (signal + rng.normal(0, 0.5, patients) > signal.median()).astype(int).to_numpy()
    return X, y


def clinical_table(X, y, selectors, classifiers, args) -> None:
    """run_grid on a clinical-like set and on the numeric set of the same size: seconds, fits and time per fit."""
    clinical, y_clinical = clinical_like(*X.shape, np.random.default_rng(1))
    missing = clinical.isna().to_numpy().mean()
    one_hot = sum("=" in c for c in clinical.columns)
    print(f"{args.patients} patients x {args.features} columns, {len(selectors)} x {len(classifiers)} cells "
          f"({', '.join(selectors)} x {', '.join(classifiers)}), k = {args.k}, forward selection, {args.draws} draws; "
          f"clinical-like: {args.features - one_hot} numbers ({missing:.1%} of all cells missing), "
          f"{one_hot // 3} factors one-hot in {one_hot} columns")
    for frame, outcome in ((X, y), (clinical, y_clinical)):  # imports and each fast path's check, once per process
        _timed_grid(frame.iloc[:, : 2 * args.k], outcome, selectors, classifiers, args.k, 2, 1)
    print(f"{'set':<10} {'workers':>7} {'seconds':>9} {'fits':>7} {'ms per fit':>11}")
    sets = {"numeric": (X, y), "clinical": (clinical, y_clinical)}
    for workers in args.workers:
        seconds, times, chosen = {}, {}, {}
        for _ in range(args.repeat):  # alternately, so that a change of load meets both sets
            for name, (frame, outcome) in sets.items():
                elapsed, _, chosen[name] = _timed_grid(frame, outcome, selectors, classifiers, args.k, args.draws,
                                                       workers)
                seconds[name] = min(seconds.get(name, np.inf), elapsed)
        for name, (frame, outcome) in sets.items():
            k = min(args.k, frame.shape[1])
            fits = sum(forward_evaluations(n, k) for n in chosen[name].values()) * (args.draws + 1)
            times[name] = (seconds[name], 1000 * seconds[name] / fits)
            print(f"{name:<10} {workers:>7} {seconds[name]:>9.1f} {fits:>7} {times[name][1]:>11.2f}")
        print(f"{'ratio':<10} {workers:>7} {times['clinical'][0] / times['numeric'][0]:>8.2f}x {'':>7} "
              f"{times['clinical'][1] / times['numeric'][1]:>10.2f}x   (clinical / numeric)")


def _timed_grid(X, y, selectors, classifiers, k, draws, workers) -> tuple[float, dict, dict]:
    start = time.perf_counter()
    result = run_grid(X, y, selectors, classifiers, k=k, n_bootstrap=draws, random_state=0, n_jobs=workers)
    seconds = time.perf_counter() - start
    cells = list(result.table.itertuples())
    return (seconds, {(r.selector, r.classifier): r.auc632plus for r in cells},
            {(r.selector, r.classifier): int(r.n_features) for r in cells})


if __name__ == "__main__":
    main()
