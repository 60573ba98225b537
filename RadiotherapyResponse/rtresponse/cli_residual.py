"""``rtresponse residual segmenter|train|predict|recommend``: residual tumour after CCRT / IC+CCRT from MR (NPC paper).

torch and the networks are imported inside the handlers, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import options, progress
from .errors import InputError, RTResponseError
from .inputs import read_table
from .outputs import FILE, FOLDER, Output, writes

PAPER = "paper"  # --network paper: the paper's four networks
UNET_FEATURES = (32, 32, 64, 128, 256, 32)  # rtresponse.residual.segmentation.UNET_FEATURES (no torch import here)


def _write_csv(frame, path: Path, index: bool = False) -> None:
    from .atomic import atomic_path

    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=index)


def _weights(value: str):
    """imagenet | random | FILE -> the library's "imagenet" | None | path."""
    if value == "random":
        return None
    if value == "imagenet":
        return "imagenet"
    path = Path(value)
    if not path.is_file():
        raise RTResponseError(f"--weights: not imagenet, random or an existing file: {value}")
    return str(path)


def _networks(names) -> list[str]:
    from .features.deep2d.catalogue import model_spec
    from .residual import PAPER_NETWORKS

    out = []
    for name in names:
        out += list(PAPER_NETWORKS) if name == PAPER else [model_spec(name).name]
    return list(dict.fromkeys(out))


def _reporter(total_epochs: int):
    """The ``progress`` callback of a study: loading as a progress stage, each epoch printed, as an ``epoch`` event
    (the modules' live curves) and on a training bar of ``total_epochs`` (networks x regimens x epochs)."""
    loading, training = progress.Bar("loading patients"), progress.Bar("training", unit="epoch")
    trained = [0]

    def report(record: dict) -> None:
        if record.get("stage") == "loading":
            loading(record["done"], record["total"])
        elif record.get("stage") == "training":
            validation = (f", validation loss {record['validation_loss']:.4f}, AUC {record['validation_auc']:.3f}"
                          if "validation_loss" in record else "")
            print(f"{record['network']} {record['regimen']} epoch {record['epoch']}: loss {record['train_loss']:.4f}, "
                  f"accuracy {record['train_accuracy']:.3f}{validation}, {record['seconds']:.1f} s", file=sys.stderr)
            progress.epoch(record)
            trained[0] += 1
            training(trained[0], total_epochs, f"{record['network']} {record['regimen']} epoch {record['epoch']}: "
                                               f"loss {record['train_loss']:.3f}" + (
                                                   f", validation AUC {record['validation_auc']:.3f}"
                                                   if "validation_auc" in record else ""))

    def close() -> None:
        loading.close()
        training.close()

    report.close = close
    return report


def _file_record(path: Path) -> dict:
    """A model file as provenance: its path and SHA-256."""
    from .provenance import sha256_file

    return {"file": str(path), "sha256": sha256_file(path)}


def _number(value: float):
    """A float for JSON: NaN (no validation patients) as null."""
    return None if value != value else float(value)


def _trained_models(result, outcome: str, folder: Path) -> dict:
    """Per regimen model: file, the epoch kept and its validation scores, the training data's fingerprint."""
    from .provenance import sha256_file, table_hash

    split = result.split
    found = {}
    for regimen, name in (("CCRT", "ccrt.pt"), ("IC+CCRT", "ic_ccrt.pt")):
        model = result.models[regimen]
        rows = split[(split["regimen"] == regimen) & split["split"].isin(["train", "validation"])
                     & (split["status"] == "ok")]
        found[regimen] = {"file": name, "sha256": sha256_file(folder / name), "epoch": model.epoch,
                          "epochs": model.config.epochs, "keep": model.config.keep,
                          "validation_loss": _number(model.validation_loss),
                          "validation_auc": _number(model.validation_auc),
                          "training_patients": int((rows["split"] == "train").sum()),
                          "validation_patients": int((rows["split"] == "validation").sum()),
                          "training_data_sha256": table_hash(rows[["regimen", "outcome", "split"]]),
                          "training_data": f"patient_id, regimen, outcome_{outcome} and split of the training and "
                                           "validation patients (split.csv)"}
    return found


