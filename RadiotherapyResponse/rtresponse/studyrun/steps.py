"""Steps cached by what they depend on: a re-run recomputes only the steps whose inputs or settings changed.

A step's key is the SHA-256 of its kind, its settings, the keys of the steps it reads (or the fingerprint of
the files it reads) and the rtresponse version. Its outputs live in ``cache/<kind>-<name>-<key>/``, written
in a staging folder and renamed into place with ``step.json`` when complete: an interrupted step leaves
nothing, a completed one is reused by every later run with the same key.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from ..errors import RTResponseError

STEP_RECORD = "step.json"
COMPUTED, REUSED, FAILED, SKIPPED, NOT_SUPPORTED = "computed", "reused", "failed", "skipped", "not supported"


@dataclass
class Step:
    kind: str
    name: str
    key: str
    status: str
    seconds: float = 0.0
    folder: str | None = None
    message: str = ""
    summary: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in (COMPUTED, REUSED)

    @property
    def path(self) -> Path:
        return Path(self.folder)

    def record(self) -> dict:
        return asdict(self)


def step_key(kind: str, settings: Mapping, inputs: Mapping) -> str:
    from .. import __version__
    from ..provenance import plain

    text = json.dumps({"kind": kind, "settings": plain(settings), "inputs": plain(inputs), "rtresponse": __version__},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(text))


class StepCache:
    """Runs steps in ``root`` (the study folder's ``cache``), reusing completed ones; keeps the list of this run's."""

    def __init__(self, root: str | Path, log: Callable[[str], None] = print):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_staging()
        self.log = log
        self.steps: list[Step] = []

    def _remove_staging(self) -> None:
        """Staging folders an interrupted or killed run left (``.<step>-*``): never a step, always safe to remove
        (one run at a time per study folder)."""
        import shutil

        for item in self.root.iterdir():
            if item.name.startswith(".") and item.is_dir():
                shutil.rmtree(item, ignore_errors=True)

    def run(self, kind: str, name: str, settings: Mapping, inputs: Mapping,
            compute: Callable[[Path], dict | None]) -> Step:
        """The step's outputs: reused when ``cache/<kind>-<name>-<key>`` is complete, else ``compute(folder)``.

        ``compute`` writes into the folder it is given and returns a small JSON-friendly summary. A problem
        with the data (:class:`RTResponseError`) or a bug fails this step only: it is recorded with its message
        and the run goes on; an interruption (Ctrl-C, SIGTERM) propagates and leaves no half step.
        """
        from ..atomic import atomic_directory
        from ..provenance import plain, record

        key = step_key(kind, settings, inputs)
        folder = self.root / f"{_safe(kind)}-{_safe(name)}-{key}"
        marker = folder / STEP_RECORD
        if marker.is_file():
            stored = json.loads(marker.read_text(encoding="utf-8"))
            step = Step(kind, name, key, REUSED, 0.0, str(folder), summary=stored.get("summary") or {})
            self.log(f"{kind} {name}: reused ({key})")
            self.steps.append(step)
            return step
        start = time.monotonic()
        self.log(f"{kind} {name}: computing ({key})")
        try:
            with atomic_directory(folder, overwrite=True) as tmp:
                summary = plain(compute(Path(tmp)) or {})
                details = record(settings=settings, kind=kind, name=name, key=key, inputs=inputs, summary=summary)
                details["seconds"] = round(time.monotonic() - start, 3)
                (Path(tmp) / STEP_RECORD).write_text(json.dumps(details, indent=1) + "\n", encoding="utf-8")
        except RTResponseError as error:
            return self._failed(kind, name, key, start, str(error))
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:  # noqa: BLE001 - one failing step must not stop the study
            traceback.print_exc(file=sys.stderr)
            return self._failed(kind, name, key, start, f"internal error: {type(error).__name__}: {error}")
        step = Step(kind, name, key, COMPUTED, round(time.monotonic() - start, 3), str(folder), summary=summary)
        self.log(f"{kind} {name}: computed in {step.seconds:.1f} s")
        self.steps.append(step)
        return step

    def _failed(self, kind, name, key, start, message) -> Step:
        step = Step(kind, name, key, FAILED, round(time.monotonic() - start, 3), None, message)
        self.log(f"{kind} {name}: FAILED: {message}")
        self.steps.append(step)
        return step

    def note(self, kind: str, name: str, status: str, message: str) -> Step:
        """A step this run did not compute (skipped for a failed input, or a protocol not supported yet)."""
        step = Step(kind, name, "", status, 0.0, None, message)
        self.log(f"{kind} {name}: {status}: {message}")
        self.steps.append(step)
        return step
