"""The report's sections of the trained methods (:mod:`.methods`): i3d (test metrics, ROC with DeLong CIs,
calibration with Brier score, the HCR comparison by DeLong/NRI/IDI, loss curves), residual (per-regimen test
metrics, the paper's Table 3 recommendation comparison, loss curves, the segmenter's Dice) and recurrence (Dice
and volume box plots of the CNN against the SUVmax-threshold and GTV baselines, points of origin, loss curves)."""

from __future__ import annotations

import json
from typing import Mapping

from . import figures


def _card(section: dict, writer, folder, stem: str) -> None:
    import pandas as pd

    path = folder / "model" / "model_card.json"
    if not path.is_file():
        return
    card = json.loads(path.read_text(encoding="utf-8"))
    shown = [(k, json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v)) for k, v in card.items()]
    writer.table(pd.DataFrame(shown, columns=["field", "value"]), f"{stem}_model_card")
    section["card"] = shown


def _methods(study: Mapping, analysis: Mapping, summary: Mapping) -> str:
    seed = analysis["seed"] if analysis["seed"] is not None else study["seed"]
    protocol = analysis["protocol"]
    s = analysis[protocol]
    dropped = len(summary.get("dropped") or {})
    if protocol == "i3d":
        clinical = ("no clinical factors (image-only model)" if s["clinical"] in ("none", [])
                    else f"the {s['factors']} clinical factors a LASSO chose from "
                         f"{'all' if s['clinical'] == 'all' else ', '.join(s['clinical'])}")
        text = (f"Protocol (Jeong et al., deep arm; as `rtresponse i3d train`): a frozen ResNet-50 inflated to 3D "
                f"({summary.get('weights', s['weights'])} weights) read the {', '.join(s['sequences'])} volume "
                f"({s['mode']}) around {s['mask']} ({' x '.join(map(str, s['shape']))} voxels of "
                f"{' x '.join(f'{v:g}' for v in s['spacing'])} mm, {s['margin_mm']:g} mm margin); a head was trained "
                f"on its features (Adam, learning rate {s['learning_rate']:g}, batch {s['batch_size']}, at most "
                f"{s['epochs']} epochs, the epoch with the lowest validation loss kept, patience {s['patience']}), "
                f"alone (DLR (MR)) and fused with {clinical} (DLR (MR + CF)). One stratified split (seed {seed}) held "
                f"out {100 * analysis['test_size']:.0f}% of the patients for the test and "
                f"{100 * s['validation_size']:.0f}% of the rest for validation: {summary.get('train', '?')} training, "
                f"{summary.get('validation', '?')} validation, {summary.get('test', '?')} test patients "
                f"({summary.get('positives', '?')} of {summary.get('patients', '?')} positive: "
                f"{summary.get('positive_class', '')}). Test AUCs with DeLong 95% CIs, Brier score, calibration.")
        if s["handcrafted"]:
            text += (f" The paper's HCR model (RFE to 20 features of the {s['handcrafted']} set, RBF SVM) was fitted "
                     "on the same training patients and compared with each DLR model by DeLong's test, NRI and IDI.")
    elif protocol == "residual":
        text = (f"Protocol (Hua et al.; as `rtresponse residual train` and `recommend`): each regimen's patients "
                f"(clin_{s['regimen']}: CCRT, IC+CCRT) were split 4:1 into training and test by patient, stratified "
                f"by outcome_{analysis['outcome']} (seed {seed}). Rectangular crops of {s['mask']} on every "
                f"{s['image']} slice ({s['margin_mm']:g} mm margin) fed one {s['network']} per regimen "
                f"({summary.get('weights', s['weights'])} weights; SGD, learning rate {s['learning_rate']:g}, momentum "
                f"{s['momentum']:g}, batch {s['batch_size']}, {s['epochs']} epochs, the {s['keep']} epoch kept); a "
                f"patient's probability is the mean of its slices, residual at {s['threshold']:g}. Each model is "
                "judged on the test patients who received its regimen (image and patient level, AUC with DeLong "
                "95% CI). The recommendation (the lightest regimen predicted to leave no residual tumour: CCRT, "
                "IC+CCRT, else IBT) is judged against the physician's choice and its outcome, as the paper's "
                "Table 3, with a chi-square test of the correct rates.")
        if s["segmenter"]:
            text += (f" Tumour segmenters ({', '.join(s['segmenter_architectures'])}; {s['segmenter_epochs']} "
                     "epochs) were trained on the MR slices (4:1 by patient) and judged by validation Dice.")
    else:
        text = (f"Protocol (Kutnár et al.; as `rtresponse recurrence train` and `evaluate`): the patients with a "
                f"mask_{s['relapse']} were split 6:2:2 (seed {seed}) into {summary.get('train', '?')} training, "
                f"{summary.get('validation', '?')} validation and {summary.get('test', '?')} test patients. A "
                f"2-channel PET/CT 3D U-Net (feature counts {' '.join(map(str, s['channels']))}; box "
                f"{' x '.join(map(str, s['box']))} voxels around {s['gtv']}) was trained with the Dice loss (Adam, "
                f"learning rate {s['learning_rate']:g}, at most {s['epochs']} epochs, {s['runs']} run(s), the run and "
                "epoch with the best validation Dice kept). Baselines: the SUVmax threshold (fraction "
                + (f"{s['fraction']:g}" if s["fraction"] is not None else
                   f"{summary.get('fraction', float('nan')):.2f}, swept on the validation patients")
                + f") and the {s['gtv']} contour. Each method's prediction was compared with the relapse on the "
                "test patients: Dice, recall, precision, volume and the points of origin it includes.")
    return text + f" {dropped} patient(s) were left out (see Per-patient failures)."


