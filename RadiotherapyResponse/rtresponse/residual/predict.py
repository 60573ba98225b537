"""One patient through both regimen models: probabilities, the recommendation and why, Grad-CAM maps.

This is the call a Slicer module makes: SimpleITK images in, plain values and images out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import Cancelled, InputError
from ..recommendation import CCRT, IC_CCRT, reasoning, recommend, regimen_name
from .classification import Classifier, patient_probabilities, predict_slices
from .slices import rectangular_crops

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import SimpleITK as sitk

    from .segmentation import Segmenter

COLUMN = {CCRT: "p_residual_CCRT", IC_CCRT: "p_residual_IC_CCRT"}


@dataclass
class PatientPrediction:
    patient_id: str
    slices: "pd.DataFrame"  # one row per tumour slice: index, box, area, probability under each regimen
    probabilities: dict  # {"CCRT": p, "IC+CCRT": p}: mean of the slice probabilities
    residual: dict  # {"CCRT": bool, "IC+CCRT": bool} at each model's threshold
    recommendation: str  # "CCRT", "IC+CCRT" or "IBT"
    reasoning: str
    mask: "sitk.Image"  # the tumour mask used (given, or from the segmenter)
    gradcam: dict = field(default_factory=dict)  # {"CCRT": image, "IC+CCRT": image} on the MR grid
    positive_class: str = "residual tumour"  # what the probabilities are of

    def as_row(self) -> dict:
        return {"patient_id": self.patient_id, "slices": len(self.slices),
                COLUMN[CCRT]: self.probabilities[CCRT], COLUMN[IC_CCRT]: self.probabilities[IC_CCRT],
                "positive_class": self.positive_class,
                "residual_CCRT": int(self.residual[CCRT]), "residual_IC_CCRT": int(self.residual[IC_CCRT]),
                "recommendation": self.recommendation}


def _check_regimen(model: Classifier, expected: str) -> None:
    if model.config.regimen and regimen_name(model.config.regimen) != expected:
        raise InputError(f"the {expected} model was trained for {model.config.regimen} patients")


def predict_patient(image: "sitk.Image", mask: "sitk.Image | None", ccrt_model: Classifier, ic_model: Classifier,
                    segmenter: "Segmenter | None" = None, patient_id: str = "", device: str = "cpu",
                    gradcam: bool = True, should_cancel=None) -> PatientPrediction:
    """Residual tumour under CCRT and under IC+CCRT, and the lightest regimen predicted to clear it.

    ``mask``: the tumour on ``image``'s grid, or None to segment it with ``segmenter``.
    ``should_cancel()`` is asked before each stage (segmentation, each regimen's model, each
    Grad-CAM); when it returns True, :class:`rtresponse.errors.Cancelled` is raised (nothing is
    written: this function only computes).
    """
    import pandas as pd

    def stop_if_asked():
        if should_cancel is not None and should_cancel():
            raise Cancelled(f"prediction for {patient_id or 'the patient'} cancelled")

    _check_regimen(ccrt_model, CCRT)
    _check_regimen(ic_model, IC_CCRT)
    stop_if_asked()
    if mask is None:
        if segmenter is None:
            raise InputError("no tumour mask: give a mask or a segmenter", patient=patient_id or None)
        from .segmentation import segment_image

        mask = segment_image(segmenter, image, device)
        if not _has_voxels(mask):
            raise InputError("the segmenter found no tumour on this image", patient=patient_id or None)
    models = {CCRT: ccrt_model, IC_CCRT: ic_model}
    crops, tables, probabilities, residual, maps = {}, [], {}, {}, {}
    for regimen, model in models.items():
        stop_if_asked()
        key = tuple(sorted(model.config.crop_options().items()))
        if key not in crops:
            crops[key] = rectangular_crops(image, mask, patient_id, **model.config.crop_options())
        samples = crops[key]
        slice_p = predict_slices(model, samples, device)
        probabilities[regimen] = patient_probabilities(samples, slice_p)[patient_id]
        residual[regimen] = probabilities[regimen] >= model.config.threshold
        tables.append(pd.DataFrame({"slice_index": [s.slice_index for s in samples], COLUMN[regimen]: slice_p})
                      .set_index("slice_index"))
        if gradcam:
            from .gradcam import gradcam_image

            stop_if_asked()
            maps[regimen] = gradcam_image(model, samples, image, device)
    boxes = pd.DataFrame([{"slice_index": s.slice_index, "x0": s.box[0], "y0": s.box[1], "x1": s.box[2],
                           "y1": s.box[3], "area_mm2": s.area_mm2} for s in next(iter(crops.values()))])
    slices = boxes.set_index("slice_index").join(tables, how="outer").reset_index()
    chosen = recommend(residual[CCRT], residual[IC_CCRT])
    return PatientPrediction(patient_id, slices, probabilities, residual, chosen,
                             reasoning(residual[CCRT], residual[IC_CCRT]), mask, maps, ccrt_model.config.positive_class)


def _has_voxels(mask: "sitk.Image") -> bool:
    import SimpleITK as sitk

    return bool(sitk.GetArrayViewFromImage(mask).any())


_MODELS: dict = {}  # this process's models, kept for its next task: {(kind, file, size, time, device): model}


def cached_model(kind: str, path, device: str = "cpu"):
    """The ``kind`` ("classifier" or "segmenter") saved in ``path``, loaded once per process (a Dask worker or local
    process loads it for its first task; models are never sent with a task); a changed file is loaded anew."""
    import os

    from .classification import load_classifier
    from .segmentation import load_segmenter

    stat = os.stat(path)
    key = (kind, os.path.abspath(path), stat.st_size, stat.st_mtime_ns, str(device))
    if key not in _MODELS:
        if len(_MODELS) >= 3:  # both regimens' classifiers and a segmenter at most
            _MODELS.clear()
        _MODELS[key] = (load_classifier if kind == "classifier" else load_segmenter)(path, device)
    return _MODELS[key]


def _predict_task(pid: str, *, cohort, image, mask, ccrt, ic_ccrt, segmenter, device, gradcam, keep_mask) -> tuple:
    """One task: (patient id, its PatientPrediction or None, None or why it has none). Network passes on a fixed
    torch thread count: the same numbers wherever it runs. The tumour mask is left out unless ``keep_mask``."""
    from ..errors import RTResponseError
    from ..settings import task_torch_threads
    from .study import read_tumour

    models = (cached_model("classifier", ccrt, device), cached_model("classifier", ic_ccrt, device),
              None if segmenter is None else cached_model("segmenter", segmenter, device))
    try:
        mr = cohort.read_image(pid, image)
        tumour = None if segmenter is not None else read_tumour(cohort, pid, mask, image, mr)
        with task_torch_threads():
            result = predict_patient(mr, tumour, *models, pid, device, gradcam=gradcam)
    except (RTResponseError, RuntimeError, OSError) as error:
        return pid, None, str(error)
    if not keep_mask:
        result.mask = None  # not sent back when nobody writes it
    return pid, result, None


def predict_cohort(cohort, ccrt, ic_ccrt, segmenter=None, patient_ids=None, image: str = "T1", mask: str = "GTVp",
                   device: str = "cpu", gradcam: bool = False, keep_mask: bool = False, progress=None,
                   should_cancel=None, execution=None) -> tuple[list, dict]:
    """:func:`predict_patient` for a cohort's patients: ([(patient id, PatientPrediction or None, problem or None)],
    where it ran). ``ccrt``, ``ic_ccrt``, ``segmenter``: the model files (loaded once per process; with a
    segmenter the tumour is segmented, else read as ``mask``). One task per patient, where ``execution``
    (:mod:`rtresponse.execution`; default this process) says; the predictions are the same wherever they run. A
    patient that fails gets its problem, the others go on."""
    from ..execution import resolve

    ids = list(cohort.patient_ids if patient_ids is None else patient_ids)
    runner, owned = resolve(execution, 1)
    try:
        shared = dict(cohort=cohort, image=image, mask=mask, ccrt=str(ccrt), ic_ccrt=str(ic_ccrt),
                      segmenter=None if segmenter is None else str(segmenter), device=device, gradcam=gradcam,
                      keep_mask=keep_mask)
        results = runner.map(_predict_task, [(pid,) for pid in ids], shared=shared, progress=progress,
                             should_cancel=should_cancel, cancelled="prediction cancelled",
                             on_lost=lambda i, error: (ids[i], None, f"patient {ids[i]}: worker lost ({error})"))
        where = runner.describe()
    finally:
        if owned:
            runner.close()
    return results, where
