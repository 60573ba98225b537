"""The study file: its schema (``schema.yaml``, JSON Schema keywords), validation with messages naming the field,
defaults filled in, and the checks a schema cannot express (unique names, references between sections).

:func:`load_study` reads a YAML file and returns the complete study (every default filled in) as plain data;
problems raise :class:`~rtresponse.errors.InputError` naming the file and the field (``analyses[0].k``).
"""

from __future__ import annotations

import copy
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import InputError

SCHEMA_FILE = Path(__file__).resolve().parent / "schema.yaml"
_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict,
          "null": type(None)}


@lru_cache(maxsize=1)
def _schema_cached() -> dict:
    import yaml

    return yaml.safe_load(SCHEMA_FILE.read_text(encoding="utf-8"))


def schema() -> dict:
    """The study file's JSON Schema (a copy)."""
    return copy.deepcopy(_schema_cached())


def _is(value, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[name])


def _where(path: str) -> str:
    return path or "the study file"


def validate(data: Any, node: dict | None = None, path: str = "") -> Any:
    """``data`` checked against ``node`` (default: the whole schema), with defaults filled in; a new object.

    Raises InputError naming the field on the first problem.
    """
    node = _schema_cached() if node is None else node
    types = node.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_is(data, name) for name in names):
            shown = "a list" if isinstance(data, list) else "a mapping" if isinstance(data, dict) else repr(data)
            raise InputError(f"{_where(path)}: must be {' or '.join(names)}, got {shown}")
    if "enum" in node and data not in node["enum"]:
        raise InputError(f"{_where(path)}: {data!r} is not one of {', '.join(map(str, node['enum']))}")
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        if "minimum" in node and data < node["minimum"]:
            raise InputError(f"{_where(path)}: must be at least {node['minimum']}, got {data}")
        if "maximum" in node and data > node["maximum"]:
            raise InputError(f"{_where(path)}: must be at most {node['maximum']}, got {data}")
        if "exclusiveMinimum" in node and data <= node["exclusiveMinimum"]:
            raise InputError(f"{_where(path)}: must be more than {node['exclusiveMinimum']}, got {data}")
    if isinstance(data, list):
        if len(data) < node.get("minItems", 0):
            raise InputError(f"{_where(path)}: needs at least {node['minItems']} item(s)")
        if "items" in node:
            return [validate(item, node["items"], f"{path}[{i}]") for i, item in enumerate(data)]
        return list(data)
    if isinstance(data, dict) and ("properties" in node or node.get("type") == "object"):
        properties = node.get("properties", {})
        for key in data:
            if not isinstance(key, str):
                raise InputError(f"{_where(path)}: field names must be text, got {key!r}")
        if node.get("additionalProperties") is False:
            unknown = [key for key in data if key not in properties]
            if unknown:
                prefix = f"{path}." if path else ""
                raise InputError(f"{prefix}{unknown[0]}: unknown field (fields here: {', '.join(properties)})")
        for key in node.get("required", []):
            if key not in data:
                prefix = f"{path}." if path else ""
                raise InputError(f"{prefix}{key}: required field is missing")
        result = {}
        for key, child in properties.items():
            prefix = f"{path}.{key}" if path else key
            if key in data:
                result[key] = validate(data[key], child, prefix)
            elif "default" in child:
                result[key] = validate(copy.deepcopy(child["default"]), child, prefix)
        return result
    return data


def _listed(value) -> list:
    return list(value) if isinstance(value, list) else [value]


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(text))


def expand_features(features: list[dict]) -> list[dict]:
    """One entry per feature set: a deep2d entry with several models or masks (or a handcrafted one with several
    masks) becomes one per combination, named ``NAME_MODEL_MASK`` (``base`` keeps the entry's name)."""
    found = []
    for entry in features:
        if entry["kind"] == "clinical":
            found.append({**entry, "base": entry["name"]})
            continue
        models = _listed(entry["model"]) if entry["kind"] == "deep2d" else [None]
        masks = _listed(entry["mask"])
        for model in models:
            for mask in masks:
                name = entry["name"]
                if len(models) > 1:
                    name += f"_{model}"
                if len(masks) > 1:
                    name += f"_{mask}"
                one = {**entry, "mask": mask, "base": entry["name"], "name": name}
                if model is not None:
                    one["model"] = model
                found.append(one)
    return found


