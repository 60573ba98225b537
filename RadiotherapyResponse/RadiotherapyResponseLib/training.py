"""Training on a cohort from a module: the output folder, the job with its live curves, the trained model's card.

A module's *Train on a cohort* section runs ``rtresponse ... train`` as a background job on the module's
:class:`~.jobpanel.JobPanel` (:func:`startTraining`): the job's ``epoch`` events grow a table node and a plot chart
(:class:`~.trainingcurves.TrainingCurves`), Cancel ends it leaving no model (the command's staging), and when it
has finished the module puts the new model file in its model selector and shows its model card
(:func:`cardSummary` of the ``model_card.json`` the command writes beside it). Models go to a new sub-folder of
the hub's *Models folder* unless the user names one (:func:`defaultOutputFolder`). No Qt, no Slicer.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

from .trainingcurves import TrainingCurves

CARD_FILE = "model_card.json"
CANCELLED_TEXT = "Cancelled: no model was saved."


def defaultOutputFolder(modelsFolder, prefix: str, now: float | None = None) -> Path:
    """``<modelsFolder>/<prefix>-YYYYMMDD-HHMMSS`` (``-2``, ``-3``... when it exists): a new folder per training."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    base = Path(modelsFolder).expanduser() / f"{prefix}-{stamp}"
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return folder


def outputProblem(folder) -> str | None:
    """Why training cannot write to ``folder`` (a file, or a folder that already holds files); None when it can."""
    folder = Path(folder)
    if folder.is_file():
        return f"The output folder is a file: {folder}."
    if folder.is_dir() and any(folder.iterdir()):
        return f"The output folder already holds files: {folder}. Choose a new folder or leave it empty."
    return None


def manifestProblem(path: str) -> str | None:
    if not path:
        return "Select the cohort manifest (CSV) to train on."
    if not os.path.isfile(path):
        return f"Manifest not found: {path}."
    return None


def modelCard(modelPath) -> dict | None:
    """The ``model_card.json`` beside a model file (what ``rtresponse ... train`` wrote); None without one."""
    if not modelPath:
        return None
    card = Path(modelPath).parent / CARD_FILE
    try:
        return json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def _weights(record) -> str:
    if not isinstance(record, dict):
        return str(record or "unknown")
    if record.get("weights") == "random":
        return f"random (seed {record.get('seed')})"
    return str(record.get("file") or record.get("weights") or "unknown")


def cardSummary(card: dict | None) -> str:
    """A few lines from a model card for the module's model selector: what was trained, on how many patients,
    the epoch kept and its validation score, the starting weights and the device."""
    if not card:
        return "No model card beside this file (model_card.json): trained elsewhere or moved."
    lines = [str(card.get("method") or "model")]
    if "best_validation_dice" in card:  # recurrence U-Net
        lines.append(f"kept: run {int(card.get('best_run', 0)) + 1}, epoch {card.get('best_epoch')}, validation "
                     f"Dice {_number(card.get('best_validation_dice'))}")
    for regimen, model in (card.get("models") or {}).items():  # residual classifiers, one per regimen
        lines.append(f"{regimen}: epoch {model.get('epoch')} of {model.get('epochs')}, validation loss "
                     f"{_number(model.get('validation_loss'))}, AUC {_number(model.get('validation_auc'))}")
    patients = card.get("patients")
    if isinstance(patients, dict):
        lines.append("patients: " + ", ".join(f"{part} {count}" for part, count in patients.items()))
    extra = [f"network {card['network']}"] if card.get("network") else []
    extra.append(f"weights {_weights(card.get('weights'))}")
    if card.get("device"):
        extra.append(f"device {card['device']}")
    lines.append(", ".join(extra))
    return "\n".join(lines)


def startTraining(panel, arguments, description: str, name: str, scene, onTrained: Callable[[object], str],
                  showChart: Callable[[object], None] | None = None, folder=None) -> TrainingCurves:
    """Run a training command on ``panel``; its epochs grow the curves named ``name`` in ``scene`` (``showChart``
    is called with the chart node when it is made). ``onTrained(result)`` puts the model in the module's selector
    and returns the status text. The curves of a cancelled or failed job stay (they show how far it went)."""
    curves = TrainingCurves(name, scene, onCreated=showChart)
    panel.start(arguments, description, onTrained, folder=folder, cancelledText=CANCELLED_TEXT, onEvent=curves.add)
    return curves
