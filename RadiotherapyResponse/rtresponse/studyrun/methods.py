"""The study steps of the three trained methods, each through the library functions its command uses:

- ``i3d`` (Jeong et al.'s deep arm): :func:`rtresponse.models.i3d.workflow.train_cohort`, as ``rtresponse i3d
  train`` (and its HCR comparison, as ``--handcrafted``);
- ``residual`` (Hua et al.): :func:`rtresponse.residual.run_study` per regimen and the recommendation judged against
  the physicians' choices, as ``rtresponse residual train`` / ``recommend`` (and ``segmenter`` when asked);
- ``recurrence`` (Kutnár et al.): :func:`rtresponse.recurrence.train`, the SUVmax fraction swept on the validation
  patients and :func:`rtresponse.recurrence.study.compare_methods` on the test patients, as ``rtresponse
  recurrence train`` / ``evaluate``.

Each writes into the step folder: ``model/`` (what the command writes), ``predictions.csv`` (patient_id,
feature_set, model, y, probability, chosen: the held-out probabilities behind the report's ROC and calibration;
i3d and residual), ``history.csv`` (the loss curves) and ``failures.csv`` (patient_id, problem); the returned
summary has ``dropped`` ({patient: why}) as the grid analyses do. A patient who cannot be read is left out and
listed, as by the commands; the rest of the study goes on.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Mapping

PREDICTION_COLUMNS = ["patient_id", "feature_set", "model", "y", "probability", "chosen"]


def resolved_weights(weights: str, network: str) -> str:
    """'auto' decided now (imagenet when this computer has ``network``'s weights, else random)."""
    if weights != "auto":
        return weights
    from ..features.deep2d import find_weights

    return "imagenet" if find_weights(network) is not None else "random"


def _csv(frame, path: Path, index: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=index)


def _failures(folder: Path, failures: Mapping[str, str]) -> dict:
    import pandas as pd

    dropped = {str(pid): str(why) for pid, why in failures.items()}
    _csv(pd.DataFrame(sorted(dropped.items()), columns=["patient_id", "problem"]), folder / "failures.csv")
    return dropped


def _epoch_bar(progress: Callable | None, total: int):
    """A callback counting epochs on the step's progress bar."""
    done = [0]

    def epoch(*_):
        done[0] += 1
        if progress is not None:
            progress(min(done[0], total), total)
    return epoch


# --- i3d -----------------------------------------------------------------------------------------------------------

def run_i3d(analysis: Mapping, cohort, folder: Path, seed: int, device: str, handcrafted: Path | None = None,
            progress: Callable | None = None) -> dict:
    """``rtresponse i3d train`` on the study's cohort: the DLR (MR) and DLR (MR + CF) models, test metrics with
    DeLong CIs and Brier score, and (``handcrafted``: a feature CSV) the paper's HCR model compared by DeLong,
    NRI and IDI on the same test patients."""
    import pandas as pd

    from ..models.i3d.preprocess import VolumeConfig
    from ..models.i3d.training import HeadConfig
    from ..models.i3d.workflow import outcome_labels, train_cohort

    s = analysis["i3d"]
    weights = resolved_weights(s["weights"], "resnet50")
    config = VolumeConfig(sequences=tuple(s["sequences"]), mask=s["mask"], spacing_xyz=tuple(s["spacing"]),
                          shape_xyz=tuple(s["shape"]), margin_mm=s["margin_mm"], mode=s["mode"])
    head = HeadConfig(learning_rate=s["learning_rate"], batch_size=s["batch_size"], hidden=s["hidden"],
                      clinical_hidden=s["clinical_hidden"], dropout=s["dropout"], max_epochs=s["epochs"],
                      patience=s["patience"], seed=seed)
    clinical = s["clinical"]
    image_only = clinical == "none" or clinical == []
    factors = None if clinical in ("all", "none") else ([clinical] if isinstance(clinical, str) else list(clinical))
    positive = analysis["positive"]
    out = folder / "model"
    models = 1 if image_only else 2
    epoch = _epoch_bar(progress, models * s["epochs"])
    study, positive, metadata = train_cohort(
        cohort, analysis["outcome"], out, config, None if positive is None else str(positive), factors, image_only,
        weights, None, head, s["trials"], s["sampler"], s["factors"], analysis["test_size"], s["validation_size"],
        s["augment_copies"], seed, device, False, None, on_epoch=epoch)
    (out / "i3d_features.npz").unlink(missing_ok=True)  # the features cache: large, and the step is cached
    summary = {"weights": "random" if weights == "random" else ("imagenet" if weights == "imagenet" else weights),
               "positive_class": metadata["positive_class"], "sets": list(study.models)}
    labels = outcome_labels(cohort, analysis["outcome"], None if analysis["positive"] is None
                            else str(analysis["positive"]))[0]
    if handcrafted is not None:
        from ..cli_i3d import _compare_with_handcrafted

        _compare_with_handcrafted(SimpleNamespace(handcrafted=handcrafted, out=out), study, labels)
    metrics = study.metrics_table()
    best = metrics.loc[metrics["auc"].fillna(-1).idxmax()]
    rows, histories = [], []
    for name, model in study.models.items():
        for pid, y, p in zip(model.split.test_ids, model.split.test_y, model.split.test_scores):
            rows.append({"patient_id": pid, "feature_set": name, "model": name, "y": int(y), "probability": float(p),
                         "chosen": name == best["model"]})
        history = pd.DataFrame(model.head.history).assign(model=name)
        history["kept"] = history["epoch"] == model.head.best_epoch
        histories.append(history)
    hcr = out / "handcrafted_metrics.csv"
    _csv(pd.DataFrame(rows, columns=PREDICTION_COLUMNS), folder / "predictions.csv")
    _csv(pd.concat(histories, ignore_index=True), folder / "history.csv")
    summary.update(
        patients=len(study.train_ids) + len(study.validation_ids) + len(study.test_ids),
        positives=int(labels.reindex(study.train_ids + study.validation_ids + study.test_ids).sum()),
        train=len(study.train_ids), validation=len(study.validation_ids), test=len(study.test_ids),
        best={"model": str(best["model"]), "auc": float(best["auc"])}, handcrafted=hcr.is_file(),
        dropped=_failures(folder, study.failures))
    return summary


# --- residual ------------------------------------------------------------------------------------------------------

def run_residual(analysis: Mapping, cohort, folder: Path, seed: int, device: str,
                 progress: Callable | None = None) -> dict:
    """``rtresponse residual train`` (one network) and ``recommend`` on its test patients: a classifier per regimen,
    its image- and patient-level test metrics, and the recommendation judged against the physicians' choices (the
    paper's Table 3); with ``segmenter``, ``rtresponse residual segmenter``'s validation Dice too."""
    import pandas as pd

    from ..cli_residual import _trained_models
    from ..residual import ClassifierConfig, run_study, save_classifier
    from ..residual.classification import weights_provenance

    s = analysis["residual"]
    weights = resolved_weights(s["weights"], s["network"])
    library_weights = None if weights == "random" else weights
    config = ClassifierConfig(network=s["network"], weights=library_weights, input_size=s["input_size"],
                              learning_rate=s["learning_rate"], momentum=s["momentum"], batch_size=s["batch_size"],
                              epochs=s["epochs"], unit=s["unit"], flip=s["flip"], threshold=s["threshold"],
                              margin_mm=s["margin_mm"], min_pixels=s["min_pixels"], seed=seed, keep=s["keep"],
                              validation_fraction=s["validation_fraction"])
    counterfactual = dict(zip(("CCRT", "IC+CCRT"), s["counterfactual"])) if s["counterfactual"] else None
    epoch = _epoch_bar(progress, 2 * s["epochs"])
    histories = []

    def report(record):
        if record.get("stage") == "training":
            histories.append({k: v for k, v in record.items() if k != "stage"})
            epoch()

    result = run_study(cohort, config, s["image"], s["mask"], s["regimen"], analysis["outcome"], seed=seed,
                       counterfactual=counterfactual, device=device, progress=report)
    out = folder / "model"
    out.mkdir(parents=True, exist_ok=True)
    for regimen, name in (("CCRT", "ccrt.pt"), ("IC+CCRT", "ic_ccrt.pt")):
        save_classifier(out / name, result.models[regimen])
    _csv(result.split.reset_index(), out / "split.csv")
    _csv(result.metrics, out / "metrics.csv")
    _csv(result.predictions, out / "test_predictions.csv")
    _csv(result.situations.reset_index(), out / "situations.csv")
    recommendation = pd.DataFrame(result.summary.as_rows()) if result.summary is not None else pd.DataFrame()
    if result.summary is not None:
        recommendation["chi2"], recommendation["p_value"] = result.summary.chi2, result.summary.p_value
    _csv(recommendation, out / "recommendation.csv")
    history = pd.DataFrame(histories)
    _csv(history, folder / "history.csv")
    record = weights_provenance(s["network"], library_weights, seed)
    card = {"method": "NPC residual tumour (Hua et al.): rectangular MR tumour crops per slice, one ImageNet CNN "
                      "per regimen (CCRT, IC+CCRT), patient probability = mean of its slices",
            "network": s["network"], "weights": record, "positive_class": config.positive_class,
            "models": _trained_models(result, analysis["outcome"], out), "device": device,
            "left_out": result.failures, "recommendation_summary": None if result.summary is None
            else result.summary.as_rows(), "settings": dict(s, seed=seed)}
    (out / "model_card.json").write_text(json.dumps(card, indent=1, default=str) + "\n", encoding="utf-8")
    rows = []
    predictions = result.predictions
    for regimen, column in (("CCRT", "p_residual_CCRT"), ("IC+CCRT", "p_residual_IC_CCRT")):
        received = predictions[predictions["regimen"] == regimen]
        for _, row in received.iterrows():
            rows.append({"patient_id": row["patient_id"], "feature_set": regimen,
                         "model": f"{regimen} model ({s['network']}), patients who received {regimen}",
                         "y": int(row["outcome"]), "probability": float(row[column]), "chosen": True})
    _csv(pd.DataFrame(rows, columns=PREDICTION_COLUMNS), folder / "predictions.csv")
    summary = {"weights": weights if weights in ("imagenet", "random") else "file", "network": s["network"],
               "weights_record": record, "positive_class": config.positive_class,
               "patients": int((result.split["status"] == "ok").sum()),
               "test": int(len(predictions)), "sets": ["CCRT", "IC+CCRT"],
               "epochs_kept": {regimen: int(model.epoch) for regimen, model in result.models.items()}}
    if result.summary is not None:
        summary["recommendation"] = {"model_rate": result.summary.model_rate,
                                     "physician_rate": result.summary.physician_rate,
                                     "p_value": result.summary.p_value}
    if s["segmenter"]:
        summary["segmenter"] = _segmenter(s, cohort, out, seed, device)
    summary["dropped"] = _failures(folder, result.failures)
    return summary


def _segmenter(s: Mapping, cohort, out: Path, seed: int, device: str) -> dict:
    """``rtresponse residual segmenter``: U-Net / DeepLabv3 on the MR slices, 4:1 by patient; validation Dice."""
    import pandas as pd

    from ..residual import SegmenterConfig, compare_segmenters, save_segmenter
    from ..residual.study import segmenter_slices

    slices, _ = segmenter_slices(cohort, s["image"], s["mask"], s["segmenter_input_size"], 0.25, seed)
    weights = resolved_weights("auto", "resnet50")  # DeepLabv3's ResNet-50 backbone: ImageNet when installed
    config = SegmenterConfig(input_size=s["segmenter_input_size"], epochs=s["segmenter_epochs"],
                             batch_size=s["segmenter_batch_size"],
                             backbone_weights=None if weights == "random" else weights, seed=seed)
    records = []
    comparison = compare_segmenters(slices["train"], slices["validation"], config, s["segmenter_architectures"],
                                    device, None, records.append)
    save_segmenter(out / "segmenter.pt", comparison.best)
    _csv(comparison.table.reset_index(), out / "segmentation_metrics.csv")
    _csv(pd.DataFrame(records), out / "segmentation_history.csv")
    return {"architecture": comparison.best.config.architecture,
            "validation_dice": float(comparison.best.validation_dice)}


# --- recurrence ----------------------------------------------------------------------------------------------------

def run_recurrence(analysis: Mapping, cohort, folder: Path, seed: int, device: str,
                   progress: Callable | None = None) -> dict:
    """``rtresponse recurrence train`` then ``evaluate``: the PET/CT 3D U-Net (6:2:2 split of the patients with a
    relapse mask), the SUVmax fraction swept on the validation patients, and the CNN, SUVmax-threshold and GTV
    predictions compared on the test patients (Dice, volume, points of origin included)."""
    from dataclasses import asdict

    import pandas as pd

    from ..errors import RTResponseError
    from ..evaluation.segmentation import compare, summarize
    from ..provenance import weights_record
    from ..recurrence import TrainingConfig, save_model, sweep_fraction, train
    from ..recurrence.study import compare_methods, load_samples, patients_with_mask, split_patients

    s = analysis["recurrence"]
    ids = patients_with_mask(cohort, s["relapse"])
    if not ids:
        raise RTResponseError(f"no patient has a mask_{s['relapse']} file")
    split = split_patients(ids, seed=seed)
    box = tuple(s["box"])
    failures, samples = {}, {}
    for part in ("train", "validation", "test"):
        samples[part], failed = load_samples(cohort, split[part], s["ct"], s["pet"], s["gtv"], s["relapse"],
                                             s["brain"], box)
        failures.update(failed)
    out = folder / "model"
    out.mkdir(parents=True, exist_ok=True)
    _csv(pd.DataFrame([(pid, part) for part, pids in split.items() for pid in pids],
                      columns=["patient_id", "split"]), out / "split.csv")
    config = TrainingConfig(learning_rate=s["learning_rate"], lr_factor=s["lr_factor"], lr_patience=s["lr_patience"],
                            early_stopping_patience=s["patience"], max_epochs=s["epochs"], batch_size=s["batch_size"],
                            runs=s["runs"], channels=tuple(s["channels"]), seed=seed)
    epoch = _epoch_bar(progress, s["runs"] * s["epochs"])
    result = train(samples["train"], samples["validation"], config, device, progress=epoch)
    weights = weights_record(None, config.seed + result.best_run)
    settings = dict(config.to_dict(), box_xyz=list(box), label=s["relapse"], weights=weights,
                    best_run=result.best_run, best_epoch=result.best_epoch,
                    best_validation_dice=result.best_validation_dice)
    save_model(out / "model.pt", result.network, settings)
    history = pd.DataFrame(result.history)
    history["kept"] = (history["run"] == result.best_run) & (history["epoch"] == result.best_epoch)
    _csv(history, folder / "history.csv")
    fraction = s["fraction"]
    if fraction is None:
        fraction, curve = sweep_fraction((x.pet_suv, x.gtv, x.label, x.brain) for x in samples["validation"])
        _csv(curve, out / "suvmax_sweep.csv")
    if not samples["test"]:
        raise RTResponseError("no test patient could be read")
    cases = compare_methods(samples["test"], fraction, result.network, device, s["threshold"])
    _csv(cases, out / "cases.csv")
    table = summarize(cases)
    _csv(table, out / "summary.csv", index=True)
    methods = list(table.index)
    if cases["patient_id"].nunique() >= 2:
        _csv(pd.DataFrame([asdict(compare(cases, methods[0], other)) for other in methods[1:]]),
             out / "comparisons.csv")
    card = {"method": "3D U-Net (MONAI BasicUNet), PET/CT, Kutnár et al.", "device": device, "weights": weights,
            "positive_class": f"voxel inside mask_{s['relapse']}",
            "parameters": sum(p.numel() for p in result.network.parameters()),
            "best_validation_dice": result.best_validation_dice, "best_run": result.best_run,
            "best_epoch": result.best_epoch, "kept": "the run and epoch with the best validation Dice (the paper)",
            "suvmax_fraction": fraction, "patients": {part: len(pids) for part, pids in split.items()},
            "settings": settings}
    (out / "model_card.json").write_text(json.dumps(card, indent=1, default=str) + "\n", encoding="utf-8")
    cnn = table.loc["CNN"] if "CNN" in table.index else None
    return {"patients": len(ids), "train": len(samples["train"]), "validation": len(samples["validation"]),
            "test": len(samples["test"]), "fraction": float(fraction),
            "best_validation_dice": float(result.best_validation_dice),
            "cnn_dice_median": None if cnn is None else float(cnn["dice_median"]),
            "dropped": _failures(folder, failures)}
