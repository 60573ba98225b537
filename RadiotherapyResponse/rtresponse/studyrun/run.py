"""``rtresponse study run``: every step of a study file, each cached by its inputs and settings, then the report.

Steps, in order (each a folder of ``DIR/cache``, see :mod:`.steps`):

``cohort``      the synthetic sample cohort written once (``cohort.synthetic``), or the manifest and the files it
                names fingerprinted (path, size, modification time), so a changed image recomputes what reads it;
``labels``      each label (Tanaka et al.'s regression rule) with per-patient exclusions;
``features``    each feature set (handcrafted, deep2d per model x mask); a patient whose images fail keeps a row
                saying why and the others complete; clinical sets are read from the manifest in the analyses;
``analysis``    each analysis (bootstrap grid or split protocol) on the sets it names.

Then, on every run, the report (``report.html``, ``figures/``, ``tables/``) and the scene (``study.mrb``),
and ``run.json``: each step's key and whether it was computed, reused, failed or skipped this time.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import InputError
from .schema import TRAINED_PROTOCOLS, analysis_sets, expand_features
from .steps import COMPUTED, FAILED, NOT_SUPPORTED, REUSED, SKIPPED, Step, StepCache

MARKER = ".rtresponse-study.json"
RUN_RECORD = "run.json"
REPORT_KEY = ".report-key"
RUN_PROTOCOLS = ("bootstrap", "split")


@dataclass
class StudyRun:
    out: Path
    study: dict
    steps: list[Step] = field(default_factory=list)
    report: Path | None = None
    scene: Path | None = None
    seconds: float = 0.0

    def count(self, status: str, kind: str | None = None) -> int:
        return sum(1 for s in self.steps if s.status == status and (kind is None or s.kind == kind))

    @property
    def computed(self) -> list[str]:
        return [f"{s.kind}/{s.name}" for s in self.steps if s.status == COMPUTED]


def prepare_folder(out: Path, study: dict) -> None:
    """``out`` is new, empty, or a study folder rtresponse wrote (re-running resumes there); never anything else."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("--out is a file; give a folder", path=str(out))
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise InputError("--out holds files that are not an rtresponse study folder; choose a new or empty folder",
                         path=str(out))
    out.mkdir(parents=True, exist_ok=True)
    import shutil

    for item in out.iterdir():  # staging folders of a report an interrupted run was writing
        if item.name.startswith(".") and item.is_dir():
            shutil.rmtree(item, ignore_errors=True)
    if not os.access(out, os.W_OK | os.X_OK):
        raise InputError("no permission to write in the folder", path=str(out))
    from ..atomic import write_text

    write_text(out / MARKER, json.dumps({"study": study["name"], "format": 1}) + "\n")


def _resolved_weights(entry: dict) -> str:
    """'auto' decided now (imagenet when this computer has the weights, else random), so the cache key says which."""
    if entry["weights"] != "auto":
        return entry["weights"]
    from ..features.deep2d import find_weights

    return "imagenet" if find_weights(entry["model"]) is not None else "random"


def run_study(study: dict, out: str | os.PathLike, progress_factory: Callable[[str], Callable] | None = None,
              log: Callable[[str], None] = print, study_file: str | None = None) -> StudyRun:
    """Run (or resume) ``study`` (from :func:`~.schema.load_study`) in ``out``; returns what each step did.

    The cohort-scale work (labels, features, Grad-CAM maps, the analyses' grid cells or folds) runs where
    ``execution.scheduler`` says (``RTRESPONSE_SCHEDULER`` when it is null), with ``execution.workers`` local
    processes otherwise; the numbers, and so the cached steps, are the same wherever it runs."""
    from ..execution import Execution, default_scheduler

    scheduler = study["execution"].get("scheduler")
    with Execution(default_scheduler() if scheduler is None else scheduler,
                   workers=study["execution"]["workers"]) as where:
        return _run_study(study, out, progress_factory, log, study_file, where)


