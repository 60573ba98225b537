"""A job's own folder: scene inputs go in, the command's results come out, and it goes away when done.

One new folder per job (never reused, so two jobs never see each other's files) under Slicer's temporary
folder (Application Settings > General > Temporary directory) or, outside Slicer, the system's. It is removed
once the results are in the scene, or after a Cancel; after a failure it is kept with ``job.log`` (the command,
its log lines and its error output) so that the user can read what happened. Needs neither Qt nor Slicer.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

JOBS_SUBFOLDER = "RadiotherapyResponse-jobs"
LOG_NAME = "job.log"


def defaultRoot() -> Path:
    """``<Slicer's temporary folder>/RadiotherapyResponse-jobs`` in Slicer, else under the system's temp folder."""
    try:
        import slicer

        base = slicer.app.temporaryPath
    except (ImportError, AttributeError):  # outside the application (tests, PythonSlicer)
        base = tempfile.gettempdir()
    return Path(base) / JOBS_SUBFOLDER


class JobFolder:
    """A new, empty folder for one job: ``path``; :meth:`remove` when done, :meth:`keep` after a failure."""

    def __init__(self, prefix: str = "job", root: str | os.PathLike | None = None):
        root = Path(root) if root is not None else defaultRoot()
        root.mkdir(parents=True, exist_ok=True)
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in prefix) or "job"
        self.path = Path(tempfile.mkdtemp(prefix=f"{safe}-", dir=str(root)))

    def __repr__(self) -> str:
        return f"JobFolder({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def exists(self) -> bool:
        return self.path.is_dir()

    def remove(self) -> None:
        """Delete the folder and everything in it (the results are in the scene, or were not wanted)."""
        shutil.rmtree(self.path, ignore_errors=True)

    def keep(self, command: Sequence[str] = (), logLines: Iterable[str] = (), errorLines: Iterable[str] = ()) -> Path:
        """Leave the folder in place with a ``job.log``; returns the log's path."""
        self.path.mkdir(parents=True, exist_ok=True)
        log = self.path / LOG_NAME
        parts = ["command: " + " ".join(str(c) for c in command), "", "log:", *logLines, "", "errors:", *errorLines]
        log.write_text("\n".join(str(p) for p in parts) + "\n", encoding="utf-8")
        return log
