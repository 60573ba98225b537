"""What the I3D module reads from its widgets and files: the cohort manifest's names, typed numbers and clinical
values, an I3D model file's needs, and why Train or Predict cannot start (one sentence each).

``p`` is the module's parameter node (``i3d*`` parameters, see ResponseModelI3D.py); a duck-typed object does in
tests. Needs neither Qt nor Slicer; rtresponse and MRML are imported inside the functions that use them.
"""

from __future__ import annotations

import os
import re

CLINICAL_PREFIX, OUTCOME_PREFIX, PATIENT_ID = "clin_", "outcome_", "patient_id"
WEIGHTS = (("imagenet", "ImageNet (pretrained ResNet-50, the paper)"),
           ("random", "random (testing only: learns nothing useful)"),
           ("file", "ResNet-50 weights file"))
VOLUME_SLOTS = 3  # MR volume selectors of Predict: the sequences are the three RGB channels of the network


def cohortNames(manifest) -> dict:
    """{"patients": count, "images", "masks", "clinical", "outcomes": names without prefix} of a cohort manifest
    (its files are not checked: Train does that)."""
    from rtresponse.cohort import load_manifest

    cohort = load_manifest(manifest, check_files=False)
    return {"patients": len(cohort.patient_ids), "images": list(cohort.image_names),
            "masks": list(cohort.mask_names), "clinical": list(cohort.clinical_names),
            "outcomes": list(cohort.outcome_names)}


def stripPrefix(name: str, prefix: str = CLINICAL_PREFIX) -> str:
    return name[len(prefix):] if name.startswith(prefix) else name


def factorNames(factors) -> list:
    """Clinical factor names from text ("age HPV, clin_T_stage") or a list, without the clin_ prefix."""
    if isinstance(factors, str):
        factors = re.split(r"[\s,;]+", factors)
    names = [str(f).strip() for f in factors or [] if str(f).strip()]
    return list(dict.fromkeys(stripPrefix(n) for n in names))


def parseNumbers(text, what: str, integer: bool = False, count: int = 3) -> tuple:
    """``count`` positive numbers typed as text ("96 96 24", "1.5, 1.5, 3") as a tuple."""
    from rtresponse.errors import InputError

    parts = [part for part in re.split(r"[\s,;x]+", str(text or "").strip()) if part]
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        raise InputError(f"the {what} must be {count} numbers (x y z), got '{text}'") from None
    if len(values) != count or any(v <= 0 for v in values):
        raise InputError(f"the {what} must be {count} positive numbers (x y z), got '{text}'")
    if integer:
        if any(v != int(v) for v in values):
            raise InputError(f"the {what} must be whole numbers of voxels, got '{text}'")
        return tuple(int(v) for v in values)
    return values


def weightsText(weights) -> str:
    """The backbone weights as the model files record them: "imagenet", "random" or an existing file's path."""
    from rtresponse.errors import InputError

    weights = os.fspath(weights) if weights else ""
    if weights in ("imagenet", "random"):
        return weights
    if not weights:
        raise InputError("no backbone weights chosen (imagenet, random or a weights file)")
    if not os.path.isfile(weights):
        raise InputError("backbone weights file not found", path=weights)
    return weights


def modelInfo(modelPath) -> dict:
    """What an I3D model file needs and says: {"sequences", "mask", "factors" (clinical, [] for DLR (MR)),
    "columns" (their encoded columns), "medians" (fill values of numbers), "outcome", "positive", "cutoff",
    "model", "weights"}. Reads the file's metadata (well under a second)."""
    from rtresponse.models.i3d.training import load_head

    _network, info = load_head(modelPath)
    clinical = info.get("clinical") or {}
    return {"sequences": list(info["volume"]["sequences"]), "mask": info["volume"].get("mask", ""),
            "factors": list(clinical.get("factors", [])), "columns": list(clinical.get("columns", [])),
            "medians": dict(clinical.get("medians", {})),
            "outcome": info.get("outcome", "outcome"), "positive": info.get("positive", "1"),
            "cutoff": float(info.get("cutoff", 0.5)), "model": info.get("model", ""),
            "weights": info.get("weights", "")}


def modelDescription(info: dict) -> str:
    text = (f"{info['model']}: probability of {info['outcome']} = {info['positive']} from "
            f"{', '.join(info['sequences'])} around {info['mask']}")
    text += f" and {', '.join(info['factors'])}." if info["factors"] else " (image only)."
    if info["weights"] == "random":
        text += " Random backbone weights: a test model."
    return text


def parseClinicalValues(text) -> dict:
    """{factor: value} from "age=63; HPV=positive" (numbers become numbers; clin_ prefixes are dropped)."""
    from rtresponse.errors import InputError

    values = {}
    for item in re.split(r"[;\n]+", str(text or "")):
        if not item.strip():
            continue
        if "=" not in item:
            raise InputError(f"clinical values are typed as factor=value separated by ';', got '{item.strip()}'")
        name, value = (part.strip() for part in item.split("=", 1))
        name = stripPrefix(name)
        if not name:
            raise InputError(f"no factor name in '{item.strip()}'")
        try:
            values[name] = float(value) if value else None
        except ValueError:
            values[name] = value
    return values


