"""Showing parameter-node values in widgets without echoing them back (the widget's signals are blocked)."""

from __future__ import annotations


def showComboText(combo, text: str) -> None:
    """Select ``text`` in a combo box (none selected when it is not an item)."""
    wasBlocked = combo.blockSignals(True)
    combo.setCurrentIndex(combo.findText(text))
    combo.blockSignals(wasBlocked)


def showPath(lineEdit, path: str) -> None:
    """Show ``path`` in a ctkPathLineEdit when it differs."""
    if lineEdit.currentPath != path:
        wasBlocked = lineEdit.blockSignals(True)
        lineEdit.currentPath = path
        lineEdit.blockSignals(wasBlocked)


def showSegmentInput(parameterNode, selector, nodeParameter: str, idParameter: str) -> None:
    """Show the parameter node's segmentation and segment in a segment selector; the parameter node then follows
    the selector (which picks the first segment by itself, and loses a segment that was deleted)."""
    segmentation, segmentId = getattr(parameterNode, nodeParameter), getattr(parameterNode, idParameter)
    wasBlocked = selector.blockSignals(True)
    if selector.currentNode() is not segmentation:
        selector.setCurrentNode(segmentation)
    if segmentation and segmentId and selector.currentSegmentID() != segmentId:
        selector.setCurrentSegmentID(segmentId)
    selector.blockSignals(wasBlocked)
    shown = (selector.currentSegmentID() or "") if segmentation else ""
    if shown != segmentId:
        setattr(parameterNode, idParameter, shown)  # updates the GUI once more, with a consistent state

