"""``rtresponse evaluate``: feature tables and an outcome in, the judged grid, figures and the chosen model out.

A workflow step: the outcome may come from a labels file (``--labels``, as ``rtresponse labels`` writes it), the
features may be filtered to those robust to re-delineation (``--robust-from`` a perturbation table, ``--icc``), and
the bootstrap grid keeps each finished cell in ``OUT/.partial`` so that ``--resume`` continues an interrupted run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import options
from .errors import RTResponseError
from .outputs import FOLDER, Output, writes


def _outcome(args, cohort):
    """(the outcome Series, the positive class) from the manifest and the --labels files; notes what it used."""
    from . import provenance
    from .labels import merge_labels
    from .models.study import parse_positive

    outcomes = merge_labels(cohort.outcomes(), args.labels) if args.labels else cohort.outcomes()
    if args.outcome not in outcomes.columns:
        given = f" or a column of {', '.join(map(str, args.labels))}" if args.labels else ""
        raise RTResponseError(f"no column outcome_{args.outcome} in the manifest{given} "
                              f"(outcomes: {', '.join(map(str, outcomes.columns)) or 'none'})")
    outcome = outcomes[args.outcome].rename(args.outcome)
    if args.labels:
        unlabelled = sorted(map(str, outcome.index[outcome.isna()]))
        provenance.note(args, "labels", {"files": {str(path): provenance.sha256_file(path) for path in args.labels},
                                         "outcome": args.outcome, "patients": len(outcome),
                                         "unlabelled_patients": len(unlabelled), "unlabelled": unlabelled})
        print(f"outcome {args.outcome}: {len(outcome) - len(unlabelled)} of {len(outcome)} patient(s) labelled; "
              f"{len(unlabelled)} without a label left out")
    return outcome, parse_positive(args.positive, outcome)


def _feature_sets(args, cohort) -> dict:
    """The sets of cli._feature_sets, filtered to robust features (--robust-from) before they are combined."""
    from . import provenance
    from .cli import _feature_sets as read_sets
    from .models.study import CLINICAL_SET, feature_set_names
    from .models.tables import join_sets

    sets = read_sets(argparse.Namespace(**{**vars(args), "combine": False}), cohort)
    if args.robust_from:
        from .selection.robustness import read_repeats, robust_feature_sets

        sets, counts, table = robust_feature_sets(sets, read_repeats(args.robust_from), args.icc, skip=(CLINICAL_SET,),
                                                  label=str(args.robust_from))
        provenance.note(args, "robustness", {"table": str(args.robust_from),
                                             "sha256": provenance.sha256_file(args.robust_from),
                                             "rule": f"ICC(A,1) > {args.icc:g}", "sets": counts})
        Path(args.out).mkdir(parents=True, exist_ok=True)
        table.to_csv(Path(args.out) / "robustness.csv", index=False)
        for name, count in counts.items():
            untested = f", {count['untested']} not in the table kept" if count["untested"] else ""
            print(f"robust features of {name}: {count['kept']} kept, {count['dropped']} dropped "
                  f"(ICC(A,1) <= {args.icc:g}){untested}")
    if args.combine and len(sets) > 1:
        sets[feature_set_names(sets)[-1]] = join_sets(sets)
    return sets


def _cell_cache(args, sets, outcome, positive):
    """The bootstrap grid's progress file in OUT/.partial (None for the split protocol), with a note on resuming."""
    from .models.cells import PARTIAL, CellCache, run_key
    from .outputs import final_place

    if args.protocol != "bootstrap":
        if args.resume:
            raise RTResponseError("--resume continues the bootstrap grid; the split protocol runs from the start")
        return None
    settings = {"protocol": args.protocol, "k": args.k, "n_bootstrap": args.n_bootstrap,
                "forward": not args.no_forward, "seed": args.seed, "positive": str(positive)}
    folder = final_place(args.out) / PARTIAL
    cache = CellCache(folder, run_key(sets, outcome, settings), resume=args.resume)
    if args.resume and not cache.found:
        print(f"rtresponse: note: --resume: no interrupted run in {folder.parent}; computing every cell",
              file=sys.stderr)
    elif cache.stale:
        print(f"rtresponse: note: --resume: the cells in {folder} are not used: {cache.stale}; computing every "
              "cell", file=sys.stderr)
    elif cache.found and not args.resume:
        print(f"rtresponse: note: {folder} holds an interrupted run's cells; computing every cell (pass --resume to "
              "take them)", file=sys.stderr)
    return cache


