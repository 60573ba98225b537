"""The hub's *Validate*: ``rtresponse validate`` reads every image and mask of a cohort manifest (minutes for a large
cohort), so it runs as a background job; the problems it prints come back as the job's log lines. No Qt, no Slicer.
"""

from __future__ import annotations

import re

SHOWN_PROBLEMS = 20
_SUMMARY = re.compile(r"^\d+ problem\(s\) in ")  # validate's last line (stderr), not a problem itself


def validateArguments(manifest) -> list[str]:
    return ["validate", "--manifest", str(manifest)]


def problemLines(logLines) -> list[str]:
    """The problems among a validate job's log lines (one per line, as the command prints them)."""
    return [line for line in logLines if line.strip() and not _SUMMARY.match(line)]


def problemsText(problems, shown: int = SHOWN_PROBLEMS) -> str:
    more = f"\n... and {len(problems) - shown} more" if len(problems) > shown else ""
    return f"{len(problems)} problem(s):\n" + "\n".join(problems[:shown]) + more


def patientIds(manifest) -> list[str]:
    """The manifest's patient ids (its files are not read again: the job has just checked them)."""
    from rtresponse.cohort import load_manifest

    return list(load_manifest(manifest, check_files=False).patient_ids)