def clinicalValues(tableNode=None, patientId: str = "", text: str = "") -> dict:
    """{factor: value} of the current patient: the row of ``tableNode`` (clin_ columns; the row of ``patientId``,
    or the table's only row), then the values typed in ``text`` ("factor=value; ...") on top. Outcomes never."""
    import pandas as pd

    from rtresponse import mrml
    from rtresponse.errors import InputError

    values = {}
    if tableNode is not None:
        frame, name = mrml.table_node_to_dataframe(tableNode), tableNode.GetName()
        if PATIENT_ID in frame.columns:
            frame = frame.set_index(PATIENT_ID)
        patientId = str(patientId or "").strip()
        if patientId:
            if frame.index.name != PATIENT_ID:
                raise InputError(f"no patient_id column to find patient {patientId} in", node=name)
            rows = frame[frame.index.astype(str) == patientId]
            if rows.empty:
                raise InputError(f"no row of patient {patientId}", node=name)
            row = rows.iloc[0]
        elif len(frame) == 1:
            row = frame.iloc[0]
        else:
            raise InputError(f"the table has {len(frame)} rows: type the patient's id", node=name)
        for column, value in row.items():
            column = str(column)
            missing = value is None or (not isinstance(value, str) and pd.isna(value))
            if not missing and not column.startswith(OUTCOME_PREFIX):
                values[stripPrefix(column)] = value.item() if hasattr(value, "item") else value
    values.update(parseClinicalValues(text))
    return values


def clinicalInputs(info: dict, clinical: dict | None, modelPath="") -> tuple:
    """(the model's clinical inputs {factor: value or None}, factors not given, {factor: category the model never
    saw}) of the values ``clinical``; raises InputError naming what the model needs and cannot do without.

    A number not given becomes the training median where the model has one (else it is required); a category not
    given, or one the model never saw, counts as unknown (no one-hot column set), as in training."""
    from rtresponse.errors import InputError

    given = {k: v for k, v in (clinical or {}).items() if v is not None and not (isinstance(v, float) and v != v)}
    factors, columns = info["factors"], set(info["columns"])
    inputs, unknown = {}, {}
    if factors and not any(f in given for f in factors):
        raise InputError(f"this model needs the clinical factors {', '.join(factors)}: none was given "
                         "(select the patient's clinical table or type factor=value)")
    for factor in factors:
        value = given.get(factor)
        if factor in columns:  # a number
            if value is None and factor not in info["medians"]:
                raise InputError(f"this model needs the clinical factor '{factor}' (a number): it has no fill value "
                                 "for it", path=os.fspath(modelPath) or None)
            try:
                inputs[factor] = None if value is None else float(value)
            except (TypeError, ValueError):
                raise InputError(f"clinical factor '{factor}' is a number in this model, got '{value}'") from None
        else:
            inputs[factor] = None if value is None else str(value)
            if value is not None and f"{factor}={value}" not in columns:
                unknown[factor] = str(value)
    return inputs, [f for f in factors if f not in given], unknown


def trainProblem(p, cohort) -> str | None:
    """Why Train cannot start, or None. ``cohort``: :func:`cohortNames` of the manifest, a problem (str), or None
    while the packages needed to read it are missing (Train installs them)."""
    from rtresponse.errors import InputError

    if p is None:
        return "No parameter node."
    if not p.i3dManifest:
        return ("Choose the cohort manifest (CSV): one row per patient with the MR images, the tumour mask, clin_ "
                "factors and outcome_ columns.")
    if isinstance(cohort, str):
        return cohort
    sequences, mask = p.i3dSequences.split(), p.i3dMask.strip()
    if not sequences:
        return "Type the MR sequences: manifest image names separated by spaces, e.g. T1 T2."
    if len(sequences) > VOLUME_SLOTS:
        return f"At most {VOLUME_SLOTS} MR sequences (the network's three colour channels)."
    if not mask:
        return "Type the tumour mask's name (a manifest mask name, e.g. GTVp)."
    if cohort is not None:
        if not cohort["outcomes"]:
            return "The manifest has no outcome_ column: nothing to predict."
        missing = [s for s in sequences if s not in cohort["images"]]
        if missing:
            return (f"The manifest has no image {', '.join(missing)} (its images: "
                    f"{', '.join(cohort['images']) or 'none'}).")
        if mask not in cohort["masks"]:
            return f"The manifest has no mask {mask} (its masks: {', '.join(cohort['masks']) or 'none'})."
        unknown = [f for f in factorNames(p.i3dClinicalFactors) if f not in cohort["clinical"]]
        if unknown and not p.i3dImageOnly:
            return (f"The manifest has no clinical factor {', '.join(unknown)} (its clin_ columns: "
                    f"{', '.join(cohort['clinical']) or 'none'}).")
    if p.i3dWeights == "file" and not os.path.isfile(p.i3dWeightsFile):
        return "Choose the ResNet-50 weights file, or other backbone weights."
    try:
        parseNumbers(p.i3dShape, "input size", integer=True)
        parseNumbers(p.i3dSpacing, "voxel size")
    except InputError as error:
        return f"{str(error)[:1].upper()}{str(error)[1:]}."
    return None


