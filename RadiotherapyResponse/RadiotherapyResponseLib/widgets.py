"""Showing parameter-node values in widgets without echoing them back (the widget's signals are blocked)."""

from __future__ import annotations


def showComboText(combo, text: str) -> None:
    """Select ``text`` in a combo box (none selected when it is not an item)."""
    wasBlocked = combo.blockSignals(True)
    combo.setCurrentIndex(combo.findText(text))
    combo.blockSignals(wasBlocked)


def showComboItems(combo, items, text: str) -> None:
    """Show ``items`` in a combo box (rebuilt only when they change) with ``text`` selected."""
    wasBlocked = combo.blockSignals(True)
    if [combo.itemText(i) for i in range(combo.count)] != list(items):
        combo.clear()
        combo.addItems(list(items))
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



def showCheckList(listWidget, names, checked) -> None:
    """Show ``names`` as checkable items (rebuilt only when they change), checked where in ``checked``."""
    import qt

    wasBlocked = listWidget.blockSignals(True)
    if [listWidget.item(i).text() for i in range(listWidget.count)] != list(names):
        listWidget.clear()
        for name in names:
            item = qt.QListWidgetItem(name)
            item.setFlags(item.flags() | qt.Qt.ItemIsUserCheckable)
            listWidget.addItem(item)
    checked = set(checked or [])
    for i in range(listWidget.count):
        item = listWidget.item(i)
        state = qt.Qt.Checked if item.text() in checked else qt.Qt.Unchecked
        if item.checkState() != state:
            item.setCheckState(state)
    listWidget.blockSignals(wasBlocked)


def checkedItems(listWidget) -> list:
    import qt

    return [listWidget.item(i).text() for i in range(listWidget.count)
            if listWidget.item(i).checkState() == qt.Qt.Checked]
