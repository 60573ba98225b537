"""Results belong to the scene their inputs are in: the check a module makes before loading a job's results.

A job runs for minutes while the user keeps working: a node the job was started from may be deleted, or the
scene closed (the modules cancel their job then, see :meth:`JobPanel.onSceneStartClose`). Loading the
results anyway would put a table about a deleted segmentation into an unrelated scene, so the panel asks
:func:`missingNodes` first and loads nothing when an input is gone. Needs neither Qt nor Slicer (any object
with the MRML node and scene methods used here will do).
"""

from __future__ import annotations

from typing import Sequence


def nodeLabel(node) -> str:
    try:
        return node.GetName() or node.GetID() or "a node"
    except (AttributeError, ReferenceError):  # a deleted VTK object
        return "a node"


def missingNodes(scene, nodes: Sequence) -> list[str]:
    """Names of the ``nodes`` that are no longer in ``scene`` (removed, or the scene was closed); [] when all are."""
    missing = []
    for node in nodes:
        try:
            present = node is not None and node.GetScene() is scene and bool(scene.IsNodePresent(node))
        except (AttributeError, ReferenceError):
            present = False
        if not present:
            missing.append(nodeLabel(node) if node is not None else "an input")
    return missing
