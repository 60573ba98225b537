"""``rtresponse recurrence train|baseline|evaluate|predict``: recurrence volumes from PET/CT (Kutnár et al.)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import options, progress
from .errors import InputError, RTResponseError
from .inputs import read_table
from .outputs import FOLDER, Output, writes


def _cohort_and_split(args):
    from .cohort import load_manifest
    from .recurrence.study import patients_with_mask, split_patients

    _ct_pet(args)  # before any reading: two image names
    cohort = load_manifest(args.manifest)
    if getattr(args, "split", None):
        table = read_table(args.split, "the split file", text=True)
        if not {"patient_id", "split"} <= set(table.columns):
            raise InputError("a split file needs the columns patient_id and split (written by `rtresponse "
                             "recurrence train`)", path=str(args.split))
        unknown = sorted(set(table["patient_id"]) - set(cohort.patient_ids))
        if unknown:
            raise InputError(f"patient {unknown[0]} of the split is not in the manifest ({len(unknown)} in all)",
                             path=str(args.split))
        return cohort, {part: table.loc[table["split"] == part, "patient_id"].tolist()
                        for part in ("train", "validation", "test")}
    ids = patients_with_mask(cohort, args.relapse)
    if not ids:
        raise RTResponseError(f"no patient has a mask_{args.relapse} file")
    return cohort, split_patients(ids, seed=args.seed)


def _box(args, settings: dict | None = None) -> tuple:
    """--box, else the box the model was trained with, else the paper's."""
    return tuple(args.box or (settings or {}).get("box_xyz") or DEFAULT_BOX)


def _ct_pet(args) -> tuple[str, str]:
    """The CT and PET image names of ``--image`` (the CT first)."""
    if len(args.image) != 2:
        raise RTResponseError(f"give two --image names, the CT then the PET (got {len(args.image)}: "
                              f"{' '.join(args.image)})")
    return args.image[0], args.image[1]


def _samples(args, cohort, ids, what, label: str | None = "", box=None):
    from .cli import _Progress
    from .recurrence.study import load_samples

    ct, pet = _ct_pet(args)
    progress = _Progress(f"preparing {what} patients")
    try:
        samples, failures = load_samples(cohort, ids, ct, pet, args.gtv,
                                         args.relapse if label == "" else label, args.brain, box or _box(args),
                                         progress)
    finally:
        progress.close()
    for pid, reason in failures.items():
        print(f"  skipped {reason}", file=sys.stderr)
    _pet_warnings(args, samples)
    return samples


def _pet_warnings(args, samples) -> None:
    """Each sample's warning (a PET that looks like Bq/mL) once on stderr and in provenance's ``warnings``."""
    from . import provenance

    known = list((getattr(args, "provenance", None) or {}).get("warnings", []))
    new = [w for sample in samples for w in sample.warnings if w not in known]
    for warning in new:
        print(f"warning: {warning}", file=sys.stderr)
    if new:
        provenance.note(args, "warnings", known + new)


def _write_csv(frame, path: Path, index=True) -> None:
    from .atomic import atomic_path

    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=index)


def _positive_class(label: str) -> str:
    """What the probability maps are of."""
    return f"voxel inside mask_{label}"


def _model_record(path: Path) -> dict:
    from .provenance import sha256_file

    return {"file": str(path), "sha256": sha256_file(path)}