def _evaluate(args) -> int:
    from . import provenance
    from .cli import _Progress
    from .cohort import load_manifest
    from .models.evaluate import evaluate, write_outputs

    cohort = load_manifest(args.manifest, check_files=False)
    outcome, positive = _outcome(args, cohort)
    _warn_random_weights(args)
    sets = _feature_sets(args, cohort)
    cache = _cell_cache(args, sets, outcome, positive)
    progress = _Progress("evaluating models")
    try:
        evaluation = evaluate(sets, outcome, protocol=args.protocol,
                              selectors=args.selectors, classifiers=args.classifiers, k=args.k,
                              n_bootstrap=args.n_bootstrap, forward=not args.no_forward, positive=positive,
                              test_size=args.test_size, cv_folds=args.cv_folds, random_state=args.seed,
                              n_jobs=args.jobs, progress=progress, cell_cache=cache,
                              execution=args.scheduler or None)
    finally:
        progress.close()
    provenance.note(args, "execution", evaluation.execution)
    if cache is not None and cache.reused:
        provenance.note(args, "resumed", {"cells_reused": cache.reused, "cells_computed": cache.computed})
        print(f"resumed: {cache.reused} grid cell(s) taken from the interrupted run, {cache.computed} computed")
    paths = write_outputs(evaluation, args.out, args.outcome, evaluation.best.get("positive", positive))
    best = evaluation.best
    if args.protocol == "bootstrap":
        print(f"best: {best['feature_set']} {best['selector']} + {best['classifier']} auc632plus "
              f"{best['auc632plus']:.3f} ({best['features']})")
    else:
        print(f"chosen by {args.cv_folds}-fold CV on the training patients: {best['feature_set']} {best['selector']} "
              f"+ {best['classifier']} CV AUC {best['cv_auc']:.3f}; test AUC {best['auc']:.3f} "
              f"({best['auc_low']:.3f}-{best['auc_high']:.3f}) ({best['features']})")
    for pid, why in evaluation.dropped.items():
        print(f"  left out {pid}: {why}", file=sys.stderr)
    if args.robust_from:
        paths["robustness"] = Path(args.out) / "robustness.csv"
    for label, path in paths.items():
        print(f"wrote {label}: {path}")
    return 0


def _warn_random_weights(args) -> None:
    """Deep features from random weights are for testing: say so before judging models on them, and record it."""
    import pandas as pd

    from . import provenance

    random_sets = {}
    for path in args.features or []:
        column = pd.read_csv(path, usecols=lambda name: name == "weights", dtype=str)
        marked = sorted({v for v in column.get("weights", pd.Series(dtype=str)).dropna() if v.startswith("random")})
        if marked:
            random_sets[str(path)] = marked
            print(f"rtresponse: warning: {path} holds features from {', '.join(marked)} weights: models on them "
                  "test the software, not the method", file=sys.stderr)
    if random_sets:
        provenance.note(args, "random_weight_features", random_sets)


