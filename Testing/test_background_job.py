"""The modules' background-job adapter, driven by a stand-in timer outside Slicer (no Qt)."""

from __future__ import annotations

import sys
import time

from conftest import LIBRARY, child_env

sys.path.insert(0, str(LIBRARY))  # RadiotherapyResponseLib sits beside the module files
from RadiotherapyResponseLib.backgroundjob import BackgroundJob  # noqa: E402


class FakeTimer:
    """What the GUI event loop does with a QTimer: call back while started."""

    def __init__(self, interval_ms, callback):
        self.callback, self.active = callback, False

    def start(self):
        self.active = True

    def stop(self):
        self.active = False

    def spin(self, seconds: float, until=lambda: False):
        deadline = time.monotonic() + seconds
        while self.active and time.monotonic() < deadline and not until():
            self.callback()
            time.sleep(0.02)


def _job(arguments, events, done):
    timers = []

    def factory(interval, callback):
        timers.append(FakeTimer(interval, callback))
        return timers[-1]

    job = BackgroundJob(arguments, onEvent=events.append, onDone=done.append, python=sys.executable,
                        env=child_env(), timerFactory=factory)
    return job, timers[0]


def test_the_adapter_reports_progress_then_the_result_once(synthetic_cohort, tmp_path):
    events, done = [], []
    out = tmp_path / "f.csv"
    job, timer = _job(["features", "--kind", "handcrafted", "--manifest", str(synthetic_cohort), "--image", "CT",
                       "--mask", "GTVp", "--out", str(out)], events, done)
    job.start()
    assert timer.active and job.running
    timer.spin(300)
    assert not timer.active and not job.running
    assert len(done) == 1 and done[0].state == "finished", done and done[0].message
    assert [e["done"] for e in events if e["event"] == "progress"][-1] == 6
    assert out.is_file()
    job.poll()
    assert len(done) == 1  # reported once


def test_cancel_from_the_gui_reports_cancelled_and_leaves_no_output(synthetic_cohort, tmp_path):
    events, done = [], []
    job, timer = _job(["features", "--kind", "handcrafted", "--manifest", str(synthetic_cohort), "--image", "CT",
                       "--mask", "GTVp", "--perturbations", "4", "--out", str(tmp_path / "f.csv")], events, done)
    job.start()
    timer.spin(120, until=lambda: any(e["event"] == "progress" for e in events))
    job.cancel()
    assert len(done) == 1 and done[0].state == "cancelled" and not timer.active
    assert list(tmp_path.iterdir()) == []


def test_jobs_started_in_slicer_follow_the_hubs_cluster_setting(monkeypatch):
    """The hub's *Cluster* setting reaches every job as RTRESPONSE_SCHEDULER (the cohort commands' --scheduler
    default); a job given its own environment, and any job outside Slicer, are left alone."""
    import types

    from rtresponse.settings import SCHEDULER_ENV, Settings
    from RadiotherapyResponseLib.backgroundjob import hub_environment, job_environment

    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    assert hub_environment() == {} and SCHEDULER_ENV not in job_environment()  # no hub module: outside Slicer
    settings = Settings(scheduler="tcp://cluster.example:8786")
    logic = types.SimpleNamespace(settings=lambda: settings)
    monkeypatch.setitem(sys.modules, "RadiotherapyResponse",
                        types.SimpleNamespace(RadiotherapyResponseLogic=lambda: logic))
    assert job_environment()[SCHEDULER_ENV] == "tcp://cluster.example:8786"
    assert SCHEDULER_ENV not in job_environment({"PATH": "/bin"})
    settings = Settings(scheduler="")
    assert job_environment()[SCHEDULER_ENV] == ""  # this computer
