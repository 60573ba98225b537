"""``rtresponse i3d train|predict``: inflated-3D ResNet-50 radiomics fused with clinical factors (Jeong et al.)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import options
from .outputs import FILE, FOLDER, Output, writes


def _volume_config(args):
    from .models.i3d.preprocess import VolumeConfig

    return VolumeConfig(sequences=tuple(args.image), mask=args.mask, spacing_xyz=tuple(args.spacing),
                        shape_xyz=tuple(args.shape), margin_mm=args.margin, mode=args.mode)


def _train(args) -> int:
    from . import provenance
    from .cli import _Progress
    from .cohort import load_manifest
    from .models.i3d.training import HeadConfig
    from .models.i3d.workflow import outcome_labels, train_cohort
    from .settings import resolve_device

    cohort = load_manifest(args.manifest)
    head = HeadConfig(learning_rate=args.lr, batch_size=args.batch_size, hidden=args.hidden,
                      clinical_hidden=args.clinical_hidden, dropout=args.dropout, max_epochs=args.epochs,
                      patience=args.patience, seed=args.seed)
    bars = {"features": _Progress("I3D features")}

    def report(stage, done, total):
        if stage == "features":
            bars["features"](done, total)

    def epoch(row):  # a bar per model (early stopping may end it before the last epoch) and the live curves
        from .progress import epoch as epoch_event

        epoch_event(row)
        bar = bars.setdefault(row["model"], _Progress(f"training {row['model']}", unit="epoch"))
        bar(row["epoch"], head.max_epochs, f"loss {row['train_loss']:.3f}, validation {row['validation_loss']:.3f}")

    try:
        study, _, metadata = train_cohort(cohort, args.outcome, args.out, _volume_config(args), args.positive,
                                          args.clinical, args.no_clinical, args.weights, args.weights_folder, head,
                                          args.trials, args.sampler, args.factors, args.test_size,
                                          args.validation_size, args.augment_copies, args.seed,
                                          resolve_device(args.device), args.amp, report, on_epoch=epoch,
                                          execution=args.scheduler or None)
    finally:
        for bar in bars.values():
            bar.close()
    provenance.note(args, "weights", metadata["weights_record"])
    provenance.note(args, "positive_class", metadata["positive_class"])
    provenance.note(args, "execution", metadata["execution"])
    for problem in study.failures.values():
        print(f"  skipped {problem}", file=sys.stderr)
    if args.handcrafted:
        _compare_with_handcrafted(args, study, outcome_labels(cohort, args.outcome, args.positive)[0])
    print(study.metrics_table()[["model", "auc", "auc_low", "auc_high", "balanced_accuracy", "brier", "best_epoch",
                                 "best_validation_loss"]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for name, model in study.models.items():  # the head as trained: after --trials, the tuned one
        config = model.head.config
        print(f"{name}: hidden {config.hidden}, lr {config.learning_rate:.3g}, dropout {config.dropout:.2f}, "
              f"epoch {model.head.best_epoch} kept (lowest validation loss)")
    print(f"results in {args.out}")
    return 0


def _compare_with_handcrafted(args, study, outcome) -> None:
    """The paper's HCR model (RFE to 20 features, RBF SVM) on the same split, then DeLong/NRI/IDI against each DLR model."""
    import pandas as pd

    from .atomic import atomic_path
    from .models.study import feature_table
    from .models.validation import compare_on_test, split_validation

    table = feature_table(args.handcrafted, "handcrafted")
    ids = [pid for pid in study.train_ids + study.validation_ids + study.test_ids if pid in table.index]
    X, y = table.loc[ids], outcome[ids].to_numpy()
    positions = {pid: n for n, pid in enumerate(ids)}
    train = [positions[p] for p in study.train_ids + study.validation_ids if p in positions]
    test = [positions[p] for p in study.test_ids if p in positions]
    # RBF SVM with Platt probabilities (NRI and IDI need probabilities; the tuned SVM gives decision values)
    hcr = split_validation(X, y, selector="rfe", classifier="svm", k=min(20, X.shape[1]), split=(train, test))
    rows = [{"model": "HCR (MR)", **hcr.metrics}]
    comparisons = []
    for name, model in study.models.items():
        if model.split.test_ids != hcr.test_ids:
            print(f"  {name}: handcrafted features miss some test patients; no paired comparison", file=sys.stderr)
            continue
        comparisons.append({"comparison": f"HCR (MR) vs {name}", **compare_on_test(hcr, model.split)})
    for frame, name in ((pd.DataFrame(rows), "handcrafted_metrics.csv"), (pd.DataFrame(comparisons), "comparisons.csv")):
        with atomic_path(args.out / name) as tmp:
            frame.to_csv(tmp, index=False)


def _predict(args) -> int:
    from . import provenance
    from .atomic import atomic_path
    from .cohort import load_manifest
    from .models.i3d.outputs import positive_class_of, predict_patients
    from .models.i3d.workflow import weights_provenance
    from .settings import resolve_device

    from .cli import _Progress

    cohort = load_manifest(args.manifest)
    bar = _Progress("I3D features")
    try:
        table = predict_patients(args.model, cohort, cohort.known(args.patients), args.weights_folder,
                                 resolve_device(args.device), execution=args.scheduler or None, progress=bar)
    finally:
        bar.close()
    info = table.attrs["model"]
    provenance.note(args, "execution", table.attrs["execution"])
    provenance.note(args, "model", {"file": str(args.model), "sha256": provenance.sha256_file(args.model)})
    provenance.note(args, "weights", weights_provenance(info["weights"], info.get("seed", 0), args.weights_folder))
    provenance.note(args, "positive_class", positive_class_of(info))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0 if (table["status"] == "ok").any() else 2