def _run_study(study: dict, out, progress_factory, log, study_file, where) -> StudyRun:
    import pandas as pd

    from ..cohort import file_fingerprint, load_manifest
    from ..provenance import sha256_file

    start = time.monotonic()
    out = Path(out)
    prepare_folder(out, study)
    cache = StepCache(out / "cache", log)
    seed = study["seed"]

    def bar(stage: str):
        return progress_factory(stage) if progress_factory else None

    def closing(callback):
        if callback is not None and hasattr(callback, "close"):
            callback.close()

    # cohort
    source = study["cohort"]
    if source["synthetic"] is not None:
        def make_cohort(folder: Path) -> dict:
            from ..sampledata.synthetic import write_cohort

            callback = bar("writing synthetic patients")
            try:
                write_cohort(folder / "cohort", n_patients=source["synthetic"]["patients"],
                             seed=source["synthetic"]["seed"], signal=source["synthetic"]["signal"], progress=callback)
            finally:
                closing(callback)
            return {"patients": source["synthetic"]["patients"], "source": "synthetic"}

        cohort_step = cache.run("cohort", "synthetic", source["synthetic"], {}, make_cohort)
        if not cohort_step.ok:
            raise InputError(f"the synthetic cohort could not be written: {cohort_step.message}")
        manifest = cohort_step.path / "cohort" / "manifest.csv"
    else:
        manifest = Path(source["manifest"])
        if not manifest.is_file():
            raise InputError("cohort.manifest: no such file", path=str(manifest))
        probe = load_manifest(manifest, check_files=False)
        files = [probe.resolve(cell) for column in probe.table.columns if column.startswith(("image_", "mask_"))
                 for cell in probe.table[column] if cell]
        fingerprint = {"manifest_sha256": sha256_file(manifest), "files": file_fingerprint(files, manifest.parent)}

        def read_cohort(folder: Path) -> dict:
            return {"patients": len(probe), "source": str(manifest)}

        cohort_step = cache.run("cohort", "manifest", fingerprint, {}, read_cohort)
    cohort = load_manifest(manifest, check_files=False)
    outcome_columns = cohort.outcomes()

    # labels
    label_steps: dict[str, Step] = {}
    for label in study["labels"]:
        def make_labels(folder: Path, label=label) -> dict:
            from ..labels import label_cohort

            table = label_cohort(cohort, initial=label["initial"], boost=label["boost"], days=label["days"],
                                 threshold=label["threshold"], min_volume_cc=label["min_volume_cc"],
                                 image=label["image"], execution=where)
            table.to_csv(folder / "labels.csv")
            return {"threshold": table.attrs["threshold"], "included": int((table["status"] == "ok").sum()),
                    "excluded": int((table["status"] != "ok").sum())}

        settings = {k: v for k, v in label.items() if k != "name"}
        label_steps[label["name"]] = cache.run("labels", label["name"], settings, {"cohort": cohort_step.key},
                                               make_labels)

    # features
    feature_steps: dict[str, Step] = {}
    clinical_sets: dict[str, list] = {}
    device = study["execution"]["device"]
    for entry in expand_features(study["features"]):
        name = entry["name"]
        if entry["kind"] == "clinical":
            factors = entry["factors"]
            known = list(cohort.clinical().columns)
            factors = known if factors == "all" else ([factors] if isinstance(factors, str) else list(factors))
            unknown = [f for f in factors if f not in known]
            if unknown:
                raise InputError(f"features '{name}'.factors: no clinical factor(s) {', '.join(unknown)} in the "
                                 f"manifest (it has {', '.join(known) or 'none'})")
            clinical_sets[name] = factors
            continue
        settings = {k: v for k, v in entry.items() if k not in ("name", "base")}
        if entry["kind"] == "deep2d":
            settings["weights"] = _resolved_weights(entry)
            settings["seed"] = seed
            if Path(settings["weights"]).is_file():  # a weights file: a new file is a new key
                settings["weights_file"] = file_fingerprint([settings["weights"]])
        elif Path(str(entry["preset"])).is_file():  # a parameter file: its content is part of the key
            settings["preset_sha256"] = sha256_file(entry["preset"])

        def make_features(folder: Path, entry=entry, settings=settings) -> dict:
            callback = bar(f"features {entry['name']}")
            try:
                if entry["kind"] == "handcrafted":
                    from ..features.handcrafted import extract_cohort

                    table = extract_cohort(cohort, image=entry["image"], mask=entry["mask"],
                                           settings=entry["preset"], execution=where, progress=callback)
                else:
                    from ..features.deep2d import extract_cohort

                    weights = settings["weights"]
                    table = extract_cohort(cohort, image=entry["image"], mask=entry["mask"], model=entry["model"],
                                           weights=None if weights == "random" else weights, device=device,
                                           size_mm=entry["size_mm"], level=entry["level"], width=entry["width"],
                                           context=entry["context"], top_k=entry["top_k"], seed=seed,
                                           execution=where, progress=callback)
            finally:
                closing(callback)
            table.to_csv(folder / "features.csv")
            from ..provenance import write

            write(folder / "features.csv.json", table.attrs.get("provenance") or {})
            failed = table[table["status"] != "ok"]
            summary = {"patients": int(len(table)), "failed": int(len(failed)),
                       "features": int(len([c for c in table.columns if c not in ("status", "weights")]))}
            if "weights" in table.columns:
                summary["weights"] = str(table["weights"].iloc[0])
            return summary

        feature_steps[name] = cache.run("features", name, settings, {"cohort": cohort_step.key}, make_features)
        if entry["kind"] == "deep2d" and feature_steps[name].ok and study["report"]["gradcam_patients"]:
            _gradcam_step(cache, entry, settings, feature_steps[name], cohort, study["report"]["gradcam_patients"],
                          device, where)

    # analyses
    for analysis in study["analyses"]:
        name = analysis["name"]
        if analysis["protocol"] in TRAINED_PROTOCOLS:
            _trained_analysis(cache, analysis, cohort, cohort_step, feature_steps, seed, device, bar, closing)
            continue
        if analysis["protocol"] not in RUN_PROTOCOLS:
            cache.note("analysis", name, NOT_SUPPORTED, f"protocol '{analysis['protocol']}' is not run by `study run`")
            continue
        names = analysis_sets(study, analysis)
        outcome_name = analysis["outcome"]
        inputs: dict = {"cohort": cohort_step.key}
        if outcome_name in label_steps:
            inputs["labels"] = label_steps[outcome_name].key
        elif outcome_name not in outcome_columns.columns:
            cache.note("analysis", name, FAILED, f"outcome '{outcome_name}' is neither a label nor a manifest "
                       f"outcome (outcomes: {', '.join(outcome_columns.columns) or 'none'})")
            continue
        failed = [n for n in names if n in feature_steps and not feature_steps[n].ok]
        if outcome_name in label_steps and not label_steps[outcome_name].ok:
            failed.append(f"labels {outcome_name}")
        if failed:
            cache.note("analysis", name, SKIPPED, f"needs {', '.join(failed)}, which failed")
            continue
        inputs.update({n: feature_steps[n].key for n in names if n in feature_steps})
        settings = {k: v for k, v in analysis.items() if k not in ("name", "seed")}
        settings.update(seed=analysis["seed"] if analysis["seed"] is not None else seed, sets=names,
                        clinical={n: clinical_sets[n] for n in names if n in clinical_sets})

        def make_analysis(folder: Path, analysis=analysis, names=names, settings=settings) -> dict:
            from ..models.tables import encode_clinical
            from .analysis import run_analysis

            tables = {}
            for n in names:
                if n in clinical_sets:
                    frame = encode_clinical(cohort.clinical(), clinical_sets[n])
                    tables[n] = frame.assign(status="ok")
                else:
                    tables[n] = pd.read_csv(feature_steps[n].path / "features.csv", index_col="patient_id",
                                            dtype={"patient_id": str})
            if analysis["outcome"] in label_steps:  # read as `evaluate --labels` reads a labels file
                from ..labels import read_labels

                labels = read_labels(label_steps[analysis["outcome"]].path / "labels.csv")
                outcome = labels["regression"].rename(analysis["outcome"])
            else:
                outcome = outcome_columns[analysis["outcome"]]
            callback = bar(f"analysis {analysis['name']}")
            try:
                return run_analysis(analysis, tables, outcome, analysis["outcome"], settings["seed"], where,
                                    folder, callback)
            finally:
                closing(callback)

        cache.run("analysis", name, settings, inputs, make_analysis)

    result = StudyRun(out=out, study=study, steps=cache.steps)
    from .report import write_report

    key = _report_key(result)
    if _report_current(out, key):  # nothing the report shows changed: keep it (and the scene) as they are
        log(f"report: unchanged ({out / 'report.html'})")
        result.report = out / "report.html"
        result.scene = out / "study.mrb" if (out / "study.mrb").is_file() else None
    else:
        (out / REPORT_KEY).unlink(missing_ok=True)
        result.report = write_report(result, cohort, label_steps, feature_steps, clinical_sets, study_file=study_file,
                                     log=log)
        if study["report"]["scene"]:
            result.scene = _write_scene(result, cohort, label_steps, log)
        else:
            (out / "study.mrb").unlink(missing_ok=True)
        from ..atomic import write_text

        write_text(out / REPORT_KEY, key + "\n")
    result.seconds = round(time.monotonic() - start, 3)
    _write_run_record(result)
    return result


