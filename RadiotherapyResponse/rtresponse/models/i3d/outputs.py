"""What a DLR study leaves in its output folder, and applying a saved model to new patients.

``write_study`` writes (each file atomically): ``split.csv``, ``metrics.csv`` (one row per
model), ``test_scores.csv``, ``history_<model>.csv`` and ``loss_curves.png`` (training and
validation loss per epoch), ``shapley.csv`` (clinical factors), ``trials.csv`` (Optuna), one
model file per model (``dlr_mr.pt``, ``dlr_mr_cf.pt``: state dict + JSON metadata, loaded with
``weights_only=True``) and ``model_card.json`` (per model: the head actually trained — after
tuning, the trial's hidden units, learning rate, dropout — its trainable parameters, the epoch kept
and its validation loss, MACs and inference time per patient on the device used; the backbone
weights, the positive class, the training data's fingerprint and the settings).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ...atomic import atomic_path, write_text
from .complexity import count_macs, measure
from .fusion import trainable_parameters
from .preprocess import VolumeConfig
from .study import IMAGE_ONLY, ClinicalEncoding, I3DStudy
from .training import load_head, predict_proba, save_head

MODEL_FILES = {IMAGE_ONLY: "dlr_mr.pt", "DLR (MR + CF)": "dlr_mr_cf.pt"}


def _csv(frame, path: Path, index: bool = False) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=index)


def loss_curves(study: I3DStudy, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for (name, model), colour in zip(study.models.items(), ("tab:cyan", "tab:red", "tab:green")):
        history = model.head.history
        axes.plot(history["epoch"], history["train_loss"], "s-", color=colour, markersize=3, label=f"{name} training")
        axes.plot(history["epoch"], history["validation_loss"], "o--", color=colour, markersize=3,
                  label=f"{name} validation")
    axes.set_xlabel("epoch")
    axes.set_ylabel("cross-entropy loss")
    axes.legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=120)
    plt.close(figure)


def head_record(result, study: I3DStudy) -> dict:
    """The head as trained: its settings (tuned, after an Optuna search), the epoch kept and its validation loss."""
    return {"head": result.config.to_dict(), "tuned": study.trials is not None, "best_epoch": int(result.best_epoch),
            "best_validation_loss": float(result.best_validation_loss)}


def model_card(backbone, head, config: VolumeConfig, clinical_columns: int, device: str, repeats: int = 3) -> dict:
    """Parameters, trainable parameters, MACs and seconds per patient (backbone + head) on ``device``."""
    import torch

    shape = (config.passes, 3, *config.shape_xyz[::-1])
    volume = torch.zeros(shape, device=device)
    image_features = torch.zeros((1, head.image_mean.numel()), device=device)
    clinical = torch.zeros((1, clinical_columns), device=device) if clinical_columns else None
    backbone_numbers = measure(backbone, volume, repeats=repeats)
    head.eval()
    head_macs = count_macs(head, (image_features, clinical))
    return {"device": device, "input_shape": list(shape),
            "parameters": backbone_numbers.parameters + sum(p.numel() for p in head.parameters()),
            "trainable_parameters": trainable_parameters(head),
            "gmacs": (backbone_numbers.macs + head_macs) / 1e9,
            "ms_per_patient": 1000 * backbone_numbers.seconds_per_run,
            "ms_per_patient_sd": 1000 * backbone_numbers.seconds_sd,
            "paper": {"gmacs": 160.3, "trainable_parameters_mr": 525570, "trainable_parameters_mr_cf": 546370,
                      "ms_per_run": 48.747, "gpu": "NVIDIA TITAN RTX"}}


def write_study(study: I3DStudy, out: str | os.PathLike, metadata: dict, backbone=None, device: str = "cpu") -> Path:
    """Everything about ``study`` into ``out``; ``metadata`` (volume config, weights, outcome...) goes into each model file."""
    import pandas as pd

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    split = pd.DataFrame([(pid, part) for part, ids in (("train", study.train_ids), ("validation", study.validation_ids),
                                                         ("test", study.test_ids)) for pid in ids],
                         columns=["patient_id", "split"])
    _csv(split, out / "split.csv")
    _csv(study.metrics_table(), out / "metrics.csv")
    scores = pd.DataFrame({"patient_id": study.test_ids})
    for name, model in study.models.items():
        scores["y"] = model.split.test_y
        scores[name] = model.split.test_scores
        slug = Path(MODEL_FILES.get(name, name)).stem
        _csv(model.head.history, out / f"history_{slug}.csv")
        info = dict(metadata, model=name, cutoff=model.split.cutoff, **head_record(model.head, study),
                    clinical=None if model.clinical is None else model.clinical.to_dict())
        save_head(out / MODEL_FILES.get(name, f"{slug}.pt"), model.head.network, info)
        if model.shapley is not None:
            shapley = model.shapley.copy()
            shapley.index.name = "patient_id"
            _csv(shapley, out / "shapley.csv", index=True)
    _csv(scores, out / "test_scores.csv")
    if study.trials is not None:
        _csv(study.trials, out / "trials.csv")
    loss_curves(study, out / "loss_curves.png")
    if backbone is not None:
        config = VolumeConfig.from_dict(metadata["volume"])
        card = {name: dict(head_record(model.head, study), file=MODEL_FILES.get(name, name),
                           **model_card(backbone, model.head.network.to(device), config,
                                        0 if model.clinical is None else len(model.clinical.columns), device))
                for name, model in study.models.items()}
        top = {key: metadata[key] for key in ("positive_class", "weights_record", "training_data") if key in metadata}
        if "weights_record" in top:
            top["weights"] = top.pop("weights_record")
        write_text(out / "model_card.json", json.dumps({"models": card, **top, "settings": metadata}, indent=2) + "\n")
    if study.failures:
        _csv(pd.DataFrame(sorted(study.failures.items()), columns=["patient_id", "problem"]), out / "failures.csv")
    return out


def predict_patients(model_path: str | os.PathLike, cohort, patient_ids=None, weights_folder=None,
                     device: str = "cpu", cache: str | os.PathLike | None = None, execution=None,
                     progress=None, should_cancel=None) -> "pd.DataFrame":
    """Probability of the positive class for each patient (and the label at the model's cut-off).

    The features are computed with the volume settings and backbone weights the model was
    trained with; a patient that cannot be read gets its problem in the ``status`` column. ``execution``: where
    the patients' features are computed (see :func:`.features.cohort_features`); ``attrs["execution"]`` says where.
    """
    import pandas as pd

    from .features import cohort_features

    network, info = load_head(model_path, device)
    config = VolumeConfig.from_dict(info["volume"])
    ids = list(cohort.patient_ids if patient_ids is None else patient_ids)
    features = cohort_features(cohort, config, ids, weights=backbone_weights(info["weights"]),
                               weights_folder=weights_folder, cache=cache, device=device,
                               seed=info.get("seed", 0), depth_stride=info.get("depth_stride", "same"),
                               execution=execution, progress=progress, should_cancel=should_cancel)
    image, rows = features.of(ids)
    clinical = None
    if info.get("clinical"):
        encoding = ClinicalEncoding(**info["clinical"])
        clinical = encoding.encode(cohort.clinical().reindex(rows)).to_numpy()
    probability = predict_proba(network, image, clinical, device) if len(rows) else np.zeros(0)
    table = pd.DataFrame({"patient_id": rows, "probability": probability, "positive_class": positive_class_of(info),
                          "predicted": (probability >= info["cutoff"]).astype(int), "status": "ok"})
    failed = pd.DataFrame({"patient_id": list(features.failures), "status": list(features.failures.values())})
    table = pd.concat([table, failed], ignore_index=True) if len(failed) else table
    table.attrs["model"] = info  # the model file's metadata, for the caller's provenance
    table.attrs["execution"] = features.execution
    return table


def positive_class_of(info: dict) -> str:
    """What the model's probability is of ("response = 0"), also for files written before it was recorded."""
    from .workflow import positive_class

    return info.get("positive_class") or positive_class(info.get("outcome", "outcome"), info.get("positive", 1))


def backbone_weights(text: str):
    """The ``weights`` argument of the backbone from its CLI/metadata spelling: imagenet, random or a file."""
    return None if text == "random" else text


def predict_images(model_path: str | os.PathLike, images, mask, clinical: dict | None = None,
                   weights_folder=None, device: str = "cpu") -> dict:
    """One patient from images in memory (e.g. the Slicer scene's volumes): probability and label.

    ``images``: SimpleITK images by sequence name (the model's sequences); ``mask``: the tumour
    mask; ``clinical``: {factor: value} for a model with clinical factors (missing factors are
    'unknown' / the training median).
    """
    import pandas as pd

    from ...errors import InputError
    from .backbone import i3d_resnet50
    from .features import extract
    from .preprocess import volume_input

    network, info = load_head(model_path, device)
    config = VolumeConfig.from_dict(info["volume"])
    volume = volume_input(images, mask, config)
    backbone = i3d_resnet50(backbone_weights(info["weights"]), weights_folder, info.get("seed", 0),
                            info.get("depth_stride", "same")).to(device)
    features = extract(backbone, volume, device)[None]
    encoded = None
    if info.get("clinical"):
        encoding = ClinicalEncoding(**info["clinical"])
        if clinical is None:
            raise InputError(f"this model needs the clinical factors {', '.join(encoding.factors)}")
        row = pd.DataFrame([{f: clinical.get(f) for f in encoding.factors}], index=["patient"])
        encoded = encoding.encode(row.infer_objects()).to_numpy()
    probability = float(predict_proba(network, features, encoded, device)[0])
    return {"probability": probability, "predicted": int(probability >= info["cutoff"]), "cutoff": info["cutoff"],
            "outcome": info.get("outcome"), "positive": info.get("positive"), "positive_class": positive_class_of(info),
            "model": info.get("model")}