def _check_kinds(study: dict, raw: dict) -> None:
    """Feature fields that do not apply to the entry's kind are refused (the schema marks them ``x-kinds``)."""
    fields = _schema_cached()["properties"]["features"]["items"]["properties"]
    for i, entry in enumerate(raw.get("features") or []):
        if not isinstance(entry, dict):
            continue
        for key in entry:
            kinds = fields.get(key, {}).get("x-kinds")
            if kinds and entry.get("kind") not in kinds:
                raise InputError(f"features[{i}].{key}: not a setting of {entry.get('kind')} features "
                                 f"(it applies to {', '.join(kinds)})")
    for i, entry in enumerate(study["features"]):
        if entry["kind"] == "deep2d":
            from ..features.deep2d.catalogue import load_catalogue

            known = load_catalogue()
            for model in _listed(entry["model"]):
                if model not in known:
                    raise InputError(f"features[{i}].model: unknown network '{model}' "
                                     f"(known: {', '.join(sorted(known))})")


def _drop_other_kinds(study: dict) -> None:
    """Each feature entry keeps only the fields of its kind (defaults of the other kinds removed)."""
    fields = _schema_cached()["properties"]["features"]["items"]["properties"]
    for entry in study["features"]:
        for key in list(entry):
            kinds = fields.get(key, {}).get("x-kinds")
            if kinds and entry["kind"] not in kinds:
                del entry[key]


PROTOCOL_SETTINGS = ("i3d", "residual", "recurrence")  # analysis fields of one protocol each (x-protocols)
TRAINED_PROTOCOLS = PROTOCOL_SETTINGS  # protocols that train networks through the method's library (not the grid)


def _protocol_settings(study: dict, raw: dict) -> None:
    """Each analysis keeps the settings object of its own protocol, every default filled in; an object given for
    another protocol is refused; the outcome is required except by the recurrence protocol."""
    analyses = _schema_cached()["properties"]["analyses"]["items"]["properties"]
    given = raw.get("analyses") if isinstance(raw.get("analyses"), list) else []
    for i, analysis in enumerate(study["analyses"]):
        entry = given[i] if i < len(given) and isinstance(given[i], dict) else {}
        for key in PROTOCOL_SETTINGS:
            if key != analysis["protocol"]:
                if entry.get(key) is not None:
                    raise InputError(f"analyses[{i}].{key}: a setting of protocol {key} (this analysis' protocol is "
                                     f"{analysis['protocol']})")
                analysis.pop(key, None)
            elif analysis[key] is None:
                analysis[key] = validate({}, analyses[key], f"analyses[{i}].{key}")
        if analysis["outcome"] is None and analysis["protocol"] != "recurrence":
            raise InputError(f"analyses[{i}].outcome: required field is missing (only protocol recurrence, whose "
                             "label is a mask, has none)")
        if analysis["protocol"] == "residual":
            from ..features.deep2d.catalogue import load_catalogue

            known = load_catalogue()
            if analysis["residual"]["network"] not in known:
                raise InputError(f"analyses[{i}].residual.network: unknown network "
                                 f"'{analysis['residual']['network']}' (known: {', '.join(sorted(known))})")
            if analysis["residual"]["counterfactual"] is not None and len(analysis["residual"]["counterfactual"]) != 2:
                raise InputError(f"analyses[{i}].residual.counterfactual: two outcome names (under CCRT, under "
                                 "IC+CCRT), or null")
        if analysis["protocol"] == "i3d":
            for key, n in (("spacing", 3), ("shape", 3)):
                if len(analysis["i3d"][key]) != n:
                    raise InputError(f"analyses[{i}].i3d.{key}: {n} numbers (x, y, z)")
        if analysis["protocol"] == "recurrence":
            settings = analysis["recurrence"]
            if len(settings["box"]) != 3 or any(side % 16 for side in settings["box"]):
                raise InputError(f"analyses[{i}].recurrence.box: 3 sides (x, y, z), each divisible by 16")
            if len(settings["channels"]) != 6:
                raise InputError(f"analyses[{i}].recurrence.channels: 6 feature counts")


