"""Live training curves: a training job's ``epoch`` events as one table node and one plot chart that grow.

``rtresponse recurrence train`` / ``residual train`` / ``residual segmenter`` / ``i3d train`` in ``--progress jsonl``
mode send one ``epoch`` event per epoch (see :mod:`rtresponse.progress`). :func:`curveRow` turns an event into a
table row: ``step`` (epochs done so far in the job: the x axis, increasing across runs and models), ``model`` (what
tells the curves apart: "run 1", "xception CCRT", "unet", "DLR (MR)"), ``epoch`` and every number of the record
(losses, validation metrics, learning rate). :class:`TrainingCurves` keeps the rows and shows them as one table
node with a chart of the ``train_*`` and ``validation_*`` columns (one table per chart), updated per event. The
table node is an ordinary node: saved with the scene, exportable as CSV. Pure apart from :class:`TrainingCurves`
(MRML nodes).
"""

from __future__ import annotations

from typing import Mapping, Sequence

STEP, MODEL, EPOCH = "step", "model", "epoch"
PLOTTED_PREFIXES = ("train_", "validation_")
NOT_NUMBERS = ("event", "stage", "run", "network", "regimen", "architecture", "kept")


def modelLabel(event: Mapping) -> str:
    """What one curve is of: "run 1" (recurrence runs, counted from 1), "xception CCRT", "unet", the I3D model's
    name ("DLR (MR)"), else ""."""
    if event.get(MODEL):
        return str(event[MODEL])
    if event.get("run") is not None:
        return f"run {int(event['run']) + 1}"
    return " ".join(str(event[key]) for key in ("network", "regimen", "architecture") if event.get(key))


def curveRow(event: Mapping, step: int) -> dict:
    """The table row of one ``epoch`` event (``step``: its position in the job, from 1); numbers only, besides
    ``model``; a missing value (null: no validation patients) is NaN."""
    row = {STEP: int(step), MODEL: modelLabel(event), EPOCH: int(event.get(EPOCH) or 0)}
    for key, value in event.items():
        if key in row or key in NOT_NUMBERS:
            continue
        if value is None:
            row[key] = float("nan")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            row[key] = float(value)
    return row


def curveFrame(rows: Sequence[Mapping]):
    """The rows as a DataFrame: step, model, epoch, then the numbers in the order they first appeared."""
    import pandas as pd

    columns = [STEP, MODEL, EPOCH]
    for row in rows:
        columns += [key for key in row if key not in columns]
    frame = pd.DataFrame(list(rows), columns=columns)
    return frame.astype({STEP: int, EPOCH: int, MODEL: str})


def plottedColumns(columns: Sequence[str]) -> list:
    """The columns drawn as curves: losses and metrics (``train_*``, ``validation_*``), not lr or seconds."""
    return [column for column in columns if str(column).startswith(PLOTTED_PREFIXES)]


def epochEvents(events: Sequence[Mapping]) -> list:
    return [event for event in events if event.get("event") == "epoch"]


class TrainingCurves:
    """The curves of one training job in ``scene``: ``add(event)`` for each job event (others are ignored); the
    table node and chart node are made at the first epoch (``table``, ``chart``; None before)."""

    def __init__(self, name: str, scene, onCreated=None):
        self.name, self.scene, self.onCreated = name, scene, onCreated
        self.rows: list = []
        self.table = self.chart = None

    def add(self, event: Mapping) -> bool:
        """Add an ``epoch`` event's row and redraw; False (nothing done) for any other event."""
        if event.get("event") != "epoch":
            return False
        self.rows.append(curveRow(event, len(self.rows) + 1))
        self._show()
        return True

    def frame(self):
        return curveFrame(self.rows)

    def _show(self) -> None:
        from rtresponse import mrml

        frame = self.frame()
        created = self.table is None
        if created:
            self.table = mrml.dataframe_to_table_node(frame, self.scene.GenerateUniqueName(f"{self.name} curves"),
                                                      self.scene)
        else:
            mrml.update_table_node(self.table, frame)
        self.chart = mrml.plot_columns(self.table, STEP, plottedColumns(frame.columns), self.table.GetName(),
                                       chart=self.chart, x_title="epochs trained", y_title="loss / metric")
        if created and self.onCreated is not None:
            self.onCreated(self.chart)