def _train(args) -> int:
    import pandas as pd
    import torch

    from . import provenance
    from .atomic import write_text
    from .cohort import load_manifest
    from .residual import ClassifierConfig, run_study, save_classifier, split_by_regimen, study_table
    from .residual.classification import weights_provenance
    from .settings import resolve_device

    networks = _networks(args.network)
    weights = _weights(args.weights)
    if weights not in (None, "imagenet") and len(networks) > 1:
        raise RTResponseError("a --weights file fits one network; name a single --network")
    device = resolve_device(args.device)
    cohort = load_manifest(args.manifest)
    table, failures = study_table(cohort, args.regimen, args.outcome)
    split = split_by_regimen(table, seed=args.seed)
    counterfactual = dict(zip(("CCRT", "IC+CCRT"), args.counterfactual)) if args.counterfactual else None
    args.out.mkdir(parents=True, exist_ok=True)
    results, metrics, histories = {}, [], []
    report = _reporter(len(networks) * 2 * args.epochs)
    try:
        for network in networks:
            config = ClassifierConfig(network=network, weights=weights, input_size=args.input_size,
                                      learning_rate=args.lr, momentum=args.momentum, batch_size=args.batch_size,
                                      epochs=args.epochs, unit=args.unit, flip=args.flip, threshold=args.threshold,
                                      margin_mm=args.margin, min_pixels=args.min_pixels, amp=args.amp, seed=args.seed,
                                      keep=args.keep, validation_fraction=args.validation_fraction)
            result = run_study(cohort, config, args.image, args.mask, args.regimen, args.outcome, seed=args.seed,
                               split=split, counterfactual=counterfactual, device=device,
                               weights_folder=args.weights_folder, progress=report)
            results[network] = result
            metrics.append(result.metrics)
            histories += [record for model in result.models.values() for record in model.history]
            if len(networks) > 1:
                for regimen, name in (("CCRT", "ccrt.pt"), ("IC+CCRT", "ic_ccrt.pt")):
                    save_classifier(args.out / network / name, result.models[regimen])
    finally:
        report.close()
    metrics = pd.concat(metrics, ignore_index=True)
    received = metrics[(metrics["population"] == "received") & (metrics["unit"] == "patient")]
    mean_auc = received.groupby("network", sort=False)["auc"].mean()
    best = str(mean_auc.fillna(-1).idxmax())
    chosen = results[best]
    for regimen, name in (("CCRT", "ccrt.pt"), ("IC+CCRT", "ic_ccrt.pt")):
        save_classifier(args.out / name, chosen.models[regimen])
    _write_csv(chosen.split.reset_index(), args.out / "split.csv")
    _write_csv(metrics, args.out / "metrics.csv")
    _write_csv(chosen.predictions, args.out / "test_predictions.csv")
    _write_csv(chosen.situations.reset_index(), args.out / "situations.csv")
    _write_csv(pd.DataFrame(histories), args.out / "history.csv")
    summary = chosen.summary
    records = {network: weights_provenance(network, weights, args.seed, args.weights_folder) for network in networks}
    config = chosen.models["CCRT"].config
    settings = {k: v for k, v in config.to_dict().items() if k != "regimen"}
    settings["weights"] = settings["weights"] or provenance.RANDOM
    card = {"method": "NPC residual tumour (paper 002): rectangular MR tumour crops per slice, one ImageNet CNN "
                      "per regimen (CCRT, IC+CCRT), patient probability = mean of its slices",
            "network": best, "weights": records[best], "positive_class": config.positive_class,
            "models": _trained_models(chosen, args.outcome, args.out),
            "epoch_kept": "the lowest validation loss (patient-level cross-entropy on held-out training patients; "
                          "beyond the paper)" if args.keep == "best" else "the last (the paper)",
            "networks_trained": networks, "mean_test_patient_auc": mean_auc.to_dict(),
            "selected_on": "mean patient-level AUC on the test patients who received each regimen, as the paper "
                           "chose its network (optimistic: the test set chose)" if len(networks) > 1 else None,
            "device": device, "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
            "image": args.image, "mask": args.mask, "regimen_column": args.regimen, "outcome_column": args.outcome,
            "patients": {f"{regimen} {part}": int(((chosen.split["regimen"] == regimen) &
                                                   (chosen.split["split"] == part)).sum())
                         for regimen in ("CCRT", "IC+CCRT") for part in ("train", "validation", "test")},
            "left_out": {**failures, **chosen.failures},
            "recommendation_summary": None if summary is None else summary.as_rows(),
            "settings": settings}
    if len(networks) > 1:
        card["weights_per_network"] = records
    write_text(args.out / "model_card.json", json.dumps(card, indent=1, default=str) + "\n")
    provenance.note(args, "weights", records[best])
    provenance.note(args, "positive_class", config.positive_class)
    for pid, why in card["left_out"].items():
        print(f"  left out {why}", file=sys.stderr)
    shown = received.set_index(["network", "model"])[["n", "auc", "auc_low", "auc_high", "accuracy", "epoch",
                                                       "validation_loss"]]
    print(shown.round(3).to_string())
    kept = ", ".join(f"{regimen} epoch {model.epoch}" for regimen, model in chosen.models.items())
    print(f"wrote {args.out / 'ccrt.pt'} and {args.out / 'ic_ccrt.pt'} ({best}; {kept} of {args.epochs}: "
          f"the {'lowest validation loss' if args.keep == 'best' else 'last'})")
    return 0


