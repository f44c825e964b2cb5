"""The welcome screen shown while no project is open: start actions and recent projects."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from segstudio import __version__
from segstudio.ui.resources import app_icon

PATH_ROLE = Qt.ItemDataRole.UserRole + 1


class WelcomeScreen(QWidget):
    """Buttons emit what the user wants; the window does it."""

    open_requested = Signal()
    new_requested = Signal()
    import_requested = Signal()
    sample_requested = Signal()
    recent_requested = Signal(Path)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcome")
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        column = QVBoxLayout()
        column.addStretch(1)
        header = QHBoxLayout()
        icon = QLabel(self)
        icon.setPixmap(app_icon().pixmap(QSize(56, 56)))
        header.addWidget(icon)
        title = QLabel("segstudio", self)
        font = QFont(title.font())
        font.setPointSizeF(font.pointSizeF() * 2.2)
        font.setBold(True)
        title.setFont(font)
        header.addWidget(title)
        header.addStretch(1)
        column.addLayout(header)
        subtitle = QLabel(
            f"Annotate images, fine-tune segmentation models, pre-label and export. "
            f"Version {__version__}.", self)
        subtitle.setWordWrap(True)
        column.addWidget(subtitle)
        column.addSpacing(16)
        self.buttons: dict[str, QPushButton] = {}
        for name, text, signal in (
            ("open", "Open project...", self.open_requested),
            ("new", "New project from an image folder...", self.new_requested),
            ("import", "Import a dataset...", self.import_requested),
            ("sample", "Open the sample project (CamVid road scenes)", self.sample_requested),
        ):
            button = QPushButton(text, self)
            button.setObjectName(f"welcome_{name}")
            button.setMinimumHeight(34)
            button.clicked.connect(signal)
            column.addWidget(button)
            self.buttons[name] = button
        column.addSpacing(16)
        recent_title = QLabel("Recent projects", self)
        bold = QFont(recent_title.font())
        bold.setBold(True)
        recent_title.setFont(bold)
        column.addWidget(recent_title)
        self.recent = QListWidget(self)
        self.recent.setObjectName("welcome_recent")
        self.recent.setMinimumHeight(120)
        self.recent.itemActivated.connect(self._on_recent_item_activated)
        self.recent.itemClicked.connect(self._on_recent_item_activated)
        column.addWidget(self.recent)
        self.empty_note = QLabel("No recent projects yet.", self)
        self.empty_note.setEnabled(False)
        column.addWidget(self.empty_note)
        column.addStretch(2)
        holder = QWidget(self)
        holder.setLayout(column)
        holder.setMaximumWidth(560)
        holder.setMinimumWidth(420)
        outer.addWidget(holder, 3)
        outer.addStretch(1)

    def set_recent(self, paths: list[Path]) -> None:
        self.recent.clear()
        for path in paths:
            item = QListWidgetItem(f"{path.name}    —    {path.parent}")
            item.setData(PATH_ROLE, str(path))
            item.setToolTip(str(path))
            self.recent.addItem(item)
        self.recent.setVisible(bool(paths))
        self.empty_note.setVisible(not paths)

    def _on_recent_item_activated(self, item: QListWidgetItem) -> None:
        self.recent_requested.emit(Path(item.data(PATH_ROLE)))