def add_commands(commands) -> None:
    i3d = commands.add_parser(
        "i3d", help="inflated-3D ResNet-50 radiomics from MR, fused with clinical factors",
        description="Jeong et al.: a frozen ImageNet ResNet-50 inflated to 3D reads the tumour volume from one or "
                    "more MR sequences; a small head (with a clinical-factor branch) is trained on its cached "
                    "features and judged on a held-out test set.")
    actions = i3d.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--manifest", required=True, type=Path, help="cohort manifest CSV")
    common.add_argument("--weights-folder", type=Path, help="where ImageNet weights files are looked up")
    common.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="default auto (the GPU if there is one)")

    train = actions.add_parser("train", parents=[common], help="features, LASSO clinical factors, heads, test metrics")
    train.add_argument("--outcome", required=True, help="outcome name (manifest column outcome_<NAME>)")
    train.add_argument("--positive", help="the positive class (default 1; the paper: non-complete response)")
    train.add_argument(options.IMAGE, "--sequences", dest="image", action=options.Spelled, collect="extend",
                       deprecated=["--sequences"], default=["T1", "T2"], metavar="NAME",
                       help="MR image names, the sequences in channel order (`--image T1 --image T2` or "
                            "`--image T1 T2`; default T1 T2)")
    train.add_argument("--mask", default="GTVp", help="tumour mask name (default GTVp)")
    train.add_argument("--mode", default="channels", choices=("channels", "streams"),
                       help="sequences as RGB channels of one pass, or one pass each (default channels)")
    train.add_argument("--spacing", type=options.POSITIVE, nargs=3, default=(1.5, 1.5, 3.0), metavar=("X", "Y", "Z"),
                       help="voxel size in mm (default 1.5 1.5 3)")
    train.add_argument("--shape", type=options.COUNT, nargs=3, default=(96, 96, 24), metavar=("X", "Y", "Z"),
                       help="input size in voxels around the tumour (default 96 96 24)")
    train.add_argument("--margin", type=options.NON_NEGATIVE, default=10.0, help="margin around the tumour box in mm (default 10)")
    train.add_argument("--weights", default="imagenet",
                       help="backbone weights: imagenet (a local file, see `rtresponse weights where`), random, "
                            "or a file (default imagenet)")
    train.add_argument("--augment-copies", type=options.COUNT_OR_ZERO, default=0, help="augmented feature copies per training patient (default 0)")
    train.add_argument("--clinical", nargs="*", help="clinical factors to choose from (default: all clin_ columns)")
    train.add_argument("--no-clinical", action="store_true", help="image-only model")
    train.add_argument("--factors", type=options.COUNT_OR_ZERO, default=3, help="clinical factors kept by LASSO (default 3, the paper)")
    train.add_argument("--trials", type=options.COUNT_OR_ZERO, default=0, help="Optuna trials (default 0: no search; the paper 100)")
    train.add_argument("--sampler", default="random", choices=("random", "tpe"), help="Optuna sampler (default random, the paper)")
    train.add_argument("--lr", type=options.POSITIVE, default=1e-3, help="Adam learning rate (default 1e-3, the paper)")
    train.add_argument("--batch-size", type=options.COUNT, default=8, help="patients per batch (default 8, the paper)")
    train.add_argument("--hidden", type=options.COUNT, default=256, help="units of the fusion layer (default 256)")
    train.add_argument("--clinical-hidden", type=options.COUNT, default=64, help="units of the clinical branch (default 64)")
    train.add_argument("--dropout", type=options.number(0, 1, high_open=True), default=0.0,
                       help="dropout before the output layer (default 0)")
    train.add_argument("--epochs", type=options.COUNT, default=300, help="maximum epochs (default 300)")
    train.add_argument("--patience", type=options.COUNT, default=30, help="early-stopping patience in epochs (default 30)")
    train.add_argument("--test-size", type=options.FRACTION, default=1 / 3, help="test fraction (default 1/3)")
    train.add_argument("--validation-size", type=options.FRACTION, default=0.2, help="validation fraction of the rest (default 0.2)")
    train.add_argument("--handcrafted", type=Path,
                       help="handcrafted feature CSV: also fit the paper's HCR SVM on the same split and compare "
                            "(DeLong, NRI, IDI)")
    train.add_argument("--amp", action="store_true", help="bfloat16 mixed precision for the backbone")
    train.add_argument("--seed", type=options.SEED, default=0, help="seed of the split and training (default 0)")
    train.add_argument("--out", required=True, type=Path, help="output folder")
    train.set_defaults(func=_train)
    writes(train, Output("out", FOLDER, keep=("i3d_features.npz",)))

    predict = actions.add_parser("predict", parents=[common], help="probability per patient from a saved model")
    predict.add_argument("--model", required=True, type=Path, help="dlr_mr.pt or dlr_mr_cf.pt written by train")
    predict.add_argument("--patients", nargs="+", help="patient ids (default: all)")
    predict.add_argument("--out", required=True, type=Path, help="CSV to write")
    predict.set_defaults(func=_predict)
    writes(predict, Output("out", FILE))
    from .cli import add_scheduler_option

    for parser in (train, predict):
        add_scheduler_option(parser, "the I3D features, one task per patient (the heads train here): "
                             if parser is train else "the I3D features, one task per patient: ")
