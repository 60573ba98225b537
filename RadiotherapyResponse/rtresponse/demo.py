"""``rtresponse demo``: the synthetic sample cohort, a Slicer scene built from it, and a summary.

Later analyses (features, models, recommendations, recurrence volumes) add their results to
the same scene; this module is where they are chained for the demo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import write_text


@dataclass
class DemoResult:
    out_dir: Path
    manifest: Path
    scene: Path
    summary: Path
    nodes: dict[str, list[str]] = field(default_factory=dict)


def run(out_dir: str | os.PathLike, n_patients: int = 24, seed: int = 0, progress=None,
        analyses: bool = True) -> DemoResult:
    """Write ``out_dir/cohort`` (synthetic), ``out_dir/scene.mrb`` and ``out_dir/summary.md``.

    The scene holds the first patient's images as volumes and contours as a segmentation,
    and the whole cohort's clinical factors and outcomes as one table. With ``analyses`` (and
    PyRadiomics / scikit-learn installed) it also extracts handcrafted CT features of the GTVp
    and runs a small selector x classifier grid for the response outcome, adding the feature
    table, the grid results and an ROC curve to the scene.
    """
    import pandas as pd

    from . import mrml
    from .cohort import load_manifest
    from .sampledata.synthetic import write_cohort

    out = Path(out_dir)
    manifest = write_cohort(out / "cohort", n_patients=n_patients, seed=seed, progress=progress)
    cohort = load_manifest(manifest)
    scene = mrml.new_scene()
    first = cohort.patient_ids[0]
    loaded = mrml.load_patient(cohort, first, scene)
    table = pd.concat([cohort.clinical().add_prefix("clin_"), cohort.outcomes().add_prefix("outcome_")], axis=1)
    mrml.dataframe_to_table_node(table, "cohort clinical", scene)
    analysis_lines = _analyses(cohort, scene, out) if analyses else []
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


def _analyses(cohort, scene, out: Path) -> list[str]:
    """Handcrafted features and a small modelling grid; skipped (and said so) without their packages."""
    import importlib.util

    from . import mrml

    missing = [m for m in ("radiomics", "sklearn", "skops") if importlib.util.find_spec(m) is None]
    if missing:
        return [f"- analyses skipped: install {', '.join(missing)} (pip install 'rtresponse[radiomics,modelling]')"]
    from .features.handcrafted import extract_cohort
    from .models.evaluate import evaluate, write_outputs
    from .models.tables import read_feature_table

    features = extract_cohort(cohort, image="CT", mask="GTVp", settings="pyradiomics-default", n_jobs=2)
    mrml.dataframe_to_table_node(features, "GTVp handcrafted features", scene)
    evaluation = evaluate({"handcrafted": read_feature_table(features)}, cohort.outcomes()["response"],
                          protocol="bootstrap", selectors=("wilcoxon", "relieff"), classifiers=("lda", "nb", "lr"),
                          k=5, n_bootstrap=100, forward=False, random_state=0)
    write_outputs(evaluation, out / "model", "response", 1)
    mrml.dataframe_to_table_node(evaluation.results, "response model grid", scene)
    mrml.plot_xy(evaluation.roc, "response ROC", scene, x_title="1 - specificity", y_title="sensitivity")
    best = evaluation.best
    failed = int((features["status"] != "ok").sum())
    return [f"- handcrafted features: {features.shape[1] - 1} PyRadiomics features of the GTVp on CT "
            f"({failed} patient(s) failed)",
            f"- response model grid (0.632+ bootstrap AUC, 100 draws): best {best['selector']} + {best['classifier']} "
            f"{best['auc632plus']:.2f}; results, heat map, ROC and model.skops in `model/`"]
