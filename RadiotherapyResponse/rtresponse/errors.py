"""Errors that carry the *what* and *where* of a problem so users get one clear message."""

from __future__ import annotations


class RTResponseError(Exception):
    """Base class of every error rtresponse raises on purpose."""


class Cancelled(RTResponseError):
    """The caller asked to stop (a Cancel button); nothing partial was written or added."""


class InputError(RTResponseError, ValueError):
    """Bad input: names the patient, file, column or node at fault and what is wrong.

    ``str(error)`` is a single line such as
    ``patient P003, column mask_GTVp (/data/P003/gtv.nrrd): mask is empty``.
    """

    def __init__(self, problem: str, *, patient: str | None = None, column: str | None = None,
                 path: str | None = None, node: str | None = None):
        self.problem = problem
        self.patient = patient
        self.column = column
        self.path = None if path is None else str(path)
        self.node = node
        super().__init__(self._format())

    def where(self) -> str:
        parts = []
        if self.patient is not None:
            parts.append(f"patient {self.patient}")
        if self.column is not None:
            parts.append(f"column {self.column}")
        if self.node is not None:
            parts.append(f"node '{self.node}'")
        where = ", ".join(parts)
        if self.path is not None:
            where = f"{where} ({self.path})" if where else self.path
        return where

    def _format(self) -> str:
        where = self.where()
        return f"{where}: {self.problem}" if where else self.problem
