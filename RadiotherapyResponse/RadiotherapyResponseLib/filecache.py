"""Reading a file the widgets describe (a cohort manifest, a model file) once per version of the file, not at every
GUI update. No Qt, no Slicer."""

from __future__ import annotations

import os
from typing import Callable


def fileVersion(path):
    """What changes when the file at ``path`` changes (None when it cannot be read)."""
    try:
        return (path, os.path.getmtime(path), os.path.getsize(path))
    except OSError:
        return None


class PerFileVersion:
    """``reader(path)`` called once per version of the file: its value, or the problem as one line (a str), or
    None while a Python package it needs is missing (ImportError: read again after :meth:`forget`).
    ``changed`` tells whether the last call read a new version."""

    def __init__(self, reader: Callable[[str], object], problem: str = "The file cannot be used"):
        self.reader, self.problem = reader, problem
        self.version = self.value = None
        self.changed = False

    def __call__(self, path: str):
        version = fileVersion(path) if path else None
        self.changed = version is not None and version != self.version
        if version is None:
            return None
        if self.changed:
            try:
                value = self.reader(path)
            except ImportError:
                value = None
            except Exception as error:  # noqa: BLE001 - any unusable file: one line on the label
                value = f"{self.problem}: {error}"
            self.version, self.value = version, value
        return self.value

    def forget(self) -> None:
        self.version = self.value = None
