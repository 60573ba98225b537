"""The Run / Cancel / progress panel of a module, bound to one background job at a time.

A module hands its progress bar, status label, Cancel button and Run buttons to a :class:`JobPanel` and calls
:meth:`JobPanel.start` with the ``rtresponse`` command to run and what to do with its results. The panel then

- disables the Run buttons and enables Cancel while the job runs (the rest of the module and the scene stay
  usable: the inputs were exported to the job's folder);
- shows each progress event on the bar (``done`` of ``total``; a busy bar while ``total`` is unknown) and in the
  status label with the stage and the time left (from the elapsed time), and each log line in the label;
- on success checks that the input nodes are still in the scene (:func:`~.sceneguard.missingNodes`), calls
  ``onSuccess(result)`` to load the results as nodes, shows its summary and removes the job folder;
- on failure shows the command's one-line message and keeps the job folder with a ``job.log``;
- on Cancel (the button, :meth:`cancel`, or :meth:`onSceneStartClose`) ends the process tree and shows the
  module's cancelled text; nothing is loaded;
- hands every event to the module's ``onEvent`` too (a training job's ``epoch`` events grow its curves).

Widgets are used only through the attributes PythonQt gives Qt widgets (``value``, ``maximum``, ``visible``,
``text``, ``enabled``) and ``connect("clicked(bool)", slot)``, so tests drive the panel with stand-ins and a
real child process. Needs neither Qt nor Slicer (a BackgroundJob polls with a ``qt.QTimer`` unless given
another ``timerFactory`` in ``jobOptions``).
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

from .backgroundjob import BackgroundJob
from .sceneguard import missingNodes

CANCELLED_TEXT = "Cancelled."
SCENE_CLOSED_TEXT = "Cancelled: the scene was closed, nothing was loaded."


def formatDuration(seconds: float) -> str:
    """``45 s``, ``3 min 05 s``, ``2 h 10 min``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def progressText(event: dict, elapsed: float | None) -> str:
    """``Extracting features: 3 of 10, about 1 min 10 s left (message)`` from a progress event."""
    stage = str(event.get("stage") or "working")
    done, total = int(event.get("done") or 0), event.get("total")
    text = stage[:1].upper() + stage[1:] + (f": {done} of {total}" if total else f": {done}" if done else "...")
    if total and 0 < done < total and elapsed:
        text += f", about {formatDuration(elapsed / done * (total - done))} left"
    if event.get("message"):
        text += f" ({event['message']})"
    return text


