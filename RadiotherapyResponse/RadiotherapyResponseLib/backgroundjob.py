"""An ``rtresponse`` command as a background job of a Slicer module: the GUI thread only polls it.

:class:`BackgroundJob` starts :class:`rtresponse.jobs.Job` in ``PythonSlicer`` and polls it from a timer
(``qt.QTimer`` in Slicer; tests inject their own), handing every JSON progress event to ``onEvent`` and the
:class:`rtresponse.jobs.JobResult` to ``onDone`` once. ``cancel()`` ends the child's whole process tree; the
command's own staging leaves no partial output. Importing this file needs neither Qt nor Slicer.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Callable, Sequence


def slicer_python() -> str:
    """The Python that runs jobs: Slicer's ``PythonSlicer`` (its packages, no GUI), else this interpreter."""
    found = shutil.which("PythonSlicer")
    if found:
        return found
    beside = os.path.join(os.path.dirname(sys.executable), "PythonSlicer" + (".exe" if os.name == "nt" else ""))
    return beside if os.path.isfile(beside) else sys.executable


def hub_environment() -> dict:
    """What the hub's settings tell a job through its environment (the cluster: ``RTRESPONSE_SCHEDULER``); {} when
    the hub module is not loaded (outside Slicer)."""
    hub = sys.modules.get("RadiotherapyResponse")
    if hub is None or not hasattr(hub, "RadiotherapyResponseLogic"):
        return {}
    return hub.RadiotherapyResponseLogic().settings().job_environment()


def job_environment(base: dict | None = None) -> dict:
    """The child's environment: ``base`` (default: this process's, with the hub's settings), with the folder
    holding ``rtresponse`` first on PYTHONPATH: inside Slicer the library is found through the module paths, which
    ``PythonSlicer`` does not search."""
    import rtresponse

    env = dict(os.environ if base is None else base)
    if base is None:
        env.update(hub_environment())
    library = os.path.dirname(os.path.dirname(os.path.abspath(rtresponse.__file__)))
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != library]
    env["PYTHONPATH"] = os.pathsep.join([library] + paths)
    return env


def _qt_timer(interval_ms: int, callback: Callable[[], None]):
    import qt

    timer = qt.QTimer()
    timer.setInterval(interval_ms)
    timer.timeout.connect(callback)
    return timer


class BackgroundJob:
    """Run ``rtresponse <arguments>`` in a child process and report to the GUI through callbacks.

    ``onEvent(event)``: each JSON event (progress, log); ``onDone(result)``: once, with the JobResult
    (state finished / failed / cancelled, message, outputs, files). ``timerFactory(interval_ms, callback)``
    returns an object with ``start()`` and ``stop()`` (default: a ``qt.QTimer``).
    """

    def __init__(self, arguments: Sequence[str], onEvent: Callable[[dict], None] | None = None,
                 onDone: Callable[[object], None] | None = None, python: str | None = None, env: dict | None = None,
                 timerFactory=None, intervalMs: int = 200):
        from rtresponse.jobs import Job

        self.job = Job(arguments, python=python or slicer_python(), env=job_environment(env))
        self.onEvent, self.onDone = onEvent, onDone
        self.timer = (timerFactory or _qt_timer)(intervalMs, self.poll)
        self.result = None

    def start(self) -> "BackgroundJob":
        self.job.start()
        self.timer.start()
        return self

    @property
    def running(self) -> bool:
        return self.result is None

    def poll(self) -> None:
        """Called by the timer: pass on new events; when the child has ended, report how, once."""
        if self.result is not None:
            return
        for event in self.job.poll():
            if self.onEvent:
                self.onEvent(event)
        if self.job.running:
            return
        self.timer.stop()
        self.result = self.job.wait(timeout=10)
        for event in self.job.poll():  # what arrived between the last poll and the end
            if self.onEvent:
                self.onEvent(event)
        if self.onDone:
            self.onDone(self.result)

    def cancel(self) -> None:
        """End the child and its workers (a few seconds at most); onDone then reports 'cancelled'."""
        self.job.cancel()
        self.poll()
