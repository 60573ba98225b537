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
