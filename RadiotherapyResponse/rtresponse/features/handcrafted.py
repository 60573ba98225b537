"""Handcrafted radiomics with PyRadiomics: one segment, a set of segments, or a whole cohort.

PyRadiomics does the computing; this module resolves settings (a preset name, a parameter
file, or a dict shaped like one), feeds it images and masks exactly as the MRML bridge or the
cohort reads them, and isolates per-patient failures in cohort runs.

Presets are PyRadiomics YAML parameter files in ``Resources/Presets`` (``ct-tanaka``,
``mr-jeong``, ``pyradiomics-default``).

Tables carry how they were made in ``frame.attrs["provenance"]`` (:func:`rtresponse.provenance.record`):
the PyRadiomics settings actually used (PyRadiomics' defaults filled in) and where they came from (preset
or parameter file with its SHA-256), and what PyRadiomics' ``diagnostics_*`` entries say (its versions,
and per patient the SHA-1 of the image and mask arrays and the mask's voxel count), which the feature
columns leave out.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence, Union

from ..errors import Cancelled, InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import SimpleITK as sitk

    from ..cohort import Cohort

Settings = Union[str, os.PathLike, Mapping]
PARAMETER_SECTIONS = ("setting", "imageType", "featureClass", "voxelSetting")
STATUS = "status"  # cohort tables: "ok" or why the patient failed
DIAGNOSTICS = "__diagnostics__"  # per-row PyRadiomics diagnostics, moved into the provenance record


def presets_folder() -> Path:
    """``Resources/Presets`` beside the library (the same layout in the repository and in Slicer)."""
    return Path(__file__).resolve().parents[2] / "Resources" / "Presets"


def list_presets() -> list[str]:
    return sorted(p.stem for p in presets_folder().glob("*.yaml"))


def load_settings(settings: Settings = "pyradiomics-default") -> dict:
    """A PyRadiomics parameter dict from a preset name, a YAML/JSON parameter file, or a dict.

    The result is a new dict (the caller's is never modified) with only the sections
    PyRadiomics knows: ``setting``, ``imageType``, ``featureClass`` (and ``voxelSetting``).
    """
    import yaml

    if isinstance(settings, Mapping):
        params = copy.deepcopy(dict(settings))
        source = "settings dict"
    else:
        text = str(settings)
        path = Path(text)
        if text in list_presets():
            path = presets_folder() / f"{text}.yaml"
        elif not path.is_file():
            raise InputError(f"'{text}' is neither a preset ({', '.join(list_presets())}) nor a parameter file")
        source = str(path)
        try:
            content = path.read_text(encoding="utf-8")
            loaded = json.loads(content) if path.suffix.lower() == ".json" else yaml.safe_load(content)
        except (yaml.YAMLError, json.JSONDecodeError) as error:
            raise InputError(f"not a valid parameter file ({str(error).splitlines()[0]})", path=source) from None
        params = loaded or {}
    if not isinstance(params, dict):
        raise InputError("a parameter file must hold a mapping with setting / imageType / featureClass", path=source)
    unknown = sorted(set(params) - set(PARAMETER_SECTIONS))
    if unknown:
        raise InputError(f"unknown section(s) {', '.join(unknown)} (expected {', '.join(PARAMETER_SECTIONS)})",
                         path=source)
    params.setdefault("imageType", {"Original": {}})
    params["setting"] = dict(params.get("setting") or {})
    return params


def _extractor(params: dict):
    from radiomics import featureextractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)  # PyRadiomics logs every step at INFO
    params = copy.deepcopy(params)
    params["setting"]["label"] = 1  # masks reach PyRadiomics as 0/1
    try:
        return featureextractor.RadiomicsFeatureExtractor(params)
    except Exception as error:  # pykwalify schema errors and the like
        raise InputError(f"PyRadiomics rejected the settings ({str(error).splitlines()[0][:300]})") from None


def settings_record(settings: Settings = "pyradiomics-default") -> dict:
    """The PyRadiomics settings actually used, for a provenance record.

    ``parameters``: setting (with PyRadiomics' defaults filled in and ``label`` 1, as the masks reach it),
    imageType and featureClass as the extractor enables them; ``preset`` (a preset's name), ``file`` and its
    ``sha256`` (a preset's or parameter file's), or ``source: "dict"``; the PyRadiomics version.
    """
    from .. import provenance

    params = load_settings(settings)
    extractor = _extractor(params)
    found: dict = {}
    if isinstance(settings, Mapping):
        found["source"] = "dict"
    else:
        text = str(settings)
        path = presets_folder() / f"{text}.yaml" if text in list_presets() else Path(text)
        if text in list_presets():
            found["preset"] = text
        found.update(file=str(path), sha256=provenance.sha256_file(path))
    found["parameters"] = {"setting": dict(extractor.settings), "imageType": dict(extractor.enabledImagetypes),
                           "featureClass": dict(extractor.enabledFeatures)}
    if params.get("voxelSetting"):
        found["parameters"]["voxelSetting"] = params["voxelSetting"]
    try:
        import radiomics

        found["version"] = str(radiomics.__version__)
    except (ImportError, AttributeError):  # pragma: no cover - PyRadiomics is a requirement
        pass
    return found


def _short_diagnostics(values: Mapping) -> dict:
    """What a provenance record keeps of PyRadiomics' ``diagnostics_*`` entries of one extraction."""
    keep = {"diagnostics_Image-original_Hash": "image_sha1", "diagnostics_Mask-original_Hash": "mask_sha1",
            "diagnostics_Mask-original_VoxelNum": "mask_voxels", "diagnostics_Image-original_Spacing": "spacing"}
    found = {short: values[name] for name, short in keep.items() if name in values}
    versions = {name[len("diagnostics_Versions_"):]: value for name, value in values.items()
                if name.startswith("diagnostics_Versions_")}
    if versions:
        found["versions"] = versions
    return found


def extract(image: "sitk.Image", mask: "sitk.Image", settings: Settings = "pyradiomics-default",
            diagnostics: bool = False) -> "pd.Series":
    """PyRadiomics features of ``mask`` (non-zero = inside) on ``image``, named as PyRadiomics names them.

    The mask must be on the image's grid. Values are floats; with ``diagnostics`` the
    ``diagnostics_*`` entries are kept (as PyRadiomics returns them).
    """
    import numpy as np
    import pandas as pd
    import SimpleITK as sitk

    from ..imageio import describe_geometry, same_geometry
    from ..inputs import binary_mask, finite_voxels, require_image

    params = load_settings(settings)
    image = finite_voxels(require_image(image, "image"))
    mask = binary_mask(mask)  # NaN, probability maps and several labels refused, not taken as "non-zero"
    if not same_geometry(image, mask):
        raise InputError(f"mask geometry ({describe_geometry(mask)}) does not match the image "
                         f"({describe_geometry(image)})")
    binary = sitk.Cast(sitk.NotEqual(mask, 0), sitk.sitkUInt8)
    binary.CopyInformation(image)
    if not sitk.GetArrayViewFromImage(binary).any():
        raise InputError("mask is empty")
    extractor = _extractor(params)
    try:
        result = extractor.execute(image, binary, label=1)
    except (ValueError, RuntimeError, IndexError) as error:
        raise InputError(f"PyRadiomics could not extract features ({str(error).splitlines()[0][:300]})") from None
    values = {}
    for name, value in result.items():
        if name.startswith("diagnostics_"):
            if diagnostics:
                values[name] = value
            continue
        values[name] = float(np.asarray(value))
    return pd.Series(values, name="features", dtype=float if not diagnostics else object)


def extract_from_nodes(volume_node, segmentation_node, segment_id: str, settings: Settings = "pyradiomics-default",
                       diagnostics: bool = False) -> "pd.Series":
    """Features of one segment on a volume node: the segment is exported on the volume's exact grid."""
    from .. import mrml

    image = mrml.volume_node_to_image(volume_node)
    mask = mrml.segment_to_mask(segmentation_node, segment_id, volume_node)
    try:
        return extract(image, mask, settings, diagnostics).rename(segment_id)
    except InputError as error:
        raise InputError(f"segment '{segment_id}': {error.problem}", node=segmentation_node.GetName()) from None


def extract_segments(volume_node, segmentation_node, segment_ids: Sequence[str], settings: Settings,
                     progress: Callable[[int, int], None] | None = None,
                     should_cancel: Callable[[], bool] | None = None) -> "pd.DataFrame":
    """One row per segment (index: segment names), one column per feature, plus ``status``.

    A segment that fails (empty, say) gets its reason in ``status`` and the others complete.
    ``should_cancel`` is polled between segments; returning True raises :class:`Cancelled`.
    """
    from .. import provenance
    from .segments import measure_segments

    frame = measure_segments(volume_node, segmentation_node, segment_ids,
                             lambda image, mask: extract(image, mask, settings).to_dict(),
                             Cancelled("feature extraction cancelled"), progress, should_cancel)
    frame.attrs["provenance"] = provenance.record(
        settings={"volume": volume_node.GetName(), "segmentation": segmentation_node.GetName(),
                  "segments": list(segment_ids), "settings": "dict" if isinstance(settings, Mapping) else settings},
        kind="handcrafted", pyradiomics=settings_record(settings))
    return frame


# --------------------------------------------------------------------------- cohorts

def _patient_rows(cohort: "Cohort", patient_id: str, images: Sequence[str], masks: Sequence[str], params: dict,
                  perturbations: int, random_state: int, itk_threads: int = 0) -> list[dict]:
    """Rows for one patient: one per (mask or perturbation); failures become a status row."""
    if itk_threads:  # a worker process: share the cores with the other workers instead of oversubscribing
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(itk_threads)
    rows = []
    try:
        loaded = {name: cohort.read_image(patient_id, name) for name in images}
        for mask_name in masks:
            mask = cohort.read_mask(patient_id, mask_name, image=images[0], reference=loaded[images[0]])
            variants = [(mask_name if len(masks) > 1 else "original", mask)]
            if perturbations:
                from .perturbation import perturbed_masks

                variants += perturbed_masks(mask, loaded[images[0]], n=perturbations, random_state=random_state)
            for number, (label, variant) in enumerate(variants):
                row = {"patient_id": patient_id, "perturbation": label}
                for name, image in loaded.items():
                    values = extract(image, _on_grid(variant, image, patient_id, name), params, diagnostics=True)
                    prefix = f"{name}_" if len(images) > 1 else ""
                    row.update({prefix + key: float(value) for key, value in values.items()
                                if not key.startswith("diagnostics_")})
                    if number == 0:  # the delineation itself, not its perturbations
                        row.setdefault(DIAGNOSTICS, {})[name] = _short_diagnostics(values)
                row[STATUS] = "ok"
                rows.append(row)
    except InputError as error:
        message = error.problem if error.patient else str(error)
        return [{"patient_id": patient_id, "perturbation": "original", STATUS: message}]
    except Exception as error:  # a crash inside PyRadiomics must not stop the cohort
        return [{"patient_id": patient_id, "perturbation": "original", STATUS: f"{type(error).__name__}: {error}"}]
    return rows


def _patient_task(pid: str, *, cohort, images, masks, params, perturbations, random_state, itk_threads) -> list:
    from ..execution import task_threads

    return _patient_rows(cohort, pid, images, masks, params, perturbations, random_state, task_threads(itk_threads))


def _on_grid(mask: "sitk.Image", image: "sitk.Image", patient_id: str, image_name: str) -> "sitk.Image":
    from ..imageio import align_mask

    try:
        return align_mask(mask, image)
    except InputError as error:
        raise InputError(f"mask does not fit image_{image_name}: {error.problem}", patient=patient_id) from None


def _voxel_count(cohort: "Cohort", patient_id: str, image: str) -> int:
    """Voxels in a patient's image, from the file header only (0 when it cannot be read)."""
    import SimpleITK as sitk

    try:
        path = cohort.image_path(patient_id, image)
        if path.is_dir():
            return 0
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        size = 1
        for extent in reader.GetSize():
            size *= extent
        return size
    except (InputError, RuntimeError):
        return 0


def extract_cohort(cohort: "Cohort", image: str | Sequence[str] = "CT", mask: str | Sequence[str] = "GTVp",
                   settings: Settings = "pyradiomics-default", n_jobs: int = 1, perturbations: int = 0,
                   random_state: int = 0, progress: Callable[[int, int], None] | None = None,
                   should_cancel: Callable[[], bool] | None = None, execution=None) -> "pd.DataFrame":
    """Features for every patient: one row per patient (index ``patient_id``) plus a ``status`` column.

    - ``image``: one image name, or several (e.g. ``["T1", "T2"]``): columns are then prefixed
      with the image name, on the same mask.
    - ``mask``: one mask name; several names (observers, alternative segments) or
      ``perturbations > 0`` give a long table indexed by (``patient_id``, ``perturbation``).
    - ``n_jobs``: patients in parallel (joblib processes; threads inside 3D Slicer).
    - ``execution``: where the patients run instead (:mod:`rtresponse.execution`: an ``Execution``, a dask
      ``Client`` or a scheduler setting such as ``"local-cluster:4"`` or ``"tcp://host:8786"``); each patient
      is one task that reads its images from the manifest's paths. The table is the same wherever it runs.
    - A failing patient keeps its row, with the reason in ``status``; the others complete.

    ``result.attrs["provenance"]``: how the table was made (see the module's docstring).
    """
    import pandas as pd

    from .. import provenance
    from ..execution import resolve

    images = [image] if isinstance(image, str) else list(image)
    masks = [mask] if isinstance(mask, str) else list(mask)
    for name in images:
        if name not in cohort.image_names:
            raise InputError(f"no column image_{name} (images: {', '.join(cohort.image_names)})", path=str(cohort.path))
    for name in masks:
        if name not in cohort.mask_names:
            raise InputError(f"no column mask_{name} (masks: {', '.join(cohort.mask_names)})", path=str(cohort.path))
    if perturbations < 0:
        raise InputError(f"perturbations must be 0 or more, got {perturbations}")
    params = load_settings(settings)
    _extractor(params)  # fail fast on bad settings, before any patient
    ids = cohort.patient_ids
    runner, owned = resolve(execution, max(1, min(int(n_jobs), len(ids))))
    try:
        order = list(range(len(ids)))
        if runner.parallel:  # largest images first, so no long patient starts last while the other workers idle
            order.sort(key=lambda i: -_voxel_count(cohort, ids[i], images[0]))
        tasks = [(pid,) for pid in ids]
        shared = dict(cohort=cohort, images=images, masks=masks, params=params, perturbations=perturbations,
                      random_state=random_state, itk_threads=runner.threads_per_task())
        results = runner.map(_patient_task, tasks, shared=shared, order=order, progress=progress,
                             should_cancel=should_cancel, cancelled="feature extraction cancelled",
                             on_lost=lambda i, error: [{"patient_id": ids[i], "perturbation": "original",
                                                        STATUS: f"worker lost while extracting ({error})"}])
        where = runner.describe()
    finally:
        if owned:
            runner.close()
    by_patient = {pid: patient_rows for pid, patient_rows in zip(ids, results)}
    rows = [row for pid in cohort.patient_ids for row in by_patient[pid]]  # manifest order
    diagnostics = _collect_diagnostics(rows, masks)
    frame = pd.DataFrame(rows)
    features = [c for c in frame.columns if c not in ("patient_id", "perturbation", STATUS)]
    frame = frame[["patient_id", "perturbation"] + features + [STATUS]]
    if len(masks) == 1 and not perturbations:
        frame = frame.drop(columns="perturbation").set_index("patient_id")
    else:
        frame = frame.set_index(["patient_id", "perturbation"])
    frame.attrs["provenance"] = provenance.record(
        settings={"image": images, "mask": masks, "settings": "dict" if isinstance(settings, Mapping) else settings,
                  "perturbations": perturbations, "random_state": random_state, "n_jobs": n_jobs},
        execution=where,
        kind="handcrafted", pyradiomics=settings_record(settings),
        perturbation={"count": perturbations, "seed": random_state} if perturbations else {"count": 0},
        diagnostics=diagnostics)
    return frame


def _collect_diagnostics(rows: list[dict], masks: Sequence[str]) -> dict:
    """Takes the rows' diagnostics out: {"versions": PyRadiomics' (once), "patients": {id: {image: {...}}}}.

    With several masks a patient's entries are keyed ``"<mask>/<image>"``.
    """
    versions: dict = {}
    patients: dict = {}
    for row in rows:
        found = row.pop(DIAGNOSTICS, None)
        if not found:
            continue
        for image, values in found.items():
            versions = versions or values.get("versions", {})
            values = {key: value for key, value in values.items() if key != "versions"}
            key = f"{row['perturbation']}/{image}" if len(masks) > 1 else image
            patients.setdefault(str(row["patient_id"]), {})[key] = values
    return {"versions": versions, "patients": patients}