def add_command(commands) -> None:
    from .cli import add_scheduler_option
    from .models.cells import PARTIAL
    from .models.classifiers import CLASSIFIER_NAMES, PAPER_CLASSIFIERS
    from .models.grid import PAPER_SELECTORS
    from .models.split_protocol import DEFAULT_FOLDS
    from .selection.robustness import ICCFilter

    icc = ICCFilter().threshold  # the library's default (paper 000)
    evaluate = commands.add_parser(
        "evaluate", help="judge feature sets against an outcome (0.632+ bootstrap grid or train/test split)",
        description="Evaluate feature tables (CSV with patient_id) and/or clinical factors against an outcome of "
                    "the manifest or of a labels file. bootstrap: every selector x classifier by the 0.632+ "
                    "bootstrap AUC (Tanaka et al.); split: stratified train/test split; each model judged by k-fold "
                    "cross-validation on the training patients, the best (per feature set and overall) tested once, "
                    "with a training Youden cut-off, DeLong CI, and DeLong/NRI/IDI between the chosen models (Jeong "
                    "et al.). Writes OUT/results.csv, heat maps or comparisons.csv and split.csv, roc.png and "
                    "roc.csv, the chosen model as OUT/model.skops and its model_card.json (and robustness.csv with "
                    f"--robust-from). The bootstrap grid keeps each finished cell in OUT/{PARTIAL} until the outputs "
                    "are written: after an interruption, the same command with --resume computes only the rest.")
    evaluate.add_argument("--features", action="append", type=Path, help="feature table CSV (repeatable)")
    evaluate.add_argument("--manifest", required=True, type=Path, help="cohort manifest (outcomes, clinical factors)")
    evaluate.add_argument("--labels", action="append", type=Path,
                          help="labels CSV (patient_id and label columns, as `rtresponse labels` writes it; "
                               "repeatable): its columns are outcomes beside the manifest's; patients it does not "
                               "label are left out (default: the manifest's outcomes only)")
    evaluate.add_argument("--outcome", required=True,
                          help="outcome NAME: the manifest's outcome_NAME column or a --labels column (regression)")
    evaluate.add_argument("--positive", help="the positive outcome label (default 1, or the larger of two numbers)")
    evaluate.add_argument("--clinical", help="clinical factors as a feature set: 'all' or NAME,NAME,... (default none)")
    evaluate.add_argument("--combine", action="store_true", help="also evaluate the union of all feature sets")
    evaluate.add_argument("--robust-from", type=Path, metavar="PERTURBED.csv",
                          help="keep only the features robust to re-delineation: their ICC(A,1) in this perturbation "
                               "table (`rtresponse features ... --perturbations N`) must be above --icc; features "
                               "it lacks and clinical factors are kept (default: no filtering)")
    evaluate.add_argument("--icc", type=options.number(-1, 1), default=icc,
                          help=f"--robust-from: keep features with ICC(A,1) above this (default {icc:g}, as ICCFilter)")
    evaluate.add_argument("--protocol", choices=("bootstrap", "split"), default="bootstrap",
                          help="bootstrap (Tanaka et al.) or split (Jeong et al.) (default bootstrap)")
    evaluate.add_argument("--selectors", nargs="+", default=list(PAPER_SELECTORS),
                          help=f"feature selectors (default {' '.join(PAPER_SELECTORS)}; also lasso rfe none)")
    evaluate.add_argument("--classifiers", nargs="+", default=list(PAPER_CLASSIFIERS), choices=CLASSIFIER_NAMES,
                          help=f"classifiers (default {' '.join(PAPER_CLASSIFIERS)})")
    evaluate.add_argument("--k", type=options.COUNT, default=10, help="features kept by each selector (default 10)")
    evaluate.add_argument("--n-bootstrap", type=options.DRAWS, default=1000, help="bootstrap draws (default 1000)")
    evaluate.add_argument("--no-forward", action="store_true",
                          help="bootstrap: skip forward selection (default: forward selection, as Tanaka et al.)")
    evaluate.add_argument("--test-size", type=options.FRACTION, default=1 / 3,
                          help="split: the fraction of patients held out as the test set (default 1/3)")
    evaluate.add_argument("--cv-folds", type=options.integer(2), default=DEFAULT_FOLDS,
                          help=f"split: stratified folds of the training patients that choose the model "
                               f"(default {DEFAULT_FOLDS}, as Jeong et al.)")
    evaluate.add_argument("--seed", type=options.SEED, default=0,
                          help="random seed of the bootstrap draws, split and models (default 0)")
    evaluate.add_argument("--jobs", type=options.COUNT, default=1,
                          help="parallel bootstrap fits; split: feature set x selector tasks in parallel (default 1)")
    add_scheduler_option(evaluate, "the bootstrap grid's cells; split: each feature set x selector's CV and fits; ")
    evaluate.add_argument("--resume", action="store_true",
                          help=f"bootstrap: take the grid cells an interrupted run with the same inputs and settings "
                               f"left in OUT/{PARTIAL}, compute only the rest (default: compute every cell)")
    evaluate.add_argument("--out", required=True, type=Path, help="output folder")
    evaluate.set_defaults(func=_evaluate)
    writes(evaluate, Output("out", FOLDER, keep=(PARTIAL,)))