def trainSummary(p, cohort) -> str:
    """One line on what Train will do (when it can start)."""
    sequences = " + ".join(p.i3dSequences.split())
    text = (f"{cohort['patients']} patient(s): " if isinstance(cohort, dict) else "") + (
        f"{sequences} around {p.i3dMask.strip()}, {' x '.join(p.i3dShape.split())} voxels of "
        f"{' x '.join(p.i3dSpacing.split())} mm; ")
    if p.i3dImageOnly:
        text += "image only (DLR (MR)); "
    else:
        factors = factorNames(p.i3dClinicalFactors)
        count = len(factors) if factors else len(cohort["clinical"]) if isinstance(cohort, dict) else "all"
        text += f"DLR (MR) and DLR (MR + CF), 3 of {count} clinical factor(s) chosen by LASSO; "
    text += f"{p.i3dTrials or 'no'} Optuna trial(s), at most {p.i3dMaxEpochs} epochs."
    if p.i3dWeights == "random":
        text += " Random backbone weights: for testing the pipeline only."
    if cohort is None:
        text += " Python packages needed to read the manifest are installed when you press Train."
    return text


def predictVolumes(p, info) -> list:
    """The Predict volume nodes, one per sequence of the model (None where not chosen)."""
    sequences = info["sequences"] if isinstance(info, dict) else ["MR volume 1"]
    return [getattr(p, f"i3dVolume{n}") for n in range(1, min(len(sequences), VOLUME_SLOTS) + 1)]


def predictProblem(p, info) -> str | None:
    """Why Predict cannot start, or None. ``info``: :func:`modelInfo` of the chosen file, a problem (str), or None
    while PyTorch is missing (Predict installs it)."""
    if p is None:
        return "No parameter node."
    if not p.i3dModelPath or not os.path.isfile(p.i3dModelPath):
        return "Choose an I3D model file (dlr_mr.pt or dlr_mr_cf.pt), e.g. the one saved by Train."
    if isinstance(info, str):
        return info
    sequences = info["sequences"] if info else ["MR volume 1"]
    if len(sequences) > VOLUME_SLOTS:
        return (f"The model reads {len(sequences)} sequences; this module shows {VOLUME_SLOTS} volume selectors (use "
                "'rtresponse i3d predict').")
    volumes = predictVolumes(p, info)
    for sequence, volume in zip(sequences, volumes):
        if volume is None:
            return f"Select the patient's {sequence} volume."
    if len({volume.GetID() for volume in volumes}) < len(volumes):
        return "Select a different volume for each sequence."
    if not p.i3dSegmentation or not p.i3dSegmentId or \
            p.i3dSegmentation.GetSegmentation().GetSegment(p.i3dSegmentId) is None:
        return f"Select the tumour segment ({info['mask']})." if info else "Select the tumour segment."
    if info and info["factors"] and not p.i3dClinicalTable and not p.i3dClinicalValues.strip():
        return (f"This model needs the clinical factors {', '.join(info['factors'])}: select the patient's clinical "
                "table or type them as factor=value.")
    return None


def guessPredictInputs(p, info, scene) -> None:
    """Fill the empty Predict inputs from the scene by name: a volume named after each sequence (e.g. "P001 T1"),
    a segment named as the model's mask and, for a model with clinical factors, a one-row table with clin_
    columns. What is already chosen is kept."""
    from rtresponse import mrml

    if p is None or not isinstance(info, dict):
        return

    def named(node, word):
        return re.search(rf"(^|[^a-z0-9]){re.escape(word.lower())}([^a-z0-9]|$)", node.GetName().lower())

    volumes = [v for v in mrml.nodes_by_class(scene, "vtkMRMLScalarVolumeNode")
               if not v.IsA("vtkMRMLLabelMapVolumeNode")]
    for n, sequence in enumerate(info["sequences"][:VOLUME_SLOTS], start=1):
        if getattr(p, f"i3dVolume{n}") is None:
            found = next((v for v in volumes if named(v, sequence)), None)
            if found is not None:
                setattr(p, f"i3dVolume{n}", found)
    if not p.i3dSegmentation and info["mask"]:
        for segmentation in mrml.nodes_by_class(scene, "vtkMRMLSegmentationNode"):
            segmentId = segmentation.GetSegmentation().GetSegmentIdBySegmentName(info["mask"])
            if segmentId:
                p.i3dSegmentation, p.i3dSegmentId = segmentation, segmentId
                break
    if not p.i3dClinicalTable and info["factors"]:
        for table in mrml.nodes_by_class(scene, "vtkMRMLTableNode"):
            columns = [table.GetColumnName(i) for i in range(table.GetNumberOfColumns())]
            if table.GetNumberOfRows() == 1 and any(c.startswith(CLINICAL_PREFIX) for c in columns):
                p.i3dClinicalTable = table
                break
