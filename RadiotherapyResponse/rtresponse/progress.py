"""Progress of long commands: a bar with ETA on a terminal, or JSON lines for programs (``--progress jsonl``).

The JSON-lines contract (one object per line on stdout; the Slicer modules' job runner reads it):

``{"event": "progress", "stage": "extracting features", "done": 3, "total": 10, "message": "", "elapsed": 1.2}``
    a stage advanced (``total`` may be null when unknown);
``{"event": "log", "message": "..."}``
    a line the command would have printed (epoch summaries, "wrote ...");
``{"event": "epoch", "stage": "training", "epoch": 3, "train_loss": 0.41, "validation_dice": 0.52, ...}``
    a training command finished an epoch (``recurrence train``, ``residual train``, ``residual segmenter``): the
    epoch's record as the command tabulates it in ``history.csv``: ``epoch``, ``train_loss``, the validation
    metric(s) (``validation_dice``, or ``validation_loss`` and ``validation_auc``) and what tells the curves apart
    (``run``; ``network`` and ``regimen``; ``architecture``). Numbers are plain JSON numbers (NaN as null);
``{"event": "result", "code": 0, "outputs": {"out": "/path"}, "files": [...]}``
    the command finished and its outputs are in place (``files``: what was written);
``{"event": "error", "code": 2, "message": "..."}``
    the command failed or was cancelled; nothing was written.

Library functions take plain callbacks (``progress(done, total)``); :class:`Bar` is such a callback.
"""

from __future__ import annotations

import io
import json
import sys
import time
from typing import Callable, TextIO

BAR, JSONL, NONE = "bar", "jsonl", "none"
MODES = (BAR, JSONL, NONE)


class _Settings:
    mode = BAR
    stream: TextIO | None = None  # where JSON lines go: the real stdout, captured before any redirection


def configure(mode: str = BAR, stream: TextIO | None = None) -> None:
    """Choose how progress is shown for this process (the CLI does this from ``--progress``)."""
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {', '.join(MODES)}, got '{mode}'")
    _Settings.mode = mode
    _Settings.stream = stream if stream is not None else sys.stdout


def mode() -> str:
    return _Settings.mode


def emit(event: str, **fields) -> None:
    """Write one JSON line (jsonl mode only)."""
    if _Settings.mode != JSONL:
        return
    stream = _Settings.stream or sys.__stdout__
    stream.write(json.dumps({"event": event, **fields}, default=str) + "\n")
    stream.flush()


def epoch(record: dict, stage: str = "training") -> None:
    """A training epoch's record as an ``epoch`` event (jsonl mode only; NaN, e.g. no validation patients, as null)."""
    if _Settings.mode != JSONL:
        return
    fields = {key: (None if isinstance(value, float) and value != value else value) for key, value in record.items()
              if key != "stage"}
    emit("epoch", stage=stage, **fields)


class Bar:
    """A ``progress(done, total)`` callback for one stage: a tqdm bar with ETA on a terminal, or JSON lines."""

    def __init__(self, stage: str, unit: str = "patient"):
        self.stage, self.unit = stage, unit
        self.bar = None
        self.start = time.monotonic()
        self.last_emit = 0.0

    def __call__(self, done: int, total: int | None, message: str = "") -> None:
        if _Settings.mode == JSONL:
            now = time.monotonic()
            # every step of short stages; at most 10 lines a second for long ones
            if done in (0, total) or now - self.last_emit >= 0.1 or message:
                self.last_emit = now
                emit("progress", stage=self.stage, done=done, total=total, message=message,
                     elapsed=round(now - self.start, 3))
            return
        if _Settings.mode == NONE:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.stage, unit=self.unit, file=sys.stderr,
                            disable=not sys.stderr.isatty())
        if total is not None and self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)
        if message:
            self.bar.set_postfix_str(message, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class LineStream(io.TextIOBase):
    """A text stream that hands every complete line to ``send`` as soon as it is written."""

    def __init__(self, send: Callable[[str], None]):
        super().__init__()
        self.send, self.pending = send, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.send(line)
        return len(text)

    def flush(self) -> None:
        if self.pending:
            line, self.pending = self.pending, ""
            self.send(line)
