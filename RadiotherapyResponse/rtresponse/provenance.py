"""How an output was made: the command and its settings, the network weights, seeds, package versions, date.

Every file a command writes gets a JSON sidecar (``F.csv`` -> ``F.csv.json``) and every results folder a
``provenance.json``, written by :mod:`rtresponse.outputs` with the rest of the set. Commands add what only
they know (PyRadiomics settings, the weights file and its SHA-256, or "random, seed N", the positive class)
with :func:`note`; library callers (the Slicer modules) build the same record with :func:`record`.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping

SIDECAR_SUFFIX = ".json"
FOLDER_RECORD = "provenance.json"
RANDOM = "random"

# the packages whose versions change numbers; absent ones are left out
PACKAGES = ("numpy", "scipy", "pandas", "scikit-learn", "SimpleITK", "pyradiomics-bhklab", "pyradiomics", "torch",
            "torchvision", "timm", "monai", "optuna", "skops")


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def git_revision() -> str | None:
    """The git commit of the rtresponse checkout, when it is one (with '+dirty' for local changes)."""
    here = Path(__file__).resolve().parent
    try:
        revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                  timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return revision + ("+dirty" if dirty else "") if revision else None


def environment() -> dict[str, Any]:
    from . import __version__

    found = {"rtresponse": __version__, "python": sys.version.split()[0],
             "platform": f"{platform.system()} {platform.machine()}", "packages": package_versions()}
    revision = git_revision()
    if revision:
        found["git"] = revision
    return found


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def table_hash(frame) -> str:
    """SHA-256 of a table's values, index and columns (the training data's fingerprint in a model card)."""
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(json.dumps([str(c) for c in frame.columns]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=True).values.tobytes())
    return digest.hexdigest()


def weights_record(path: str | os.PathLike | None, seed: int | None = None, name: str | None = None) -> dict:
    """{"weights": "random", "seed": N} for seeded random weights, else the file, its SHA-256 (and a name)."""
    if path is None:
        return {"weights": RANDOM, "seed": seed}
    found = {"weights": "file", "file": os.fspath(path), "sha256": sha256_file(path)}
    if name:
        found["name"] = name
    return found


def weights_label(record: Mapping) -> str:
    """One short text for a CSV column: 'random (seed 0)' or 'file <name> sha256 <first 12>'."""
    if record.get("weights") == RANDOM:
        return f"random (seed {record.get('seed')})"
    return f"file {Path(record.get('file', '?')).name} sha256 {str(record.get('sha256', ''))[:12]}"


def plain(value):
    """JSON-friendly settings: paths as text, tuples as lists, numpy scalars as numbers."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def record(command: list | None = None, settings: Mapping | None = None, **details) -> dict:
    """The provenance record: command, settings, what the caller adds (weights, seeds, ...), environment, date."""
    found: dict[str, Any] = {}
    if command is not None:
        found["command"] = [str(part) for part in command]
    if settings is not None:
        found["settings"] = plain(settings)
    found.update({key: plain(value) for key, value in details.items()})
    found["environment"] = environment()
    found["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return found


def note(args, key: str, value) -> None:
    """Add what a command knows to its outputs' provenance (``args`` is the parsed command line)."""
    notes = getattr(args, "provenance", None)
    if notes is None:
        notes = {}
        setattr(args, "provenance", notes)
    notes[key] = plain(value)


def sidecar(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def write(path: str | os.PathLike, found: Mapping) -> Path:
    """Write ``found`` as JSON to ``path`` atomically."""
    from .atomic import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(found, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return Path(path)


def read(path: str | os.PathLike) -> dict | None:
    """The record beside a file (its sidecar) or in a folder; None when there is none."""
    path = Path(path)
    where = path / FOLDER_RECORD if path.is_dir() else sidecar(path)
    if not where.is_file():
        return None
    return json.loads(where.read_text(encoding="utf-8"))