def _train(args) -> int:
    import pandas as pd
    import torch

    from . import provenance
    from .atomic import write_text
    from .recurrence import TrainingConfig, load_model, save_model, train
    from .settings import resolve_device

    cohort, split = _cohort_and_split(args)
    initial, initial_settings = load_model(args.init) if args.init else (None, None)
    box = _box(args, initial_settings)  # fine-tuning keeps the initial model's box unless --box says otherwise
    if args.init:
        print(f"fine-tuning {args.init}: box {' x '.join(map(str, box))} voxels "
              f"({'--box' if args.box else 'the initial model'})", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    _write_csv(pd.DataFrame([(pid, part) for part, ids in split.items() for pid in ids],
                            columns=["patient_id", "split"]), args.out / "split.csv", index=False)
    train_set = _samples(args, cohort, split["train"], "training", box=box)
    validation_set = _samples(args, cohort, split["validation"], "validation", box=box)
    config = TrainingConfig(learning_rate=args.lr, lr_factor=args.lr_factor, lr_patience=args.lr_patience,
                            early_stopping_patience=args.patience, max_epochs=args.epochs, batch_size=args.batch_size,
                            runs=args.runs, amp=args.amp, compile=args.compile, seed=args.seed)
    initial = initial.state_dict() if initial is not None else None
    device = resolve_device(args.device)

    bar = progress.Bar("training", unit="epoch")  # at most runs x epochs: early stopping ends a run sooner

    def report(record):
        print(f"run {record['run']} epoch {record['epoch']}: loss {record['train_loss']:.4f}, validation Dice "
              f"{record['validation_dice']:.4f}, lr {record['lr']:.2g}, {record['seconds']:.1f} s", file=sys.stderr)
        progress.epoch(record)  # the modules' live training curves
        bar(record["run"] * config.max_epochs + record["epoch"], config.runs * config.max_epochs,
            f"run {record['run'] + 1} of {config.runs}, epoch {record['epoch']}: loss {record['train_loss']:.3f}, "
            f"validation Dice {record['validation_dice']:.3f}")

    try:
        result = train(train_set, validation_set, config, device, initial, progress=report)
    finally:
        bar.close()
    # the kept run started from the --init file, else from He weights seeded by seed + run
    weights = provenance.weights_record(args.init, config.seed + result.best_run, name="fine-tuned from")
    settings = dict(config.to_dict(), box_xyz=list(box), label=args.relapse, fine_tuned_from=str(args.init or ""),
                    weights=weights, best_run=result.best_run, best_epoch=result.best_epoch,
                    best_validation_dice=result.best_validation_dice)
    save_model(args.out / "model.pt", result.network, settings)
    history = pd.DataFrame(result.history)
    history["kept"] = (history["run"] == result.best_run) & (history["epoch"] == result.best_epoch)
    _write_csv(history, args.out / "history.csv", index=False)
    trained = pd.DataFrame({"split": ["train"] * len(train_set) + ["validation"] * len(validation_set)},
                           index=pd.Index([s.patient_id for s in train_set + validation_set], name="patient_id"))
    card = {"method": "3D U-Net (MONAI BasicUNet), PET/CT, Kutnár et al.", "device": device,
            "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
            "weights": weights, "positive_class": _positive_class(args.relapse),
            "parameters": sum(p.numel() for p in result.network.parameters()),
            "best_validation_dice": result.best_validation_dice, "best_run": result.best_run,
            "best_epoch": result.best_epoch, "kept": "the run and epoch with the best validation Dice (the paper)",
            "seconds_per_epoch": float(history["seconds"].mean()),
            "patients": {part: len(ids) for part, ids in split.items()},
            "training_data": {"sha256": provenance.table_hash(trained), "patients": len(train_set),
                              "validation_patients": len(validation_set),
                              "what": f"patient_id and split of the training and validation patients that loaded; "
                                      f"labels: their mask_{args.relapse}"},
            "settings": settings}
    write_text(args.out / "model_card.json", json.dumps(card, indent=1) + "\n")
    provenance.note(args, "weights", weights)
    provenance.note(args, "positive_class", _positive_class(args.relapse))
    print(f"wrote {args.out / 'model.pt'}: best validation Dice {result.best_validation_dice:.3f} "
          f"(run {result.best_run}, epoch {result.best_epoch})")
    return 0


def _fraction(args, cohort, split) -> float:
    from .recurrence import sweep_fraction

    if args.fraction is not None:
        return args.fraction
    validation = _samples(args, cohort, split["validation"], "validation")
    best, curve = sweep_fraction((s.pet_suv, s.gtv, s.label, s.brain) for s in validation)
    args.out.mkdir(parents=True, exist_ok=True)
    _write_csv(curve, args.out / "suvmax_sweep.csv", index=False)
    print(f"SUVmax fraction from the validation sweep: {best:.0%} (mean Dice {curve['mean_dice'].max():.3f})")
    return best


def _baseline(args) -> int:
    cohort, split = _cohort_and_split(args)
    _fraction(args, cohort, split)
    return 0


def _evaluate(args) -> int:
    from dataclasses import asdict

    import pandas as pd

    from .evaluation.segmentation import compare, summarize
    from .recurrence import load_model
    from .recurrence.study import compare_methods
    from .settings import resolve_device

    cohort, split = _cohort_and_split(args)
    fraction = _fraction(args, cohort, split)
    device = resolve_device(args.device)
    network, settings = load_model(args.model, device) if args.model else (None, {})
    if args.model:
        from . import provenance

        provenance.note(args, "model", _model_record(args.model))
    test = _samples(args, cohort, split["test"], "test", box=_box(args, settings))
    cases = compare_methods(test, fraction, network, device, args.threshold)
    args.out.mkdir(parents=True, exist_ok=True)
    _write_csv(cases, args.out / "cases.csv", index=False)
    summary = summarize(cases)
    _write_csv(summary, args.out / "summary.csv")
    methods = list(summary.index)
    if len(cases["patient_id"].unique()) >= 2:
        comparisons = pd.DataFrame([asdict(compare(cases, methods[0], other)) for other in methods[1:]])
        _write_csv(comparisons, args.out / "comparisons.csv", index=False)
    print(summary[["patients", "dice_median", "dice_q1", "dice_q3", "volume_cc_median", "origins_included",
                   "origins_total"]].round(3).to_string())
    return 0


def _predict(args) -> int:
    from types import SimpleNamespace

    import numpy as np
    import SimpleITK as sitk

    from .cli import _Progress
    from .cohort import load_manifest
    from .imageio import write_image
    from .recurrence import load_model, prediction_to_image
    from .recurrence.study import predict_cohort
    from .settings import resolve_device

    from . import provenance

    _ct_pet(args)
    cohort = load_manifest(args.manifest)
    device = resolve_device(args.device)
    _, settings = load_model(args.model, device)  # its box; the tasks load it where they run
    provenance.note(args, "model", _model_record(args.model))
    provenance.note(args, "positive_class", _positive_class(settings.get("label", "relapse")))
    ids = cohort.known(args.patients)
    args.out.mkdir(parents=True, exist_ok=True)
    ct_name, pet_name = _ct_pet(args)
    bar = _Progress("predicting patients")
    try:  # one task per patient (here or on --scheduler's workers), the model loaded once per worker
        results, where = predict_cohort(cohort, args.model, ids, ct_name, pet_name, args.gtv, args.brain,
                                        _box(args, settings), device, progress=bar,
                                        execution=args.scheduler or None)
    finally:
        bar.close()
    provenance.note(args, "execution", where)
    for result in results:
        if result["problem"] is not None:
            print(f"  skipped {result['problem']}", file=sys.stderr)
    _pet_warnings(args, [SimpleNamespace(warnings=r["warnings"]) for r in results if r["problem"] is None])
    for result in results:
        if result["problem"] is not None:
            continue
        pid, probability = result["patient_id"], result["probability"]
        image = prediction_to_image(probability, SimpleNamespace(crop=result["crop"]), cohort.read_image(pid, ct_name))
        write_image(image, args.out / f"{pid}_probability.nrrd")
        write_image(sitk.Cast(image >= args.threshold, sitk.sitkUInt8), args.out / f"{pid}_relapse.nrrd")
        print(f"{pid}: predicted relapse {np.count_nonzero(probability >= args.threshold)} voxels")
    return 0


DEFAULT_BOX = (160, 224, 128)
DEFAULT_IMAGES = ("CT", "PET")  # --image: the CT, then the PET


def add_commands(commands) -> None:
    recurrence = commands.add_parser(
        "recurrence", help="recurrence volumes from PET/CT: 3D U-Net, SUVmax-threshold and GTV baselines",
        description="Kutnár et al.: train a 2-channel PET/CT 3D U-Net on relapse volumes (6:2:2 split by patient), "
                    "choose the SUVmax fraction on the validation patients, and compare the CNN with the "
                    "SUVmax-threshold and GTV baselines on the test patients.")
    actions = recurrence.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--manifest", required=True, type=Path, help="cohort manifest CSV")
    common.add_argument(options.IMAGE, dest="image", action=options.Spelled, collect="extend", metavar="NAME",
                        default=list(DEFAULT_IMAGES),
                        help="the CT image name, then the PET's (`--image CT --image PET` or `--image CT PET`; "
                             "default CT PET)")
    common.add_argument("--ct", dest="image", action=options.ImageAt, position=0, instead="--image CT_NAME PET_NAME")
    common.add_argument("--pet", dest="image", action=options.ImageAt, position=1, instead="--image CT_NAME PET_NAME")
    common.add_argument("--gtv", default="GTVp", help="GTV mask name (default GTVp); the box is centred on it")
    common.add_argument("--relapse", default="relapse",
                        help="label mask name (default relapse; a GTV name pre-trains on tumour segmentation)")
    common.add_argument("--brain", help="brain mask name, removed from the SUVmax-threshold prediction")
    common.add_argument("--box", type=options.COUNT, nargs=3, metavar=("X", "Y", "Z"),
                        help="box in voxels, sides divisible by 16 (default: the model's, else 160 224 128, the paper's)")
    common.add_argument("--seed", type=options.SEED, default=0, help="seed of the split and the runs (default 0)")
    common.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="default auto (the GPU if there is one)")
    common.add_argument("--out", required=True, type=Path, help="output folder")

    train = actions.add_parser("train", parents=[common], help="train the U-Net (best of --runs on validation)")
    train.add_argument("--epochs", type=options.COUNT, default=500, help="maximum epochs per run (default 500)")
    train.add_argument("--runs", type=options.COUNT, default=5, help="runs from different seeds, best kept (default 5, the paper)")
    train.add_argument("--lr", type=options.POSITIVE, default=0.1, help="Adam learning rate (default 0.1, the paper)")
    train.add_argument("--lr-factor", type=options.FRACTION, default=0.05, help="plateau reduction factor (default 0.05, the paper)")
    train.add_argument("--lr-patience", type=options.COUNT_OR_ZERO, default=10, help="plateau patience in epochs (default 10, the paper)")
    train.add_argument("--patience", type=options.COUNT, default=60, help="early-stopping patience in epochs (default 60, the paper)")
    train.add_argument("--batch-size", type=options.COUNT, default=2, help="patients per batch (default 2, the paper)")
    train.add_argument("--init", type=Path, help="fine-tune: start from this model (e.g. one trained on the GTV)")
    train.add_argument("--amp", action="store_true", help="bfloat16 mixed precision")
    train.add_argument("--compile", action="store_true", help="torch.compile the network (GPU)")
    train.set_defaults(func=_train)
    writes(train, Output("out", FOLDER))

    for name, func, text in (("baseline", _baseline, "sweep the SUVmax fraction 1-100 %% on the validation patients"),
                             ("evaluate", _evaluate, "compare CNN, SUVmax threshold and GTV on the test patients")):
        action = actions.add_parser(name, parents=[common], help=text)
        action.add_argument("--split", type=Path, help="split.csv written by train (default: the seeded split)")
        action.add_argument("--fraction", type=options.number(0, 1, low_open=True), help="SUVmax fraction (default: the validation sweep)")
        if name == "evaluate":
            action.add_argument("--model", type=Path, help="model.pt written by train (omit: baselines only)")
            action.add_argument("--threshold", type=options.PROBABILITY, default=0.5,
                                help="CNN probability threshold (default 0.5)")
        action.set_defaults(func=func)
        writes(action, Output("out", FOLDER))

    predict = actions.add_parser("predict", parents=[common], help="probability map and relapse mask per patient")
    predict.add_argument("--model", required=True, type=Path, help="model.pt written by train")
    predict.add_argument("--patients", nargs="+", help="patient ids (default: all)")
    predict.add_argument("--threshold", type=options.PROBABILITY, default=0.5,
                         help="probability threshold of the mask (default 0.5)")
    from .cli import add_scheduler_option

    add_scheduler_option(predict, "the patients' maps, one task per patient (the model loaded once per worker): ")
    predict.set_defaults(func=_predict)
    writes(predict, Output("out", FOLDER))
