"""Whole studies from one file: ``rtresponse study init`` writes a paper's protocol as a commented study file,
``rtresponse study run`` runs it step by step (cached, resumable) and writes the report (docs/study.md).

``schema``: the study file's schema, validation and defaults; ``steps``: the step cache; ``run``: the steps of
a study; ``analysis``: one grid analysis (bootstrap, split); ``methods``: the trained methods' analyses (i3d,
residual, recurrence) through their commands' library functions; ``report``, ``report_methods`` and ``figures``:
report.html with its figures and tables;
``scene``: study.mrb; :func:`protocol_text`: the four papers' protocols (``rtresponse/data/studies``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError

STUDIES = Path(__file__).resolve().parents[1] / "data" / "studies"
METHODS = ("tanaka", "jeong", "hua", "kutnar")


def protocol_text(method: str, manifest: str | None = None) -> str:
    """The commented study file of ``method``; with ``manifest``, its cohort is that manifest (not the synthetic one)."""
    if method not in METHODS:
        raise InputError(f"unknown method '{method}' (choose {', '.join(METHODS)})")
    text = (STUDIES / f"{method}.yaml").read_text(encoding="utf-8")
    if manifest is None:
        return text
    lines, kept, inside = text.splitlines(), [], False
    for line in lines:
        if line.startswith("cohort:"):
            inside = True
            kept += ["cohort:", f"  manifest: {manifest}"]
            continue
        if inside and line and not line.startswith((" ", "#")):
            inside = False
        if not inside:
            kept.append(line)
    return "\n".join(kept) + "\n"
