"""A resumable bootstrap grid: the finished cells of one evaluation, kept in a file as each finishes.

``rtresponse evaluate`` writes its outputs as one set at the end; its grid cells are long. :class:`CellCache`
appends every finished cell to a JSON-lines file (``OUT/.partial/cells.jsonl``), which an interrupted run leaves
behind, so that ``evaluate --resume`` with the same inputs and settings takes those cells from it and computes only
the others. The file's first line names the run: a hash of every feature set's values, the outcome, the settings
that change a cell's result and the rtresponse version (:func:`run_key`). A file of another run is never used
(:attr:`CellCache.stale` says why). The cells are stored exactly (floats as their shortest round-trip text), so a
resumed run's results equal an uninterrupted run's. A torn last line (a killed process) is ignored.

JSON, not pickle: a results folder is data, and reading it never runs code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Mapping

import numpy as np

FORMAT = "rtresponse-evaluate-cells"
PARTIAL = ".partial"         # the folder, inside the output folder, of an unfinished run's progress
CELLS = "cells.jsonl"


def run_key(feature_sets: Mapping[str, "object"], outcome: "object", settings: Mapping) -> str:
    """SHA-256 (hex, 16 digits) of the feature sets' values, the outcome, ``settings`` and the rtresponse version."""
    import pandas as pd

    from .. import __version__
    from ..provenance import plain, table_hash

    digest = hashlib.sha256()
    digest.update(json.dumps({"rtresponse": __version__, "settings": plain(dict(settings))}, sort_keys=True).encode())
    for name, frame in feature_sets.items():
        digest.update(json.dumps(str(name)).encode())
        digest.update(table_hash(frame).encode())
    series = pd.Series(outcome)
    digest.update(table_hash(series.astype(str).to_frame("outcome")).encode())
    return digest.hexdigest()[:16]


def _encode(result) -> dict:
    chosen, found = result
    values = {}
    for item in dataclasses.fields(found):
        value = getattr(found, item.name)
        values[item.name] = np.asarray(value, dtype=float).tolist() if isinstance(value, np.ndarray) else (
            value.item() if isinstance(value, np.generic) else value)
    return {"features": [str(c) for c in chosen], "result": values}


def _decode(record: dict):
    from ..evaluation.bootstrap import BootstrapResult

    arrays = {item.name for item in dataclasses.fields(BootstrapResult) if "ndarray" in str(item.type)}
    values = {name: np.asarray(value, dtype=float) if name in arrays else value
              for name, value in record["result"].items()}
    return list(record["features"]), BootstrapResult(**values)


class CellCache:
    """The finished grid cells of one run (``key``) in ``folder/cells.jsonl``.

    ``resume``: take the cells an earlier run with the same key left there; otherwise (or when the key differs) the
    file is started afresh at the first cell put. :meth:`view` gives the ``get``/``put`` object
    :func:`rtresponse.models.grid.run_grid` takes for one feature set. ``reused`` and ``computed`` count cells.
    """

    def __init__(self, folder: str | os.PathLike, key: str, resume: bool = False):
        self.folder, self.key = Path(folder), key
        self.path = self.folder / CELLS
        self.cells: dict[str, dict] = {}
        self.found = self.path.is_file()   # an earlier run's progress is there
        self.stale = ""                     # why it was not used ("" when used or absent)
        self.reused = self.computed = 0
        self._started = False
        if resume and self.found:
            self._read()
            if self.stale:
                self.cells.clear()

    def _read(self) -> None:
        with open(self.path, encoding="utf-8") as file:
            lines = file.read().split("\n")
        try:
            header = json.loads(lines[0])
        except (json.JSONDecodeError, IndexError):
            header = {}
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            self.stale = "it is not an evaluate progress file"
            return
        if header.get("run") != self.key:
            self.stale = "it was made with other inputs or settings"
            return
        for line in lines[1:]:
            try:
                record = json.loads(line)
                self.cells[record["cell"]] = record
            except (json.JSONDecodeError, KeyError, TypeError):
                break  # a torn last line: the cells before it stand
        self._started = True  # append to it

    @staticmethod
    def _name(feature_set: str, key) -> str:
        return json.dumps([str(feature_set), *[k if isinstance(k, (int, str)) else str(k) for k in key]])

    def get(self, feature_set: str, key):
        record = self.cells.get(self._name(feature_set, key))
        if record is None:
            return None
        self.reused += 1
        return _decode(record)

    def put(self, feature_set: str, key, result) -> None:
        self.computed += 1
        record = {"cell": self._name(feature_set, key), **_encode(result)}
        if not self._started:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", encoding="utf-8") as file:
                file.write(json.dumps({"format": FORMAT, "version": 1, "run": self.key}) + "\n")
            self._started = True
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")
            file.flush()
            os.fsync(file.fileno())

    def view(self, feature_set: str) -> "_SetView":
        return _SetView(self, feature_set)


class _SetView:
    """One feature set's cells: the ``get(key)`` / ``put(key, result)`` of ``run_grid(cell_cache=...)``."""

    def __init__(self, cache: CellCache, feature_set: str):
        self.cache, self.feature_set = cache, feature_set

    def get(self, key):
        return self.cache.get(self.feature_set, key)

    def put(self, key, result) -> None:
        self.cache.put(self.feature_set, key, result)
