"""The notice the modules that predict or recommend show: research use only, not for clinical decisions."""

from __future__ import annotations

RESEARCH_USE_ONLY_TEXT = "Research use only — not for clinical decisions."
RESEARCH_USE_ONLY = (f"<p><b>{RESEARCH_USE_ONLY_TEXT}</b> The predictions and treatment recommendations of this "
                     "extension are not a medical device and have not been validated for patient care.</p>")


def researchUseLabel():
    """A label with the notice, for the top of a module's panel."""
    import qt

    label = qt.QLabel(f"<b>{RESEARCH_USE_ONLY_TEXT}</b>")
    label.objectName = "researchUseOnlyLabel"
    label.toolTip = "Not a medical device: predictions and recommendations have not been validated for patient care."
    label.wordWrap = True
    return label
