"""Commands in a child process as the Slicer modules run them: JSON-lines progress, Cancel, one clear error.

Real child processes (``python -m rtresponse ... --progress jsonl``) on a small synthetic cohort.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import child_env
from rtresponse.jobs import CANCELLED, FAILED, FINISHED, Job, run


@pytest.fixture(scope="module")
def slow_cohort(tmp_path_factory):
    """Enough patients (with perturbed masks) that extraction lasts well beyond its first progress event."""
    from rtresponse.sampledata.synthetic import write_cohort

    return write_cohort(tmp_path_factory.mktemp("jobs") / "cohort", n_patients=12, seed=1)


def _features(manifest, out, *extra) -> list[str]:
    return ["features", "--kind", "handcrafted", "--manifest", str(manifest), "--image", "CT", "--mask", "GTVp",
            "--out", str(out), *extra]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "cohort")


def test_features_stream_json_progress_and_sigterm_ends_them_with_no_output(slow_cohort, tmp_path):
    out = tmp_path / "features.csv"
    command = [sys.executable, "-m", "rtresponse", *_features(slow_cohort, out, "--perturbations", "3"),
               "--progress", "jsonl"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    first = json.loads(child.stdout.readline())
    assert first["event"] == "progress" and first["stage"] == "extracting features"
    assert first["total"] == 12 and 1 <= first["done"] < 12 and {"message", "elapsed"} <= set(first)
    child.send_signal(signal.SIGTERM)
    started = time.monotonic()
    child.wait(30)
    seconds = time.monotonic() - started
    rest = [json.loads(line) for line in child.stdout.read().splitlines() if line.strip()]
    assert seconds < 10, f"SIGTERM took {seconds:.1f} s"
    assert child.returncode == 143
    assert rest[-1] == {"event": "error", "code": 143, "message": "cancelled; nothing was written"}
    assert _leftovers(tmp_path) == []  # no output, no staging folder


def test_a_job_reports_progress_in_order_and_the_files_it_wrote(synthetic_cohort, tmp_path, scene):
    from rtresponse import mrml

    out = tmp_path / "features.csv"
    events = []
    result = run(_features(synthetic_cohort, out), on_event=events.append, env=child_env(), timeout=300)
    assert result.state == FINISHED, result.message
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["done"] for e in progress] == sorted(e["done"] for e in progress) and progress[-1]["done"] == 6
    assert any(e["event"] == "log" and e["message"].startswith(f"wrote {out}") for e in events)
    assert events[-1]["event"] == "result" and result.outputs == {"out": str(out)}
    assert sorted(result.files) == [str(out), str(out) + ".json"]
    table = mrml.dataframe_to_table_node(pd.read_csv(out, dtype={"patient_id": str}), "features", scene)
    assert table.GetNumberOfRows() == 6  # what a module does with the result: a table node


def test_cancel_ends_the_job_within_seconds_and_leaves_nothing(slow_cohort, tmp_path):
    job = Job(_features(slow_cohort, tmp_path / "features.csv", "--perturbations", "3", "--jobs", "2"),
              env=child_env()).start()
    deadline = time.monotonic() + 120
    while not any(e["event"] == "progress" for e in job.poll()):
        assert job.running and time.monotonic() < deadline, "no progress event"
        time.sleep(0.05)
    started = time.monotonic()
    job.cancel()
    result = job.wait()
    assert time.monotonic() - started < 10
    assert result.state == CANCELLED and not job.running
    assert _leftovers(tmp_path) == []


def test_a_failing_job_gives_the_commands_one_line_message(synthetic_cohort, tmp_path):
    result = run(["features", "--kind", "handcrafted", "--manifest", str(synthetic_cohort), "--image", "CT",
                  "--mask", "nowhere", "--out", str(tmp_path / "f.csv")], env=child_env(), timeout=120)
    assert result.state == FAILED and result.code == 2
    assert result.message.startswith("error: ") and "no column mask_nowhere" in result.message
    assert "Traceback" not in result.message and "\n" not in result.message
    assert _leftovers(tmp_path) == []


def test_commands_without_outputs_speak_json_too(synthetic_cohort):
    events = []
    result = run(["validate", "--manifest", str(synthetic_cohort), "--quick"], on_event=events.append, env=child_env(),
                 timeout=120)
    assert result.state == FINISHED, result.message
    assert events[-1]["event"] == "result"
    assert any(e["event"] == "log" and "no problems found" in e["message"] for e in events)