def _predict(args) -> int:
    import pandas as pd

    from .residual import load_classifier, load_segmenter, predict_patient
    from .settings import resolve_device

    from . import provenance

    device = resolve_device(args.device)
    ccrt, ic = load_classifier(args.ccrt, device), load_classifier(args.ic_ccrt, device)
    segmenter = load_segmenter(args.segmenter, device) if args.segmenter else None
    models = {"ccrt": _file_record(args.ccrt), "ic_ccrt": _file_record(args.ic_ccrt)}
    if args.segmenter:
        models["segmenter"] = _file_record(args.segmenter)
    provenance.note(args, "model", models)
    provenance.note(args, "positive_class", ccrt.config.positive_class)
    rows = []
    if args.image_file:  # one patient, here
        from .imageio import read_image, read_mask

        provenance.note(args, "unused", ["scheduler"])
        image = read_image(args.image_file)
        mask = read_mask(args.mask_file, segment=args.mask) if args.mask_file else None
        try:
            cases = [(args.patient_id, predict_patient(image, mask, ccrt, ic, segmenter, args.patient_id, device,
                                                       gradcam=bool(args.gradcam)), None)]
        except (RTResponseError, RuntimeError, OSError) as error:
            cases = [(args.patient_id, None, str(error))]
    else:
        if not args.manifest:
            raise RTResponseError("give --manifest (a cohort) or --image-file (one patient)")
        from .cli import _Progress
        from .cohort import load_manifest
        from .residual.predict import predict_cohort

        cohort = load_manifest(args.manifest)
        bar = _Progress("predicting patients")
        try:  # one task per patient (here or on --scheduler's workers), the models loaded once per worker
            cases, where = predict_cohort(cohort, args.ccrt, args.ic_ccrt, args.segmenter, cohort.known(args.patients),
                                          args.image, args.mask, device, gradcam=bool(args.gradcam),
                                          keep_mask=bool(args.details), progress=bar,
                                          execution=args.scheduler or None)
        finally:
            bar.close()
        provenance.note(args, "execution", where)
    for pid, result, problem in cases:
        if problem is not None:
            rows.append({"patient_id": pid, "status": problem})
            print(f"  {pid}: {problem}", file=sys.stderr)
            continue
        rows.append({**result.as_row(), "reasoning": result.reasoning, "status": "ok"})
        if args.gradcam:
            from .imageio import write_image

            for regimen, name in (("CCRT", "CCRT"), ("IC+CCRT", "IC_CCRT")):
                write_image(result.gradcam[regimen], args.gradcam / f"{pid}_gradcam_{name}.nrrd")
        if args.details:
            from .imageio import write_image

            args.details.mkdir(parents=True, exist_ok=True)
            _write_csv(result.slices, args.details / f"{pid}_slices.csv")
            write_image(result.mask, args.details / f"{pid}_tumour.nrrd")
        if len(cases) == 1:
            print(result.reasoning)
    _write_csv(pd.DataFrame(rows), args.out)
    print(f"wrote {args.out}: {sum(r['status'] == 'ok' for r in rows)} of {len(rows)} patient(s)")
    return 0


