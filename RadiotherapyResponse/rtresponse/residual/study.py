"""The paper's study over a cohort: 4:1 split per regimen, one model per regimen, recommendations judged.

Each regimen's patients are split 4:1 into training and test, by patient, stratified by outcome
and seeded. The CCRT model learns from the CCRT training patients, the IC+CCRT model from the
IC+CCRT ones. Every test patient goes through both models; each model is scored on the test
patients who received its regimen (the only ones whose outcome under it is known), and the
recommendation is judged against the physician's choice and its outcome (Table 3). With the
classifier's default ``keep="best"`` a share of each model's training patients is held out to
choose its epoch (``split`` then says "validation" for them). Synthetic
cohorts know both outcomes: ``counterfactual`` names those columns and each model is also scored
on every test patient. A patient whose files cannot be read, or whose mask is empty, is left out
and reported; the rest of the study goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..recommendation import CCRT, IC_CCRT, REGIMENS, judge, recommend, regimen_name, situations, summarize
from .classification import ClassifierConfig, patient_probabilities, predict_slices, train_classifier
from .metrics import evaluate_units
from .slices import rectangular_crops

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import SimpleITK as sitk

    from ..cohort import Cohort
    from ..recommendation import Summary
    from .segmentation import Segmenter

PARTS = ("train", "validation", "test")
COLUMN = {CCRT: "p_residual_CCRT", IC_CCRT: "p_residual_IC_CCRT"}
FLAG = {CCRT: "residual_CCRT", IC_CCRT: "residual_IC_CCRT"}


def _binary(value, what: str, patient: str) -> int:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        raise InputError(f"{what} is missing", patient=patient)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if number not in (0.0, 1.0):
        raise InputError(f"{what} must be 0 (non-residual) or 1 (residual), got '{value}'", patient=patient)
    return int(number)


def study_table(cohort: "Cohort", regimen: str = "regimen", outcome: str = "residual"
                ) -> tuple["pd.DataFrame", dict[str, str]]:
    """(table indexed by patient_id with ``regimen`` and ``outcome`` 0/1, {patient: why left out})."""
    import pandas as pd

    if regimen not in cohort.clinical_names:
        raise InputError(f"no column clin_{regimen} in the manifest (clinical: {', '.join(cohort.clinical_names)})",
                         path=str(cohort.path))
    if outcome not in cohort.outcome_names:
        raise InputError(f"no column outcome_{outcome} in the manifest (outcomes: {', '.join(cohort.outcome_names)})",
                         path=str(cohort.path))
    clinical, outcomes = cohort.clinical(), cohort.outcomes()
    rows, failures = {}, {}
    for pid in cohort.patient_ids:
        try:
            given = clinical.at[pid, regimen]
            if given is None or (isinstance(given, float) and np.isnan(given)):
                raise InputError(f"clin_{regimen} is missing", patient=pid)
            rows[pid] = {"regimen": regimen_name(given),
                         "outcome": _binary(outcomes.at[pid, outcome], f"outcome_{outcome}", pid)}
        except InputError as error:
            failures[pid] = str(error) if error.patient else f"patient {pid}: {error}"
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["regimen", "outcome"]).rename_axis("patient_id")
    return table, failures


def split_by_regimen(table: "pd.DataFrame", ratio: Sequence[int] = (4, 1), seed: int = 0) -> "pd.DataFrame":
    """``table`` with a ``split`` column ("train"/"test"): per regimen and outcome, seeded, by patient.

    Each regimen needs at least two patients of each outcome (one for training, one for testing).
    """
    rng = np.random.default_rng(seed)
    fraction = ratio[1] / float(sum(ratio))
    split = {}
    for regimen in REGIMENS:
        for outcome in (0, 1):
            ids = sorted(table.index[(table["regimen"] == regimen) & (table["outcome"] == outcome)])
            if len(ids) < 2:
                word = "residual" if outcome else "non-residual"
                raise InputError(f"{regimen}: {len(ids)} {word} patient(s); a {ratio[0]}:{ratio[1]} split needs "
                                 f"at least 2 (one to train on, one to test)")
            order = [ids[i] for i in rng.permutation(len(ids))]
            n_test = min(len(ids) - 1, max(1, int(round(len(ids) * fraction))))
            split.update({pid: "test" for pid in order[:n_test]})
            split.update({pid: "train" for pid in order[n_test:]})
    out = table.copy()
    out["split"] = [split[pid] for pid in out.index]
    return out


def read_tumour(cohort: "Cohort", patient_id: str, mask: str, image: str, reference) -> "sitk.Image":
    """The tumour mask on ``reference``'s grid; ``"GTVp+GTVn"`` is the union of the masks a patient has.

    The paper's tumour is the primary lesion with the cervical lymph nodes (> 1 cm).
    """
    import SimpleITK as sitk

    names = [name.strip() for name in mask.split("+") if name.strip()]
    given = [name for name in names if f"mask_{name}" not in cohort.table.columns
             or cohort.table.at[patient_id, f"mask_{name}"]]
    if not given:
        raise InputError(f"no {' or '.join(names)} mask given", patient=patient_id)
    union = None
    for name in given:
        part = cohort.read_mask(patient_id, name, image=image, reference=reference)
        union = part if union is None else sitk.Or(union, part)
    return union


def segmenter_slices(cohort: "Cohort", image: str, mask: str, input_size: int, negatives: float, seed: int,
                     on_skip: Callable[[str, Exception], None] | None = None) -> tuple[dict, dict]:
    """({"train": ..., "validation": ...} SegmentationSlices, the same parts' patient ids) of the patients with a
    ``mask``, split 4:1 by patient (seeded); a patient whose image or mask cannot be read is left out of the slices
    (``on_skip(patient, error)``)."""
    from ..errors import RTResponseError
    from .segmentation import SegmentationSlices, segmentation_slices

    names = [f"mask_{name.strip()}" for name in mask.split("+")]
    ids = [pid for pid in cohort.patient_ids
           if any(cohort.table.at[pid, column] for column in names if column in cohort.table.columns)]
    if len(ids) < 2:
        raise RTResponseError(f"segmentation needs at least 2 patients with a mask_{mask}, got {len(ids)}")
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    n_test = max(1, int(round(len(ids) / 5)))
    parts = {"validation": order[:n_test], "train": order[n_test:]}
    slices = {}
    for part, pids in parts.items():
        loaded = []
        for pid in pids:
            try:
                mr = cohort.read_image(pid, image)
                loaded.append(segmentation_slices(mr, read_tumour(cohort, pid, mask, image, mr), pid, input_size,
                                                  negatives, seed=seed))
            except (RTResponseError, RuntimeError) as error:
                if on_skip is not None:
                    on_skip(pid, error)
        slices[part] = SegmentationSlices.concatenate(loaded)
    return slices, parts


def load_crops(cohort: "Cohort", patient_ids: Sequence[str], image: str = "T1", mask: str | None = "GTVp",
               crop_options: Mapping | None = None, segmenter: "Segmenter | None" = None,
               progress: Callable[[int, int], None] | None = None) -> tuple[dict, dict[str, str]]:
    """({patient: its slice samples}, {patient: why not}): one patient's failure does not stop the rest.

    The tumour comes from the manifest's ``mask_<mask>`` (``"GTVp+GTVn"``: their union, see
    :func:`read_tumour`), or, with ``mask=None``, from ``segmenter``.
    """
    from .segmentation import segment_image

    crops, failures = {}, {}
    for done, pid in enumerate(patient_ids, start=1):
        try:
            mr = cohort.read_image(pid, image)
            if mask is not None:
                tumour = read_tumour(cohort, pid, mask, image, mr)
            elif segmenter is not None:
                tumour = segment_image(segmenter, mr)
            else:
                raise InputError("no mask name and no segmenter", patient=pid)
            crops[pid] = rectangular_crops(mr, tumour, pid, **dict(crop_options or {}))
        except (InputError, RuntimeError, OSError) as error:  # SimpleITK reports unreadable files as RuntimeError
            failures[pid] = str(error) if isinstance(error, InputError) else f"patient {pid}: {error}"
        if progress:
            progress(done, len(patient_ids))
    return crops, failures


@dataclass
class StudyResult:
    split: "pd.DataFrame"  # patient_id -> regimen, outcome, split (train, validation, test), status
    models: dict  # {"CCRT": Classifier, "IC+CCRT": Classifier}
    metrics: "pd.DataFrame"  # network x regimen model x population x unit
    slices: "pd.DataFrame"  # test slices with both models' probabilities
    predictions: "pd.DataFrame"  # test patients: probabilities, predictions, recommendation, verdicts
    situations: "pd.DataFrame"  # Table 3 layout
    summary: "Summary | None"
    failures: dict = field(default_factory=dict)  # {patient: why left out}


def _metrics_rows(slices: "pd.DataFrame", regimen: str, population: str, label: "pd.Series", model,
                  network: str) -> "pd.DataFrame":
    """Test metrics per unit, with the epoch the model kept and its validation scores."""
    frame = slices.assign(probability=slices[COLUMN[regimen]], label=slices["patient_id"].map(label))
    table = evaluate_units(frame[["patient_id", "probability", "label"]], model.config.threshold).reset_index()
    table.insert(0, "population", population)
    table.insert(0, "model", regimen)
    table.insert(0, "network", network)
    table["epoch"] = model.epoch
    table["validation_loss"] = model.validation_loss
    table["validation_auc"] = model.validation_auc
    return table


def run_study(cohort: "Cohort", config: ClassifierConfig | None = None, image: str = "T1", mask: str | None = "GTVp",
              regimen: str = "regimen", outcome: str = "residual", ratio: Sequence[int] = (4, 1), seed: int = 0,
              split: "pd.DataFrame | None" = None, counterfactual: Mapping[str, str] | None = None,
              segmenter: "Segmenter | None" = None, device: str = "cpu", weights_folder=None,
              progress: Callable[[dict], None] | None = None, should_cancel: Callable[[], bool] | None = None
              ) -> StudyResult:
    """Train both regimen models with ``config`` and judge them and their recommendations on the test patients.

    ``split``: a table from :func:`split_by_regimen` to reuse (e.g. across networks); default a new
    seeded split. ``counterfactual``: {"CCRT": outcome name, "IC+CCRT": outcome name} of the
    outcome under each regimen, known in synthetic data only. ``progress`` receives dicts with a
    ``stage`` ("loading": done/total; "training": the epoch record).
    """
    import pandas as pd

    config = config or ClassifierConfig()
    unknown = [name for name in (counterfactual or {}).values() if name not in cohort.outcome_names]
    if unknown:
        raise InputError(f"no column outcome_{unknown[0]} in the manifest (outcomes: "
                         f"{', '.join(cohort.outcome_names)})", path=str(cohort.path))
    table, failures = study_table(cohort, regimen, outcome)
    if split is None:
        split = split_by_regimen(table, ratio, seed)
    loading = (lambda done, total: progress({"stage": "loading", "done": done, "total": total})) if progress else None
    crops, failed = load_crops(cohort, list(split.index), image, mask, config.crop_options(), segmenter, loading)
    failures.update(failed)
    split = split.assign(status=["ok" if pid in crops else failures[pid] for pid in split.index])
    usable = split[split["status"] == "ok"]

    models = {}
    for name in REGIMENS:
        ids = usable.index[(usable["regimen"] == name) & (usable["split"] == "train")]
        samples = [s for pid in ids for s in crops[pid]]
        labels = usable.loc[ids, "outcome"].to_dict()
        report = (lambda record: progress({"stage": "training", **record})) if progress else None
        models[name] = train_classifier(samples, labels, replace(config, regimen=name, outcome=outcome), device,
                                        weights_folder, report, should_cancel)
        held = split.index.isin(models[name].validation_ids)
        split = split.assign(split=split["split"].where(~held, "validation"))

    test_ids = list(usable.index[usable["split"] == "test"])
    if not test_ids:
        raise InputError("no test patient could be read")
    samples = [s for pid in test_ids for s in crops[pid]]
    slices = pd.DataFrame({"patient_id": [s.patient_id for s in samples],
                           "slice_index": [s.slice_index for s in samples]})
    patients = pd.DataFrame(index=pd.Index(test_ids, name="patient_id"))
    for name, model in models.items():
        slice_p = predict_slices(model, samples, device)
        slices[COLUMN[name]] = slice_p
        patients[COLUMN[name]] = pd.Series(patient_probabilities(samples, slice_p))
        patients[FLAG[name]] = (patients[COLUMN[name]] >= model.config.threshold).astype(int)
    patients = usable.loc[test_ids, ["regimen", "outcome"]].join(patients)
    patients["positive_class"] = models[CCRT].config.positive_class  # what p_residual_* is the probability of

    rows = []
    for name, model in models.items():
        received = patients.index[patients["regimen"] == name]
        rows.append(_metrics_rows(slices[slices["patient_id"].isin(received)], name, "received",
                                  patients["outcome"], model, config.network))
        if counterfactual:
            label = cohort.outcomes().loc[test_ids, counterfactual[name]].astype(int)
            rows.append(_metrics_rows(slices, name, "all (counterfactual)", label, model, config.network))
    metrics = pd.concat(rows, ignore_index=True)

    cases = [(r[FLAG[CCRT]], r[FLAG[IC_CCRT]], r["regimen"], r["outcome"]) for _, r in patients.iterrows()]
    verdicts = [judge(*case) for case in cases]
    patients["recommendation"] = [recommend(c[0], c[1]) for c in cases]
    patients["model_verdict"] = [v[0] for v in verdicts]
    patients["physician_verdict"] = [v[1] for v in verdicts]
    return StudyResult(split, models, metrics, slices, patients.reset_index(), situations(cases),
                       summarize(cases) if cases else None, failures)