def _gradcam_step(cache: StepCache, entry: dict, settings: dict, features: Step, cohort, n: int, device: str,
                  where=None) -> Step:
    """Grad-CAM maps of a deep2d feature set's network on the max-area slice of its first ``n`` patients
    (:func:`rtresponse.features.deep2d.gradcam_cohort`, as `rtresponse gradcam`): ``gradcam.npz`` (pixels_i,
    heat_i) and ``gradcam.csv`` (patient_id, status), for the report's examples."""
    import pandas as pd

    def compute(folder: Path) -> dict:
        import numpy as np

        from ..features.deep2d import gradcam_cohort

        table = pd.read_csv(features.path / "features.csv", usecols=["patient_id", "status"], dtype=str)
        patients = list(table.loc[table["status"] == "ok", "patient_id"][:n])
        arrays, rows = {}, []

        def keep(pid, image, crop, heat):
            arrays[f"pixels_{len(arrays) // 2}"] = np.asarray(crop.pixels, dtype=np.float32)
            arrays[f"heat_{len(arrays) // 2}"] = np.asarray(heat, dtype=np.float32)

        weights = settings["weights"]
        for pid, _, status in gradcam_cohort(cohort, image=entry["image"], mask=entry["mask"], model=entry["model"],
                                             weights=None if weights == "random" else weights, device=device,
                                             size_mm=entry["size_mm"], level=entry["level"], width=entry["width"],
                                             context=entry["context"], seed=settings["seed"], patients=patients,
                                             on_map=keep, execution=where):
            rows.append({"patient_id": pid, "status": status})
        np.savez_compressed(folder / "gradcam.npz", **arrays)
        ok = [r["patient_id"] for r in rows if r["status"] == "ok"]
        pd.DataFrame(rows, columns=["patient_id", "status"]).to_csv(folder / "gradcam.csv", index=False)
        return {"patients": ok, "weights": settings["weights"], "model": entry["model"], "image": entry["image"]}

    return cache.run("gradcam", entry["name"], {"patients": n}, {"features": features.key}, compute)