def check_references(study: dict) -> None:
    """Names unique; every analysis' feature sets exist; exactly one cohort source."""
    cohort = study["cohort"]
    if (cohort["manifest"] is None) == (cohort["synthetic"] is None):
        raise InputError("cohort: give exactly one of manifest and synthetic")
    seen: dict[str, str] = {}
    for section in ("labels", "features", "analyses"):
        for i, entry in enumerate(study[section] if section != "features" else expand_features(study[section])):
            name = entry["name"]
            if section != "analyses" and name in seen:
                raise InputError(f"{section}[{i}].name: '{name}' is also the name of a {seen[name]} entry")
            if section != "analyses":
                seen[name] = section[:-1]
    names = [a["name"] for a in study["analyses"]]
    for i, name in enumerate(names):
        if names.index(name) != i:
            raise InputError(f"analyses[{i}].name: '{name}' names two analyses")
    sets = expand_features(study["features"])
    available = {s["name"] for s in sets} | {s["base"] for s in sets}
    for i, analysis in enumerate(study["analyses"]):
        wanted = analysis["feature_sets"]
        if isinstance(wanted, str):
            if wanted != "all":
                raise InputError(f"analyses[{i}].feature_sets: 'all' or a list of feature set names, got '{wanted}'")
        else:
            for name in wanted:
                if name not in available:
                    raise InputError(f"analyses[{i}].feature_sets: no feature set '{name}' "
                                     f"(features: {', '.join(sorted(available)) or 'none'})")
        if analysis["protocol"] in ("bootstrap", "split") and not sets:
            raise InputError(f"analyses[{i}].feature_sets: the study has no features")
        hcr = (analysis.get("i3d") or {}).get("handcrafted")
        if hcr is not None:
            kinds = {s["name"]: s["kind"] for s in sets}
            if kinds.get(hcr) != "handcrafted":
                raise InputError(f"analyses[{i}].i3d.handcrafted: no handcrafted feature set '{hcr}' (handcrafted "
                                 f"sets: {', '.join(n for n, k in kinds.items() if k == 'handcrafted') or 'none'})")


def analysis_sets(study: dict, analysis: dict) -> list[str]:
    """The expanded feature-set names one analysis judges, in the order of the features section."""
    sets = expand_features(study["features"])
    wanted = analysis["feature_sets"]
    if wanted == "all":
        return [s["name"] for s in sets]
    return [s["name"] for s in sets if s["name"] in wanted or s["base"] in wanted]


def check(data: Any, label: str = "study file") -> dict:
    """The complete study from parsed YAML: validated, defaults filled in, references checked."""
    if not isinstance(data, dict):
        raise InputError(f"{label}: a study file holds a mapping (version, cohort, features, analyses, ...)")
    try:
        study = validate(data)
        _check_kinds(study, data)
        _drop_other_kinds(study)
        _protocol_settings(study, data)
        check_references(study)
    except InputError as error:
        raise InputError(f"{label}: {error}") from None
    return study


def load_study(path: str | os.PathLike) -> dict:
    """Read, validate and complete a study file; relative paths in it are made relative to its folder."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"cannot read the study file ({error.strerror})", path=str(path)) from None
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    study = check(data, str(path))
    base = path.resolve().parent
    if study["cohort"]["manifest"] is not None:
        study["cohort"]["manifest"] = str((base / study["cohort"]["manifest"]).resolve())
    for entry in study["features"]:
        preset = entry.get("preset")
        if entry["kind"] == "handcrafted" and preset and (preset.endswith((".yaml", ".yml", ".json"))):
            entry["preset"] = str((base / preset).resolve())
        weights = entry.get("weights")
        if entry["kind"] == "deep2d" and weights not in ("imagenet", "random", "auto"):
            entry["weights"] = str((base / weights).resolve())
    for analysis in study["analyses"]:
        settings = analysis.get(analysis["protocol"])
        if isinstance(settings, dict) and settings.get("weights") not in (None, "imagenet", "random", "auto"):
            settings["weights"] = str((base / settings["weights"]).resolve())
    return study


def field_rows(node: dict | None = None, path: str = "") -> list[tuple[str, str, str, str]]:
    """(field, type, default, description) of every field, for the documentation."""
    import json

    node = _schema_cached() if node is None else node
    rows = []
    for key, child in node.get("properties", {}).items():
        where = f"{path}.{key}" if path else key
        types = child.get("type", "")
        types = " or ".join(types) if isinstance(types, list) else types
        if "enum" in child:
            types += " (" + ", ".join(map(str, child["enum"])) + ")"
        default = json.dumps(child["default"], ensure_ascii=False) if "default" in child else "required" \
            if key in node.get("required", []) else ""
        rows.append((where, types, default, child.get("description", "")))
        if child.get("properties"):
            rows += field_rows(child, where)
        items = child.get("items")
        if isinstance(items, dict) and items.get("properties"):
            rows += field_rows(items, where + "[]")
    return rows