class JobPanel:
    """Run / Cancel / progress state of a module, driving one :class:`BackgroundJob` at a time.

    ``runButtons`` are disabled while a job runs (re-enabled after it; ``onChange``, usually the module's
    updateGUI, is then called so the module can disable those its inputs do not allow). ``jobOptions`` go to
    BackgroundJob (``python``, ``env``, ``timerFactory``); ``log(line)`` receives every log line.
    """

    def __init__(self, progressBar, statusLabel, cancelButton, runButtons: Sequence = (),
                 onChange: Callable[[], None] | None = None, jobOptions: dict | None = None,
                 clock: Callable[[], float] = time.monotonic, log: Callable[[str], None] | None = None):
        self.progressBar, self.statusLabel, self.cancelButton = progressBar, statusLabel, cancelButton
        self.runButtons, self.onChange = list(runButtons), onChange
        self.jobOptions, self.clock = dict(jobOptions or {}), clock
        self.log = log or logging.getLogger("RadiotherapyResponse").info
        self.job: BackgroundJob | None = None
        self.result = None            # the last job's JobResult
        self.logLines: list[str] = []  # the current (or last) job's log lines
        self.keptLog = None           # job.log of the last failed job
        self._spec: dict = {}
        self._stage, self._stageStart = None, 0.0
        cancelButton.connect("clicked(bool)", self.cancel)
        self._show(False)

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def start(self, arguments: Sequence[str], description: str, onSuccess: Callable[[object], str | None],
              onFailure: Callable[[object], None] | None = None, folder=None, inputs: Sequence = (), scene=None,
              cancelledText: str = CANCELLED_TEXT, onEvent: Callable[[dict], None] | None = None) -> BackgroundJob:
        """Start ``rtresponse <arguments>`` and show ``description`` until the first progress event.

        ``onSuccess(result)`` loads the results and returns the status text (or None for "Done."); it is not
        called when one of ``inputs`` has left ``scene``. ``folder``: the job's :class:`~.jobfolder.JobFolder`.
        ``onEvent(event)``: every event of the job, after the panel has shown it.
        """
        if self.running:
            raise RuntimeError("a job is already running: wait for it or cancel it")
        self._spec = dict(onSuccess=onSuccess, onFailure=onFailure, folder=folder, inputs=list(inputs), scene=scene,
                          cancelledText=cancelledText, sceneClosed=False, onEvent=onEvent)
        self.logLines, self.keptLog, self.result = [], None, None
        self._stage, self._stageStart = None, self.clock()
        self._show(True)
        self.statusLabel.text = description
        try:
            self.job = job = BackgroundJob(arguments, onEvent=self._onEvent,
                                           onDone=lambda result: self._onDone(job, result), **self.jobOptions)
            job.start()
        except Exception as error:  # e.g. no Python to run the job with: nothing started, nothing to keep
            self.job = None
            self._show(False)
            self.statusLabel.text = f"Failed: could not start the job ({error})"
            if folder is not None:
                folder.remove()
            self._changed()
            raise
        return job

    def cancel(self, *unused) -> None:
        """End the running job and every process it started; the status then says it was cancelled."""
        if self.running:
            self.cancelButton.enabled = False
            self.statusLabel.text = "Cancelling..."
            self.job.cancel()

    def onSceneStartClose(self) -> None:
        """Call from the module's scene StartCloseEvent observer: a running job is cancelled, nothing is loaded."""
        if self.running:
            self._spec["sceneClosed"] = True
            self.cancel()

    # --- events from the job -------------------------------------------------------------------------------------

    def _onEvent(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "progress":
            if event.get("stage") != self._stage:
                self._stage, self._stageStart = event.get("stage"), self.clock()
            total, done = event.get("total"), int(event.get("done") or 0)
            self.progressBar.maximum = int(total) if total else 0  # 0: Qt's busy indicator
            self.progressBar.value = min(done, int(total)) if total else 0
            elapsed = event.get("elapsed")
            if elapsed is None:
                elapsed = self.clock() - self._stageStart
            self.statusLabel.text = progressText(event, elapsed)
        elif kind == "log" and event.get("message"):
            line = str(event["message"])
            self.logLines.append(line)
            self.statusLabel.text = line
            self.log(line)
        if self._spec.get("onEvent") is not None:
            try:
                self._spec["onEvent"](event)
            except Exception:  # noqa: BLE001 - a curve that cannot be drawn must not stop the job's polling
                logging.exception("A job event could not be shown")

    def _onDone(self, job: BackgroundJob, result) -> None:
        spec = self._spec
        self.result = result
        self._show(False)
        folder = spec.get("folder")
        text = None
        if result.state == "finished":
            missing = missingNodes(spec["scene"], spec["inputs"]) if spec["inputs"] else []
            if missing:
                text = (f"Not loaded: {', '.join(missing)} left the scene while the job ran"
                        + (f"; the results are in {folder.path}" if folder is not None else "") + ".")
            else:
                try:
                    text = spec["onSuccess"](result) or "Done."
                except Exception as error:  # noqa: BLE001 - shown, logged with its traceback, folder kept
                    logging.exception("Loading the results of a job failed")
                    text = f"Failed to load the results: {error}"
                    self._keep(job, folder)
                else:
                    if folder is not None:
                        folder.remove()
        elif result.state == "cancelled":
            text = SCENE_CLOSED_TEXT if spec.get("sceneClosed") else spec.get("cancelledText", CANCELLED_TEXT)
            if folder is not None:
                folder.remove()
        else:
            text = f"Failed: {result.message}"
            self._keep(job, folder)
            if spec.get("onFailure"):
                spec["onFailure"](result)
        if self.job is job:  # onSuccess / onFailure may have started the next job: leave its status alone
            failed = result.state == "failed" and self.keptLog
            self.statusLabel.text = text + (f"\nLog: {self.keptLog}" if failed else "")
            self._changed()

    # --- helpers -----------------------------------------------------------------------------------------------

    def _keep(self, job: BackgroundJob, folder) -> None:
        if folder is not None:
            self.keptLog = folder.keep(job.job.command(), self.logLines, job.job.errors)

    def _show(self, running: bool) -> None:
        for button in self.runButtons:
            button.enabled = not running
        self.cancelButton.enabled = running
        self.progressBar.visible = running
        self.progressBar.maximum = 0 if running else 100  # busy until the first progress event
        self.progressBar.value = 0

    def _changed(self) -> None:
        if self.onChange is not None:
            self.onChange()
