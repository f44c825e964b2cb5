"""The status bar: pixel position, class under the cursor, zoom, the unsaved marker, and
a long background step (a pyramid being built) with its progress and a Cancel button."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QStatusBar, QToolButton, QWidget

from segstudio.core.classes import ClassTable

MESSAGE_MS = 8000


class StatusBar(QStatusBar):
    """Permanent fields on the right; transient messages (and errors) on the left."""

    cancel_requested = Signal()  # the Cancel button of the background step was clicked

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("status_bar")
        # Permanent (a transient message does not hide them), first on the right, shown only
        # while a background step runs.
        self.busy_label = QLabel(self)
        self.busy_label.setObjectName("busy")
        self.cancel_button = QToolButton(self)
        self.cancel_button.setObjectName("cancel_busy")
        self.cancel_button.setText("Cancel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.addPermanentWidget(self.busy_label)
        self.addPermanentWidget(self.cancel_button)
        self.clear_busy()
        self.position_label = self._field("position", 110)
        self.class_label = self._field("class_under_cursor", 150)
        self.zoom_label = self._field("zoom", 70)
        self.saved_label = self._field("saved_marker", 90)
        self._classes = ClassTable(())
        self.set_zoom(1.0)
        self.set_unsaved(False)

    def _field(self, name: str, width: int) -> QLabel:
        label = QLabel(self)
        label.setObjectName(name)
        label.setMinimumWidth(width)
        self.addPermanentWidget(label)
        return label

    def set_project_fields_visible(self, on: bool) -> None:
        for label in (self.position_label, self.class_label, self.zoom_label, self.saved_label):
            label.setVisible(on)

    def set_classes(self, classes: ClassTable) -> None:
        self._classes = classes

    def set_cursor(self, x: int, y: int, class_id: int) -> None:
        if x < 0 or y < 0:
            self.position_label.setText("")
            self.class_label.setText("")
            return
        self.position_label.setText(f"x {x}, y {y}")
        try:
            name = self._classes.by_id(class_id).name
        except KeyError:
            name = "?"
        self.class_label.setText(f"{name} ({class_id})" if class_id >= 0 else "")

    def set_zoom(self, factor: float) -> None:
        self.zoom_label.setText(f"{factor * 100:.0f}%")

    def set_unsaved(self, unsaved: bool) -> None:
        self.saved_label.setText("● unsaved" if unsaved else "saved")
        self.saved_label.setToolTip(
            "Edits not yet on disk; they are saved a few seconds after you stop" if unsaved
            else "Everything is saved"
        )

    def show_note(self, text: str) -> None:
        self.showMessage(text, MESSAGE_MS)

    def show_busy(self, text: str, tip: str = "") -> None:
        """A background step in progress (`text` says what and how far) that can be cancelled."""
        self.busy_label.setText(text)
        self.cancel_button.setToolTip(tip)
        self.busy_label.show()
        self.cancel_button.show()

    def clear_busy(self) -> None:
        self.busy_label.setText("")
        self.busy_label.hide()
        self.cancel_button.hide()