def _recommend(args) -> int:
    import pandas as pd

    from .atomic import write_text
    from .cohort import load_manifest
    from .recommendation import judge, recommend, situations, summarize
    from .residual import study_table

    predictions = read_table(args.predictions, "the predictions")
    needed = {"patient_id", "residual_CCRT", "residual_IC_CCRT"}
    if not needed <= set(predictions.columns):
        raise RTResponseError(f"{args.predictions}: needs columns {', '.join(sorted(needed))} "
                              "(written by `rtresponse residual predict` or `train`)")
    if "status" in predictions.columns:
        predictions = predictions[predictions["status"].fillna("ok") == "ok"]
    for column in ("residual_CCRT", "residual_IC_CCRT"):  # 0/1 verdicts; int() would truncate a probability
        values = pd.to_numeric(predictions[column], errors="coerce")
        odd = predictions.loc[~values.isin([0, 1]), ["patient_id", column]]
        if len(odd):
            pid, value = odd.iloc[0]
            raise InputError(f"'{value}' is not 0 or 1: the column holds the predicted residual tumour (1) or none (0) "
                             "at the model's threshold, not a probability", patient=pid, column=column,
                             path=str(args.predictions))
    table, failures = study_table(load_manifest(args.manifest, check_files=False), args.regimen, args.outcome)
    ids = [pid for pid in predictions["patient_id"] if pid in table.index]
    if args.split:
        split = _split_column(args.split)
        ids = [pid for pid in ids if split.get(pid) == "test"]
    if not ids:
        raise RTResponseError("no predicted patient has a regimen and an outcome in the manifest")
    rows = predictions.set_index("patient_id").loc[ids]
    cases = [(int(r["residual_CCRT"]), int(r["residual_IC_CCRT"]), table.at[pid, "regimen"],
              table.at[pid, "outcome"]) for pid, r in rows.iterrows()]
    verdicts = [judge(*case) for case in cases]
    per_patient = pd.DataFrame({"patient_id": ids, "residual_CCRT": [c[0] for c in cases],
                                "residual_IC_CCRT": [c[1] for c in cases], "regimen": [c[2] for c in cases],
                                "outcome": [c[3] for c in cases],
                                "recommendation": [recommend(c[0], c[1]) for c in cases],
                                "model_verdict": [v[0] for v in verdicts],
                                "physician_verdict": [v[1] for v in verdicts]})
    summary = summarize(cases, yates=args.yates)
    args.out.mkdir(parents=True, exist_ok=True)
    _write_csv(per_patient, args.out / "cases.csv")
    _write_csv(situations(cases).reset_index(), args.out / "situations.csv")
    _write_csv(pd.DataFrame(summary.as_rows()), args.out / "summary.csv")
    write_text(args.out / "summary.json", json.dumps({"patients": len(cases), "model": summary.model,
                                                      "physician": summary.physician,
                                                      "model_rate": summary.model_rate,
                                                      "physician_rate": summary.physician_rate,
                                                      "chi2": summary.chi2, "p_value": summary.p_value},
                                                     indent=1) + "\n")
    print(situations(cases).to_string())
    print(f"model correct {summary.model_rate:.1%}, physicians correct {summary.physician_rate:.1%} "
          f"(chi-square p = {summary.p_value:.3g}; {len(cases)} patients)")
    return 0