def _trained_analysis(cache: StepCache, analysis: dict, cohort, cohort_step: Step, feature_steps: dict, seed: int,
                      device: str, bar, closing) -> Step:
    """An i3d, residual or recurrence analysis (:mod:`.methods`): keyed by its settings (weights 'auto' resolved),
    its seed, the device, the cohort and the handcrafted feature step it compares with (i3d)."""
    from ..settings import resolve_device
    from . import methods

    device = resolve_device(device)
    protocol, name = analysis["protocol"], analysis["name"]
    settings = {k: v for k, v in analysis.items() if k not in ("name", "seed", "feature_sets", "combine", "selectors",
                                                               "classifiers", "k", "n_bootstrap", "forward",
                                                               "cv_folds", "cv_folds_roc")}
    own = dict(settings[protocol])
    network = {"i3d": "resnet50", "residual": own.get("network")}.get(protocol)
    if "weights" in own:
        own["weights"] = methods.resolved_weights(own["weights"], network)
        if Path(own["weights"]).is_file():
            from ..cohort import file_fingerprint

            own["weights_file"] = file_fingerprint([own["weights"]])
    settings[protocol] = own
    settings.update(seed=analysis["seed"] if analysis["seed"] is not None else seed, device=device)
    inputs: dict = {"cohort": cohort_step.key}
    handcrafted = own.get("handcrafted")
    if handcrafted is not None:
        step = feature_steps.get(handcrafted)
        if step is None or not step.ok:
            return cache.note("analysis", name, SKIPPED, f"needs features {handcrafted}, which failed")
        inputs[handcrafted] = step.key

    def compute(folder: Path) -> dict:
        callback = bar(f"analysis {name} ({protocol}, epochs)")
        try:
            if protocol == "i3d":
                return methods.run_i3d(analysis, cohort, folder, settings["seed"], device,
                                       None if handcrafted is None else feature_steps[handcrafted].path
                                       / "features.csv", callback)
            run = methods.run_residual if protocol == "residual" else methods.run_recurrence
            return run(analysis, cohort, folder, settings["seed"], device, callback)
        finally:
            closing(callback)

    return cache.run("analysis", name, settings, inputs, compute)