def trained_section(study, analysis, step, writer, section: dict) -> dict:
    """Fill ``section`` (the report's dict of one analysis) from a completed i3d, residual or recurrence step."""
    import pandas as pd

    from .report import _html_table, _roc_and_calibration as roc_and_calibration

    name, protocol, folder, summary = analysis["name"], analysis["protocol"], step.path, step.summary
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
    section["methods"] = _methods(study, analysis, summary)
    section["trained"] = True
    model = folder / "model"
    if protocol == "i3d":
        metrics = pd.read_csv(model / "metrics.csv")
        if (model / "handcrafted_metrics.csv").is_file():
            metrics = pd.concat([metrics, pd.read_csv(model / "handcrafted_metrics.csv")], ignore_index=True)
        writer.table(metrics, f"{stem}_results")
        keep = [c for c in ("model", "auc", "auc_low", "auc_high", "balanced_accuracy", "sensitivity", "specificity",
                            "brier", "n", "n_positive", "best_epoch") if c in metrics]
        section["results"] = _html_table(metrics[keep])
        section["best"] = {"feature_set": summary.get("best", {}).get("model", ""), "selector": "", "classifier": ""}
    elif protocol == "residual":
        metrics = pd.read_csv(model / "metrics.csv")
        writer.table(metrics, f"{stem}_results")
        keep = [c for c in ("model", "population", "unit", "n", "n_positive", "auc", "auc_low", "auc_high",
                            "accuracy", "sensitivity", "specificity", "epoch") if c in metrics]
        section["results"] = _html_table(metrics[keep])
        situations = pd.read_csv(model / "situations.csv")
        writer.table(situations, f"{stem}_recommendation_table")
        section["recommendation"] = _html_table(situations)
        if (model / "recommendation.csv").is_file() and (model / "recommendation.csv").stat().st_size > 2:
            rates = pd.read_csv(model / "recommendation.csv")
            writer.table(rates, f"{stem}_recommendation_summary")
            section["recommendation_summary"] = _html_table(rates)
        if (model / "segmentation_metrics.csv").is_file():
            segmentation = pd.read_csv(model / "segmentation_metrics.csv")
            writer.table(segmentation, f"{stem}_segmentation")
            section["segmentation"] = _html_table(segmentation)
    else:
        cases = pd.read_csv(model / "cases.csv", dtype={"patient_id": str})
        table = pd.read_csv(model / "summary.csv", index_col="method")
        writer.table(cases, f"{stem}_cases")
        writer.table(table.reset_index(), f"{stem}_results")
        keep = [c for c in ("patients", "dice_median", "dice_q1", "dice_q3", "volume_cc_median", "volume_cc_q1",
                            "volume_cc_q3", "origins_included", "origins_total") if c in table]
        section["results"] = _html_table(table[keep].reset_index())
        section["boxplots"] = writer.figure(
            figures.method_boxplots(cases, {"dice": "Dice with the relapse", "volume_cc": "predicted volume (cm³)"},
                                    f"{name}: test patients"), f"{stem}_boxplots",
            "Per-patient Dice with the relapse and predicted volume of each method (test patients; points: patients)")
        section["origins"] = writer.figure(figures.origin_counts(table, f"{name}: points of origin"),
                                           f"{stem}_origins", "Relapses' points of origin inside each method's "
                                           "prediction, of all points (test patients)")
    if (model / "comparisons.csv").is_file():
        comparisons = pd.read_csv(model / "comparisons.csv")
        writer.table(comparisons, f"{stem}_comparisons")
        section["comparisons"] = _html_table(comparisons)
    if (folder / "predictions.csv").is_file():
        predictions = pd.read_csv(folder / "predictions.csv", dtype={"patient_id": str})
        if len(predictions):
            writer.table(predictions, f"{stem}_predictions")
            section.update(roc_and_calibration(predictions, writer, stem, f"{name}: test patients",
                                               study["report"]["dpi"]))
    history = pd.read_csv(folder / "history.csv") if (folder / "history.csv").is_file() else pd.DataFrame()
    if len(history):
        writer.table(history, f"{stem}_history")
        if protocol == "i3d":
            figure = figures.loss_curves(history, "epoch", {"train_loss": "training", "validation_loss": "validation"},
                                         "model", f"{name}: head training", "cross-entropy loss")
        elif protocol == "residual":
            figure = figures.loss_curves(history, "epoch", {"train_loss": "training", "validation_loss": "validation"},
                                         "regimen", f"{name}: {summary.get('network', '')} per regimen",
                                         "cross-entropy loss")
        else:
            history = history.assign(run=history["run"].map(lambda r: f"run {r}"))
            figure = figures.loss_curves(history, "epoch", {"train_loss": "training Dice loss",
                                                            "validation_dice": "validation Dice"},
                                         "run", f"{name}: 3D U-Net training", "Dice loss / Dice")
        section["loss"] = writer.figure(figure, f"{stem}_loss", "Loss curves per epoch; dotted line: the epoch kept")
    _card(section, writer, folder, stem)
    return section


def gradcam_figure(step, writer) -> dict:
    """A deep2d feature set's Grad-CAM examples (the step's ``gradcam.npz``) as one report figure."""
    import numpy as np

    summary = step.summary
    with np.load(step.path / "gradcam.npz") as arrays:
        examples = [(f"{pid}", arrays[f"pixels_{i}"], arrays[f"heat_{i}"]) for i, pid in enumerate(summary["patients"])]
    weights = str(summary.get("weights", ""))
    stem = "gradcam_" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in step.name)
    title = f"{step.name}: {summary.get('model', '')} ({'RANDOM' if weights == 'random' else weights} weights)"
    return writer.figure(figures.gradcam_examples(examples, title), stem,
                         f"Grad-CAM of feature set {step.name}'s network (its strongest output unit) over the max-area "
                         f"{summary.get('image', 'CT')} slice as the network saw it (the preprocessed crop), for the "
                         "first patients")