def _split_column(path: Path):
    """{patient_id: train|test} of a split.csv written by ``train``."""
    split = read_table(path, "the split file")
    if not {"patient_id", "split"} <= set(split.columns):
        raise InputError("a split file needs the columns patient_id and split (written by `rtresponse residual train`)",
                         path=str(path))
    return split.set_index("patient_id")["split"]


def _segmenter(args) -> int:
    import pandas as pd

    from . import provenance
    from .cohort import load_manifest
    from .residual import SegmenterConfig, compare_segmenters, save_segmenter
    from .residual.segmentation import weights_provenance
    from .residual.study import segmenter_slices
    from .settings import resolve_device

    cohort = load_manifest(args.manifest)
    slices, parts = segmenter_slices(cohort, args.image, args.mask, args.input_size, args.negatives, args.seed,
                              lambda pid, error: print(f"  left out {error}", file=sys.stderr))
    config = SegmenterConfig(input_size=args.input_size, learning_rate=args.lr, batch_size=args.batch_size,
                             epochs=args.epochs, keep=args.keep, backbone_weights=_weights(args.weights),
                             negatives=args.negatives, unet_features=tuple(args.unet_features), amp=args.amp,
                             seed=args.seed)

    bar, trained = progress.Bar("training", unit="epoch"), [0]

    def report(record):
        print(f"{record['architecture']} epoch {record['epoch']}: Dice loss {record['train_loss']:.4f}, validation "
              f"Dice {record['validation_dice']:.3f}, {record['seconds']:.1f} s", file=sys.stderr)
        progress.epoch(record)
        trained[0] += 1
        bar(trained[0], len(args.architectures) * args.epochs, f"{record['architecture']} epoch {record['epoch']}: "
            f"Dice loss {record['train_loss']:.3f}, validation Dice {record['validation_dice']:.3f}")

    try:
        comparison = compare_segmenters(slices["train"], slices["validation"], config, args.architectures,
                                        resolve_device(args.device), args.weights_folder, report)
    finally:
        bar.close()
    args.out.mkdir(parents=True, exist_ok=True)
    save_segmenter(args.out / "segmenter.pt", comparison.best)
    _write_csv(comparison.table.reset_index(), args.out / "segmentation_metrics.csv")
    _write_csv(pd.DataFrame([(pid, part) for part, pids in parts.items() for pid in pids],
                            columns=["patient_id", "split"]), args.out / "segmentation_split.csv")
    best = comparison.best
    provenance.note(args, "weights", weights_provenance(best.config, args.weights_folder))
    provenance.note(args, "kept", {"architecture": best.config.architecture, "epoch": best.epoch,
                                   "validation_dice": best.validation_dice, "keep": args.keep})
    print(comparison.table.round(3).to_string())
    print(f"wrote {args.out / 'segmenter.pt'} ({comparison.best.config.architecture}, epoch {comparison.best.epoch} "
          f"of {args.epochs}: the {args.keep} on validation)")
    return 0


