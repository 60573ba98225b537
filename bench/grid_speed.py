"""Time of the selector x classifier grid (0.632+ bootstrap, forward selection) against a plain loop.

The plain loop is what one would write by hand: for every model and draw, clone, fit and
`roc_auc_score` on the out-of-bag patients. Both must give the same estimates; the table shows
seconds and the speed-up. Defaults are small so the script finishes in minutes on 2 cores; the
issue's full setting is `--patients 100 --features 1000 --draws 1000 --paper`.

Every evaluation costs the same per draw, so times grow linearly with --draws, apart from ranking
the features (once per selector, the same in both methods, timed apart): the last column scales
the rest to --target draws (1000, the paper's), marked as extrapolated when fewer draws were run. `--skip-plain` times only run_grid (its estimates are then not compared).

Usage: python bench/grid_speed.py [--patients 60] [--features 100] [--draws 50] [--paper] [--workers 1 2]
       [--target 1000] [--skip-plain]
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


def plain_grid(X, y, selectors, classifiers, k, draws) -> dict:
    estimates = {}
    for selector in selectors:
        top = ranked_features(selector, X, y, k)
        for classifier in classifiers:
            model = _with_imputer(make_classifier(classifier))
            chosen, best = [], -np.inf
            while len(chosen) < len(top):  # forward selection, as the grid does
                trials = [(plain_estimate(model, X[chosen + [c]], y, draws), c) for c in top if c not in chosen]
                value, feature = max(trials)
                if value <= best:
                    break
                chosen.append(feature)
                best = value
            estimates[(selector, classifier)] = best
    return estimates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=60)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--draws", type=int, default=50)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--paper", action="store_true", help="the paper's 5 x 5 grid (default: 2 x 3 cheap cells)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--target", type=int, default=1000, help="draws the last column is scaled to")
    parser.add_argument("--skip-plain", action="store_true", help="time run_grid only")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(args.patients, args.features)),
                     columns=[f"f{i}" for i in range(args.features)])
    y = (X["f0"] - X["f1"] + rng.normal(0, 1, args.patients) > 0).astype(int).to_numpy()
    selectors = PAPER_SELECTORS if args.paper else ("wilcoxon", "relieff")
    classifiers = PAPER_CLASSIFIERS if args.paper else ("nb", "lda", "knn")
    draws = bootstrap_indices(y, args.draws, random_state=0)

    # ranking the features (each selector once, on all patients) costs the same in both methods and does
    # not grow with the draws: timed apart, and only the rest is scaled to --target draws
    start = time.perf_counter()
    for selector in selectors:
        ranked_features(selector, X, y, args.k)
    ranking = time.perf_counter() - start
    rows, reference, plain_seconds = [], None, None
    if not args.skip_plain:
        start = time.perf_counter()
        reference = plain_grid(X, y, selectors, classifiers, args.k, draws)
        plain_seconds = time.perf_counter() - start
        rows.append(("plain loop", 1, plain_seconds, 1.0, 0.0))
    for workers in args.workers:
        start = time.perf_counter()
        result = run_grid(X, y, selectors, classifiers, k=args.k, n_bootstrap=args.draws, random_state=0,
                          n_jobs=workers)
        seconds = time.perf_counter() - start
        ours = {(r.selector, r.classifier): r.auc632plus for r in result.table.itertuples()}
        difference = max(abs(ours[key] - reference[key]) for key in reference) if reference else float("nan")
        rows.append(("run_grid", workers, seconds, plain_seconds / seconds if plain_seconds else float("nan"),
                     difference))
    scale = args.target / args.draws
    print(f"{args.patients} patients x {args.features} features, {len(selectors)} x {len(classifiers)} cells "
          f"({', '.join(selectors)} x {', '.join(classifiers)}), k = {args.k}, {args.draws} draws, forward selection")
    target = f"s at {args.target} draws" + (" (extrapolated)" if scale != 1 else "")
    print(f"{'method':<12} {'workers':>7} {'seconds':>9} {'speed-up':>9} {'max |diff|':>11} {target:>30}")
    print(f"{'ranking':<12} {1:>7} {ranking:>9.1f} {'':>9} {'':>11} {ranking:>30.0f}   (in every row below)")
    for method, workers, seconds, speedup, difference in rows:
        scaled = ranking + max(seconds - ranking, 0.0) * scale
        print(f"{method:<12} {workers:>7} {seconds:>9.1f} {speedup:>8.2f}x {difference:>11.2e} {scaled:>30.0f}")
    if plain_seconds is not None and scale != 1:
        plain_scaled = ranking + (plain_seconds - ranking) * scale
        for method, workers, seconds, _, _ in rows[1:]:
            print(f"speed-up at {args.target} draws, {workers} worker(s): "
                  f"{plain_scaled / (ranking + (seconds - ranking) * scale):.2f}x")

if __name__ == "__main__":
    main()