def _report_key(result: StudyRun) -> str:
    """What the report and the scene show: the study's settings, every step's key and outcome, the packages."""
    from ..provenance import package_versions
    from .steps import step_key

    steps = [(s.kind, s.name, s.key, s.status if s.status != REUSED else COMPUTED, s.message) for s in result.steps]
    return step_key("report", result.study, {"steps": steps, "packages": package_versions()})


def _report_current(out: Path, key: str) -> bool:
    marker = out / REPORT_KEY
    return (marker.is_file() and marker.read_text(encoding="utf-8").strip() == key
            and (out / "report.html").is_file())


def _write_scene(result: StudyRun, cohort, label_steps, log) -> Path | None:
    import importlib.util

    if importlib.util.find_spec("slicer") is None or importlib.util.find_spec("vtk") is None:
        log("scene: skipped (needs slicer-core outside Slicer: pip install 'rtresponse[mrml]')")
        return None
    from .scene import write_scene

    try:
        return write_scene(result, cohort)
    except InputError as error:
        log(f"scene: FAILED: {error}")
        return None


def _write_run_record(result: StudyRun) -> None:
    from ..atomic import write_text

    record = {"study": result.study["name"], "seconds": result.seconds,
              "counts": {status: result.count(status) for status in (COMPUTED, REUSED, FAILED, SKIPPED,
                                                                      NOT_SUPPORTED)},
              "steps": [step.record() for step in result.steps],
              "report": str(result.report) if result.report else None,
              "scene": str(result.scene) if result.scene else None}
    write_text(result.out / RUN_RECORD, json.dumps(record, indent=1, default=str) + "\n")