def add_commands(commands) -> None:
    residual = commands.add_parser(
        "residual", help="residual tumour after CCRT / IC+CCRT from pre-treatment MR, and the regimen to recommend",
        description="The NPC residual-tumour paper: 2D tumour segmentation (U-Net vs DeepLabv3), rectangular tumour "
                    "crops per MR slice, one ImageNet CNN per regimen, patient probability = mean of its slices, "
                    "and the lightest regimen predicted to leave no residual tumour (CCRT, IC+CCRT or IBT).")
    actions = residual.add_subparsers(dest="action", metavar="ACTION", required=True)
    device = argparse.ArgumentParser(add_help=False)
    device.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="default auto (the GPU if there is one)")
    device.add_argument("--weights-folder", type=Path, help="where ImageNet weights are looked for "
                                                            "(default $RTRESPONSE_WEIGHTS or the user cache)")
    cohort = argparse.ArgumentParser(add_help=False)
    cohort.add_argument("--manifest", required=True, type=Path, help="cohort manifest CSV")
    cohort.add_argument("--image", default="T1", help="MR image name (default T1: T1-weighted contrast-enhanced)")
    cohort.add_argument("--mask", default="GTVp", help="tumour mask name (default GTVp); GTVp+GTVn: their union "
                                                       "(the paper's tumour: primary and nodes)")
    cohort.add_argument("--seed", type=options.SEED, default=0, help="seed of the split and of training (default 0)")
    cohort.add_argument("--amp", action="store_true", help="bfloat16 mixed precision (GPU)")

    segment = actions.add_parser("segmenter", parents=[cohort, device],
                                 help="train U-Net and DeepLabv3 on MR slices, keep the better (validation Dice)")
    segment.add_argument("--architectures", nargs="+", default=["unet", "deeplabv3"], choices=("unet", "deeplabv3"),
                         help="the architectures compared (default both)")
    segment.add_argument("--weights", default="imagenet",
                         help="DeepLabv3's ResNet-50 backbone: imagenet (local file), random, or a FILE "
                              "(default imagenet)")
    segment.add_argument("--epochs", type=options.COUNT, default=20, help="epochs (default 20, the paper)")
    segment.add_argument("--keep", choices=("best", "last"), default="best",
                         help="the epoch kept and reported: best validation Dice (default) or the last (the paper)")
    segment.add_argument("--batch-size", type=options.COUNT, default=32, help="slices per batch (default 32, the paper)")
    segment.add_argument("--lr", type=options.POSITIVE, default=1e-3, help="RMSprop learning rate (default 0.001, the paper)")
    segment.add_argument("--input-size", type=options.COUNT, default=256, help="slices resized to this square (default 256)")
    segment.add_argument("--negatives", type=options.NON_NEGATIVE, default=0.25, help="tumour-free slices per tumour slice (default 0.25)")
    segment.add_argument("--unet-features", type=options.COUNT, nargs=6, default=list(UNET_FEATURES), metavar="N",
                         help=f"U-Net feature counts (default {' '.join(map(str, UNET_FEATURES))})")
    segment.add_argument("--out", required=True, type=Path, help="output folder")
    segment.set_defaults(func=_segmenter)
    writes(segment, Output("out", FOLDER))

    train = actions.add_parser("train", parents=[cohort, device],
                               help="4:1 split per regimen, train the CCRT and IC+CCRT models, judge on the test set")
    train.add_argument("--regimen", default="regimen", help="clinical column NAME of the regimen received "
                                                            "(clin_NAME: CCRT or IC+CCRT; default regimen)")
    train.add_argument("--outcome", default="residual", help="outcome NAME: 1 residual tumour, 0 none "
                                                             "(default residual)")
    train.add_argument("--network", nargs="+", default=["xception"],
                       help="catalogue network(s), or 'paper' for efficientnet_b0 inception_resnet_v2 resnet50 "
                            "xception (default xception); with several, the best on the test patients is kept")
    train.add_argument("--weights", default="imagenet", help="imagenet (local files; never a silent fallback), "
                                                             "random, or a FILE (default imagenet)")
    train.add_argument("--epochs", type=options.COUNT, default=40, help="epochs (default 40, the paper)")
    train.add_argument("--keep", choices=("best", "last"), default="best",
                       help="the epoch kept and reported: the lowest loss on validation patients held out of the "
                            "training patients (default) or the last (the paper)")
    train.add_argument("--validation-fraction", type=options.FRACTION,
                       help="share of each regimen's training patients held out, per outcome, to choose the epoch "
                            "(default 0.2 with --keep best; none with --keep last, as the paper)")
    train.add_argument("--batch-size", type=options.COUNT, default=32, help="slices per batch (default 32, the paper)")
    train.add_argument("--lr", type=options.POSITIVE, default=1e-3, help="SGD learning rate (default 0.001, the paper)")
    train.add_argument("--momentum", type=options.number(0, 1, high_open=True), default=0.9,
                       help="SGD momentum (default 0.9)")
    train.add_argument("--input-size", type=options.COUNT, help="crop size in pixels (default: the network's, 299 or 224)")
    train.add_argument("--unit", choices=("image", "patient"), default="image",
                       help="train on slices labelled by their patient (image, the default) or on the patient's mean "
                            "(patient)")
    train.add_argument("--flip", action="store_true", help="random left-right flips (not in the paper)")
    train.add_argument("--margin", type=options.NON_NEGATIVE, default=10.0, help="mm around the tumour's rectangle (default 10)")
    train.add_argument("--min-pixels", type=options.COUNT_OR_ZERO, default=10, help="smallest tumour area of a slice used, in pixels (default 10)")
    train.add_argument("--threshold", type=options.PROBABILITY, default=0.5, help="probability for 'residual' (default 0.5)")
    train.add_argument("--counterfactual", nargs=2, metavar=("CCRT_OUTCOME", "IC_CCRT_OUTCOME"),
                       help="synthetic cohorts: outcome names under each regimen, to score both models on every "
                            "test patient")
    train.add_argument("--out", required=True, type=Path, help="output folder")
    train.set_defaults(func=_train)
    writes(train, Output("out", FOLDER))

    predict = actions.add_parser("predict", parents=[device],
                                 help="probabilities under both regimens and the recommendation, per patient")
    predict.add_argument("--ccrt", required=True, type=Path, help="ccrt.pt written by train")
    predict.add_argument("--ic-ccrt", required=True, type=Path, help="ic_ccrt.pt written by train")
    predict.add_argument("--segmenter", type=Path, help="segmenter.pt: segment the tumour instead of reading a mask")
    predict.add_argument("--manifest", type=Path, help="cohort manifest CSV")
    predict.add_argument("--image", default="T1", help="manifest: MR image name (default T1)")
    predict.add_argument("--mask", default="GTVp", help="manifest: mask name (GTVp+GTVn: union); .seg.nrrd file: "
                                                        "segment name (default GTVp)")
    predict.add_argument("--patients", nargs="+", help="manifest: patient ids (default all)")
    predict.add_argument("--image-file", type=Path, help="one patient: the MR image file")
    predict.add_argument("--mask-file", type=Path, help="one patient: the tumour mask file (omit with --segmenter)")
    predict.add_argument("--patient-id", default="patient", help="one patient: the id written in the table (default patient)")
    predict.add_argument("--gradcam", type=Path, help="also write Grad-CAM images (MR grid) into this folder")
    predict.add_argument("--details", type=Path, help="also write, per patient, the probabilities of each tumour slice "
                                                      "(ID_slices.csv) and the tumour mask used (ID_tumour.nrrd: the "
                                                      "segmenter's with --segmenter) into this folder")
    predict.add_argument("--out", required=True, type=Path, help="output CSV (a row per patient: probabilities, "
                                                                 "verdicts, recommendation and its reasoning)")
    from .cli import add_scheduler_option

    add_scheduler_option(predict, "--manifest: one task per patient (the models loaded once per worker): ")
    predict.set_defaults(func=_predict)
    writes(predict, Output("out", FILE), Output("gradcam", FOLDER), Output("details", FOLDER))

    recommend = actions.add_parser("recommend", help="judge recommendations against the physicians' choices "
                                                     "(the paper's Table 3)")
    recommend.add_argument("--predictions", required=True, type=Path,
                           help="CSV with patient_id, residual_CCRT, residual_IC_CCRT (train's test_predictions.csv "
                                "or predict's output)")
    recommend.add_argument("--manifest", required=True, type=Path, help="manifest with the regimen and outcome")
    recommend.add_argument("--regimen", default="regimen", help="clinical column NAME of the regimen received (default regimen)")
    recommend.add_argument("--outcome", default="residual", help="outcome NAME of the regimen received (default residual)")
    recommend.add_argument("--split", type=Path, help="split.csv from train: judge its test patients only")
    recommend.add_argument("--yates", action="store_true", help="continuity-corrected chi-square")
    recommend.add_argument("--out", required=True, type=Path, help="output folder")
    recommend.set_defaults(func=_recommend)
    writes(recommend, Output("out", FOLDER))
