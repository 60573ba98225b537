"""What a module's job panel sees in Slicer, without Qt: widgets with plain attributes and a timer the test spins.

Shared by the tests of the modules that run background jobs (Tumor Features, Recurrence Volume, Residual Tumor).
"""

from __future__ import annotations

import time

import pytest


class Widget:
    """A QPushButton / QLabel / QProgressBar as PythonQt shows it; remembers every value it was given."""

    def __init__(self):
        self.__dict__.update(enabled=True, visible=True, text="", value=0, maximum=100, history=[], slots=[])

    def __setattr__(self, name, value):
        self.history.append((name, value))
        super().__setattr__(name, value)

    def connect(self, signal, slot):
        self.slots.append((signal, slot))

    def click(self):
        for signal, slot in self.slots:
            if signal == "clicked(bool)":
                slot(False)


class Timer:
    timers: list = []

    def __init__(self, interval_ms, callback):
        self.callback, self.active = callback, False
        Timer.timers.append(self)

    def start(self):
        self.active = True

    def stop(self):
        self.active = False


def spin(seconds: float, until=lambda: False) -> None:
    """What Slicer's event loop does meanwhile: fire the active timers."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not until():
        active = [timer for timer in Timer.timers if timer.active]
        if not active:
            return
        for timer in active:
            timer.callback()
        time.sleep(0.02)


def stop_all() -> None:
    """Cancel every job a test left running (through its BackgroundJob's timer) and forget the timers."""
    for timer in Timer.timers:
        if timer.active:
            timer.callback.__self__.cancel()
    Timer.timers = []


class StandInPanel:
    """A module's JobPanel with Run and Train buttons on stand-ins, running real child processes of this checkout."""

    def __init__(self):
        import sys

        from conftest import child_env
        from RadiotherapyResponseLib.jobpanel import JobPanel

        self.bar, self.label, self.cancel, self.run, self.train = Widget(), Widget(), Widget(), Widget(), Widget()
        self.panel = JobPanel(self.bar, self.label, self.cancel, [self.run, self.train],
                              jobOptions=dict(python=sys.executable, env=child_env(), timerFactory=Timer))


@pytest.fixture
def panel():
    """A stand-in job panel whose timers are stopped after the test (import it into a test module to use it)."""
    Timer.timers = []
    yield StandInPanel()
    stop_all()
