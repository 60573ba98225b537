"""Run an ``rtresponse`` command in a child process: progress events as it runs, Cancel, one clear error.

This is how the Slicer modules keep the GUI thread free (no Qt here: a module polls :meth:`Job.poll` from a
``QTimer``; in Slicer ``python`` is ``PythonSlicer``). The child runs ``python -m rtresponse <command> ...
--progress jsonl`` (the contract is in :mod:`rtresponse.progress`) in its own process group, so Cancel
ends it and every worker it started; the command's staging (:mod:`rtresponse.outputs`) guarantees that a
cancelled or failed run leaves no partial output.

    job = Job(["features", "--kind", "handcrafted", ..., "--out", "F.csv"]).start()
    while job.running:
        for event in job.poll():
            ...  # {"event": "progress", "stage": ..., "done": ..., "total": ...}
    result = job.wait()   # JobResult(state="finished", files=[...]) / "failed" with message / "cancelled"
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Sequence

RUNNING, FINISHED, FAILED, CANCELLED = "running", "finished", "failed", "cancelled"


@dataclass
class JobResult:
    state: str                                   # finished, failed or cancelled
    code: int | None                             # the child's exit code
    message: str = ""                            # why it failed: the command's own one-line message
    outputs: dict = field(default_factory=dict)  # option -> final path
    files: list = field(default_factory=list)    # every file written


class Job:
    """One ``rtresponse`` command in a child process."""

    def __init__(self, arguments: Sequence[str], python: str | None = None, env: dict | None = None,
                 cwd: str | os.PathLike | None = None):
        self.arguments = [str(a) for a in arguments]
        self.python = python or sys.executable
        self.env, self.cwd = env, cwd
        self.process: subprocess.Popen | None = None
        self.events: "queue.Queue[dict]" = queue.Queue()
        self.errors: list[str] = []          # the child's stderr lines (the last ones explain a failure)
        self.last: dict | None = None        # the final result or error event
        self.cancelled = False
        self._readers: list[threading.Thread] = []

    def command(self) -> list[str]:
        arguments = list(self.arguments)
        if "--progress" not in arguments:
            arguments += ["--progress", "jsonl"]
        return [self.python, "-m", "rtresponse", *arguments]

    def start(self) -> "Job":
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env["PYTHONIOENCODING"] = "utf-8"  # the child writes UTF-8 whatever the locale; read as such below
        self.process = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        encoding="utf-8", errors="replace", bufsize=1, env=env, cwd=self.cwd,
                                        **_new_process_group())
        self._readers = [threading.Thread(target=self._read_events, daemon=True),
                         threading.Thread(target=self._read_errors, daemon=True)]
        for reader in self._readers:
            reader.start()
        return self

    def _read_events(self) -> None:
        for line in self.process.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:  # a library printing on its own: keep it as a log line
                event = {"event": "log", "message": line}
            if event.get("event") in ("result", "error"):
                self.last = event
            self.events.put(event)

    def _read_errors(self) -> None:
        for line in self.process.stderr:
            self.errors.append(line.rstrip("\n"))
            del self.errors[:-200]

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def poll(self) -> list[dict]:
        """The events that arrived since the last call (never blocks)."""
        found = []
        while True:
            try:
                found.append(self.events.get_nowait())
            except queue.Empty:
                return found

    def cancel(self, grace: float = 5.0) -> None:
        """End the child and every process it started: SIGTERM (it cleans up), then SIGKILL after ``grace`` s."""
        if not self.running:
            return
        self.cancelled = True
        _signal_group(self.process, signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            _signal_group(self.process, getattr(signal, "SIGKILL", signal.SIGTERM))
            self.process.wait()

    def wait(self, timeout: float | None = None) -> JobResult:
        """Wait for the child to end (cancelling it after ``timeout`` seconds) and say how it ended."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.cancel()
        for reader in self._readers:
            reader.join(5)
        return self.result()

    def result(self) -> JobResult:
        code = self.process.returncode
        last = self.last or {}
        if self.cancelled:
            return JobResult(CANCELLED, code, "cancelled; nothing was written")
        if code == 0 and last.get("event") == "result":
            return JobResult(FINISHED, code, outputs=last.get("outputs", {}), files=last.get("files", []))
        return JobResult(FAILED, code, self.failure_message(code))

    def failure_message(self, code: int | None) -> str:
        """The command's own message (``rtresponse: error: ...``), else the last line it wrote, never a traceback."""
        for line in reversed(self.errors):
            if line.startswith("rtresponse: "):
                return line[len("rtresponse: "):]
        last = self.last or {}
        if last.get("message"):
            return str(last["message"])
        lines = [line for line in self.errors if line.strip()]
        return lines[-1] if lines else f"the command ended with exit code {code}"


def run(arguments: Sequence[str], on_event=None, timeout: float | None = None, **options) -> JobResult:
    """Run a command to the end in a child process, handing each event to ``on_event`` (a terminal's helper)."""
    job = Job(arguments, **options).start()
    started = time.monotonic()
    while job.running:
        for event in job.poll():
            if on_event:
                on_event(event)
        if timeout is not None and time.monotonic() - started > timeout:
            job.cancel()
            break
        time.sleep(0.05)
    result = job.wait()
    for event in job.poll():
        if on_event:
            on_event(event)
    return result


def _new_process_group() -> dict:
    if os.name == "nt":  # pragma: no cover - Windows: a new group so that the child's workers end with it
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def _signal_group(process: subprocess.Popen, signum) -> None:
    try:
        if os.name == "nt":  # pragma: no cover
            process.send_signal(signal.CTRL_BREAK_EVENT if signum == signal.SIGTERM else signum)
        else:
            os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
