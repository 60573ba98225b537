"""The whole DLR training run on a cohort, shared by ``rtresponse i3d train`` and the Response Model (I3D) module.

Checks the manifest against the request (images, mask, clinical factors, outcome) before any
work, computes or reuses the cached features, runs the study and writes the output folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from ...errors import InputError
from .preprocess import VolumeConfig
from .training import HeadConfig


def outcome_labels(cohort, name: str, positive=None):
    """(0/1 outcome by patient_id, the positive value) of manifest outcome ``name``; ``positive`` typed as text (None/"": 1)."""
    from ..study import parse_positive

    outcomes = cohort.outcomes()
    if name not in outcomes.columns:
        raise InputError(f"no outcome '{name}' in the manifest (outcome_ columns: "
                         f"{', '.join(outcomes.columns) or 'none'})", path=str(cohort.path))
    values = outcomes[name].dropna()
    chosen = parse_positive(positive, values) if str(positive or "").strip() else (1 if 1 in set(values) else None)
    known = ", ".join(sorted(str(v) for v in set(values)))
    if chosen is None:
        raise InputError(f"name the positive class of outcome '{name}' (its values: {known})")
    if chosen not in set(values):
        raise InputError(f"outcome '{name}' has no value {chosen} (its values: {known})")
    chosen = chosen.item() if hasattr(chosen, "item") else chosen
    return (values == chosen).astype(int), chosen


def positive_class(outcome: str, positive) -> str:
    """What a probability is of: ``"response = 0"``."""
    return f"{outcome} = {positive}"


def weights_provenance(weights: str, seed: int = 0, weights_folder=None) -> dict:
    """:func:`rtresponse.provenance.weights_record` of the backbone: the ImageNet or given file with its SHA-256,
    or "random" with its seed."""
    from ...features.deep2d.weights import require_weights
    from ...provenance import weights_record

    if weights == "random":
        return weights_record(None, seed)
    if weights == "imagenet":
        return weights_record(require_weights("resnet50", weights_folder), name="resnet50 ImageNet (inflated)")
    return weights_record(weights)


def training_data(study, labels) -> dict:
    """The fingerprint of what the heads learnt from: training and validation patients, their outcome and part."""
    import pandas as pd

    from ...provenance import table_hash

    ids = list(study.train_ids) + list(study.validation_ids)
    table = pd.DataFrame({"outcome": labels[ids].astype(int).to_numpy(),
                          "split": ["train"] * len(study.train_ids) + ["validation"] * len(study.validation_ids)},
                         index=pd.Index(ids, name="patient_id"))
    return {"sha256": table_hash(table), "patients": len(study.train_ids),
            "validation_patients": len(study.validation_ids),
            "what": "patient_id, 0/1 outcome and split of the training and validation patients (split.csv)"}


def clinical_table(cohort, factors: Sequence[str] | None):
    """The clinical factors to choose from (None/empty: every clin_ column), checked against the manifest."""
    names = [f[len("clin_"):] if f.startswith("clin_") else f for f in (factors or [])] or list(cohort.clinical_names)
    unknown = [f for f in names if f not in cohort.clinical_names]
    if unknown:
        raise InputError(f"no clinical factor {', '.join(unknown)} in the manifest (clin_ columns: "
                         f"{', '.join(cohort.clinical_names) or 'none'})", path=str(cohort.path))
    return cohort.clinical()[names] if names else None


def check_images(cohort, config: VolumeConfig) -> None:
    missing = [s for s in config.sequences if s not in cohort.image_names]
    if missing:
        raise InputError(f"no image {', '.join(missing)} in the manifest (images: "
                         f"{', '.join(cohort.image_names) or 'none'})", path=str(cohort.path))
    if config.mask not in cohort.mask_names:
        raise InputError(f"no mask '{config.mask}' in the manifest (masks: {', '.join(cohort.mask_names) or 'none'})",
                         path=str(cohort.path))


def train_cohort(cohort, outcome: str, out: str | os.PathLike, config: VolumeConfig = VolumeConfig(), positive=None,
                 clinical_factors: Sequence[str] | None = None, image_only: bool = False, weights: str = "imagenet",
                 weights_folder=None, head: HeadConfig = HeadConfig(), trials: int = 0, sampler: str = "random",
                 n_factors: int = 3, test_size: float = 1 / 3, validation_size: float = 0.2, augment_copies: int = 0,
                 seed: int = 0, device: str = "cpu", amp: bool = False,
                 progress: Callable[[str, int, int], None] | None = None,
                 should_cancel: Callable[[], bool] | None = None, on_epoch: Callable[[dict], None] | None = None,
                 execution=None):
    """Features (cached in ``out``/i3d_features.npz), study, output files; returns ``(study, positive, metadata)``.

    ``weights``: "imagenet", "random" (testing only) or a weights file, recorded as given in the
    model files. ``progress(stage, done, total)``: stage "features", "tuning", a model's name or
    "writing"; ``on_epoch(row)``: each training epoch of the models (see :func:`.study.run_study`).
    Cancelling raises :class:`.features.Cancelled` before any model file is written. ``execution``: where the
    features are computed (see :func:`.features.cohort_features`; the heads are trained here); the metadata's
    ``execution`` says where they were (added after the files are written: they are the same wherever).
    """
    from .backbone import i3d_resnet50
    from .features import Cancelled, cohort_features
    from .outputs import backbone_weights, write_study
    from .study import run_study

    check_images(cohort, config)
    clinical = None if image_only else clinical_table(cohort, clinical_factors)
    labels, positive = outcome_labels(cohort, outcome, positive)
    if weights not in ("imagenet", "random") and not Path(weights).is_file():
        raise InputError("backbone weights file not found", path=str(weights))
    report = progress or (lambda stage, done, total: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    backbone = backbone_weights(weights)
    features = cohort_features(cohort, config, list(labels.index), weights=backbone, weights_folder=weights_folder,
                               cache=out / "i3d_features.npz", augment_copies=augment_copies, device=device, amp=amp,
                               seed=seed, progress=lambda done, total: report("features", done, total),
                               should_cancel=should_cancel, execution=execution)
    study = run_study(features, labels, clinical, n_factors=n_factors, test_size=test_size,
                      validation_size=validation_size, head=head, tune_trials=trials, sampler=sampler, seed=seed,
                      device=device, progress=report, should_cancel=should_cancel, on_epoch=on_epoch)
    if should_cancel is not None and should_cancel():
        raise Cancelled("cancelled before the model files were written")
    report("writing", 0, 1)
    # the head actually trained (tuned or given) goes into each model file and the card (write_study)
    metadata = {"volume": config.to_dict(), "weights": weights, "seed": seed, "depth_stride": "same",
                "outcome": outcome, "positive": str(positive), "positive_class": positive_class(outcome, positive),
                "weights_record": weights_provenance(weights, seed, weights_folder),
                "training_data": training_data(study, labels),
                "tuning": {"trials": trials, "sampler": sampler} if trials else None}
    network = i3d_resnet50(backbone, weights_folder, seed).to(device)  # for the model card
    write_study(study, out, metadata, backbone=network, device=device)
    metadata["execution"] = features.execution
    report("writing", 1, 1)
    return study, positive, metadata
