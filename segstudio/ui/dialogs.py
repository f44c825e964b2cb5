"""Small dialogs: errors, questions, the F1 shortcut sheet, the crash-recovery offer.

Message boxes go through these functions so tests can answer them (monkeypatch) and a
headless run never blocks on a modal box nobody can see.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

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
from segstudio.core.presence import Presence
from segstudio.core.recovery import RecoveredMask

# The answers of ask_shared: write alongside the other window(s), only look, or do not open.
SHARED_WRITE, SHARED_READ_ONLY, SHARED_CANCEL = "write", "read_only", "cancel"


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


def ask_shared(parent: QWidget | None, holders: Sequence[Presence]) -> str:
    """Another app has the project open: say who, and offer read-only or both writing."""
    who = "\n".join(f"• {holder.describe()}" for holder in holders)
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Information)
    box.setWindowTitle("Project already open")
    box.setText(f"This project is open in another segstudio window:\n{who}")
    box.setInformativeText(
        "Both can write: every save merges with the other's changes, and a mask changed by both "
        "is offered to you to keep or reload. Or open it read-only to look without changing it.")
    write = box.addButton("Open, both writing", QMessageBox.ButtonRole.AcceptRole)
    read_only = box.addButton("Open read-only", QMessageBox.ButtonRole.ActionRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(read_only)
    box.exec()
    clicked = box.clickedButton()
    return SHARED_WRITE if clicked is write else SHARED_READ_ONLY if clicked is read_only else SHARED_CANCEL


class ConflictOffer(QMessageBox):
    """Non-modal: the mask being edited changed on disk. Painting goes on while it is shown."""

    def __init__(self, parent: QWidget | None, image_id: str, text: str,
                 keep_mine: Callable[[], None], load_theirs: Callable[[], None]) -> None:
        super().__init__(parent)
        self.setObjectName("conflict_offer")
        self.image_id = image_id
        self.setIcon(QMessageBox.Icon.Warning)
        self.setWindowTitle("Mask changed by another program")
        self.setText(f"The mask of '{image_id}' was changed on disk by another program while you "
                     "had unsaved edits.")
        self.setInformativeText(f"{text}\n\nKeep mine: your mask is saved and theirs is kept in "
                                "the project's .conflicts folder. Load theirs: their mask is shown "
                                "(Undo brings yours back).")
        self.keep_button = self.addButton("Keep mine (save as new)", QMessageBox.ButtonRole.AcceptRole)
        self.load_button = self.addButton("Load theirs", QMessageBox.ButtonRole.RejectRole)
        self.setModal(False)
        self.setWindowModality(Qt.WindowModality.NonModal)
        self.keep_button.clicked.connect(keep_mine)
        self.load_button.clicked.connect(load_theirs)


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
