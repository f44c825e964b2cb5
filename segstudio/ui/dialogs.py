"""Small dialogs: errors, questions, the F1 shortcut sheet, the crash-recovery offer.

Message boxes go through these functions so tests can answer them (monkeypatch) and a
headless run never blocks on a modal box nobody can see.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from segstudio import __version__
from segstudio.core.recovery import RecoveredMask


def show_error(parent: QWidget | None, title: str, text: str) -> None:
    """A warning box: the app keeps running, the message says what to do."""
    QMessageBox.warning(parent, title, text)


def ask(parent: QWidget | None, title: str, text: str) -> bool:
    answer = QMessageBox.question(parent, title, text,
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


def ask_restore(parent: QWidget | None, found: Sequence[RecoveredMask]) -> bool:
    """Offer unsaved work found in the recovery journal; True restores it."""
    newest = max(item.entry.saved_at for item in found)
    names = ", ".join(item.entry.image_id for item in found[:6])
    more = f" and {len(found) - 6} more" if len(found) > 6 else ""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(newest))
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Recover unsaved work")
    box.setText(f"segstudio did not close cleanly. Unsaved masks of {len(found)} image(s) were "
                f"found ({names}{more}; last change {when}).")
    box.setInformativeText("Restore them into the project? Discarding keeps the masks as last saved.")
    restore = box.addButton("Restore", QMessageBox.ButtonRole.AcceptRole)
    box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
    box.setDefaultButton(restore)
    box.exec()
    return box.clickedButton() is restore


def show_about(parent: QWidget | None) -> None:
    QMessageBox.about(
        parent, "About segstudio",
        f"<b>segstudio {__version__}</b><p>Annotate images, fine-tune segmentation models, "
        "pre-label and export.</p><p>MIT licence.</p>",
    )


class ShortcutSheet(QDialog):
    """Every action that has a shortcut, grouped by menu (F1)."""

    def __init__(self, rows: Sequence[tuple[str, str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("shortcut_sheet")
        self.setWindowTitle("Keyboard shortcuts")
        layout = QVBoxLayout(self)
        self.table = QTableWidget(len(rows), 3, self)
        self.table.setHorizontalHeaderLabels(["Menu", "Action", "Shortcut"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        for row, values in enumerate(rows):
            for column, value in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(value))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        layout.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(560, 640)
