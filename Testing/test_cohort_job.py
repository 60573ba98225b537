"""The hub's Validate as a background job (RadiotherapyResponseLib.cohortjob): a real ``rtresponse validate`` child
on a small synthetic cohort finishes with its patients; on a broken one it fails and its problems, naming the patient
and the file, come back from the job's log lines."""

from __future__ import annotations

import sys

from conftest import LIBRARY
from jobstandins import spin
from jobstandins import panel  # noqa: F401  (a fixture)

sys.path.insert(0, str(LIBRARY))  # RadiotherapyResponseLib sits beside the module files
from RadiotherapyResponseLib import cohortjob  # noqa: E402


def test_problem_lines_and_text():
    lines = ["P001: image_CT file not found: a.nrrd", "", "P002: mask_GTVp is empty", "2 problem(s) in m.csv"]
    problems = cohortjob.problemLines(lines)
    assert problems == lines[:1] + lines[2:3]
    assert cohortjob.problemsText(problems) == "2 problem(s):\n" + "\n".join(problems)
    assert cohortjob.problemsText([f"p{i}" for i in range(25)], shown=20).endswith("\n... and 5 more")


def test_a_validate_job_lists_the_patients_or_the_problems(panel, tmp_path):
    import pandas as pd

    from rtresponse.sampledata.synthetic import write_cohort

    manifest = write_cohort(tmp_path / "cohort", n_patients=3, seed=0, size=(48, 48, 16))
    done = []
    panel.panel.start(cohortjob.validateArguments(manifest), "Validating...",
                      lambda result: done.append(cohortjob.patientIds(manifest)) or "ok")
    spin(120)
    assert panel.panel.result.state == "finished", panel.label.text
    assert done == [["P001", "P002", "P003"]]

    frame = pd.read_csv(manifest, dtype=str)
    frame.loc[1, "image_CT"] = "P002/missing.nrrd"
    broken = tmp_path / "cohort" / "broken.csv"
    frame.to_csv(broken, index=False)
    failed = []
    panel.panel.start(cohortjob.validateArguments(broken), "Validating...", lambda result: "unexpected",
                      onFailure=lambda result: failed.append(cohortjob.problemLines(panel.panel.logLines)))
    spin(120)
    assert panel.panel.result.state == "failed"
    [problems] = failed
    assert len(problems) == 1 and "P002" in problems[0] and "missing.nrrd" in problems[0], problems
