"""The classes dock: the class list with colours and keys, the active class, class edits.

Edits go through the session's ClassEdits (which saves the manifest and updates open
documents); deleting asks which class the pixels become.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QColorDialog,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QGridLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.classes import ClassDef, ClassTable, Color
from segstudio.core.errors import SegstudioError
from segstudio.ui import dialogs
from segstudio.ui.project.session import EditingSession

ID_ROLE = Qt.ItemDataRole.UserRole + 1


def swatch(color: Color, size: int = 16) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(*color))
    return QIcon(pixmap)


def key_classes(table: ClassTable) -> list[ClassDef]:
    """The classes keys 1-9 select: the trainable ones, in table order."""
    return list(table.trainable)[:9]


class DeleteClassDialog(QDialog):
    """Asks which class the deleted class's pixels become (every saved mask is rewritten)."""

    def __init__(self, table: ClassTable, cls: ClassDef, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Delete class '{cls.name}'")
        layout = QVBoxLayout(self)
        text = QLabel(
            f"Pixels of '{cls.name}' in every saved mask and in the open images become the class "
            "chosen below. Undo (Ctrl+Z) brings them back in the current image.", self)
        text.setWordWrap(True)
        layout.addWidget(text)
        self.target = QComboBox(self)
        default = table.ignore_index
        for other in table:
            if other.id != cls.id:
                self.target.addItem(swatch(other.color), f"{other.name} ({other.id})", other.id)
        if default is not None and default != cls.id:
            self.target.setCurrentIndex(self.target.findData(default))
        layout.addWidget(self.target)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def chosen(self) -> int:
        return int(self.target.currentData())


class ClassesDock(QDockWidget):
    """`active_class_changed(id)` when the user picks a class (click or keys 1-9)."""

    active_class_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Classes", parent)
        self.setObjectName("classes_dock")
        self.session: EditingSession | None = None
        body = QWidget(self)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        self.list = QListWidget(body)
        self.list.setObjectName("class_list")
        self.list.setIconSize(QSize(16, 16))
        layout.addWidget(self.list, 1)
        grid = QGridLayout()
        self.buttons: dict[str, QPushButton] = {}
        for position, (name, text, tip) in enumerate((
            ("add", "Add", "Add a class"),
            ("rename", "Rename", "Rename the selected class"),
            ("recolor", "Colour", "Change the selected class's colour"),
            ("delete", "Delete", "Delete the class; its pixels become another class"),
            ("up", "Up", "Move the class up"),
            ("down", "Down", "Move the class down"),
        )):
            button = QPushButton(text, body)
            button.setObjectName(f"class_{name}")
            button.setToolTip(tip)
            grid.addWidget(button, position // 3, position % 3)
            self.buttons[name] = button
        layout.addLayout(grid)
        self.setWidget(body)
        self.buttons["add"].clicked.connect(lambda: self.add_class())
        self.buttons["rename"].clicked.connect(lambda: self.rename_class())
        self.buttons["recolor"].clicked.connect(lambda: self.recolor_class())
        self.buttons["delete"].clicked.connect(lambda: self.delete_class())
        self.buttons["up"].clicked.connect(lambda: self._move(-1))
        self.buttons["down"].clicked.connect(lambda: self._move(1))
        self.list.currentItemChanged.connect(self._on_list_current_changed)
        self.list.itemDoubleClicked.connect(lambda _item: self.rename_class())
        self.setEnabled(False)

    def height_for_rows(self, rows: int) -> int:
        """The dock height that shows `rows` class rows above its buttons."""
        row = self.list.sizeHintForRow(0) if self.list.count() else self.list.fontMetrics().height() + 6
        frame = self.list.frameWidth() * 2
        chrome = self.height() - self.list.height()  # title bar, margins, buttons
        return rows * max(row, 16) + frame + max(chrome, 0)

    # -- model -------------------------------------------------------------------------------------
    def set_session(self, session: EditingSession | None) -> None:
        self.session = session
        self.setEnabled(session is not None)
        if session is not None:
            session.classes_changed.connect(self.refresh)
        self.refresh()

    @property
    def table(self) -> ClassTable:
        return self.session.project.classes if self.session else ClassTable(())

    def refresh(self) -> None:
        active = self.active_class()
        self.list.blockSignals(True)
        self.list.clear()
        keys = {cls.id: n for n, cls in enumerate(key_classes(self.table), start=1)}
        for cls in self.table:
            key = f"{keys[cls.id]}  " if cls.id in keys else "    "
            suffix = "  (ignored in training)" if cls.ignore else ""
            item = QListWidgetItem(swatch(cls.color), f"{key}{cls.name}{suffix}")
            item.setData(ID_ROLE, cls.id)
            item.setToolTip(f"id {cls.id}, colour {list(cls.color)}")
            self.list.addItem(item)
        self.list.blockSignals(False)
        if active is None or active not in self.table.ids:
            trainable = self.table.trainable
            active = trainable[0].id if trainable else (self.table.ids[0] if len(self.table) else None)
        if active is not None:
            self.set_active_class(active)

    def active_class(self) -> int | None:
        item = self.list.currentItem()
        return None if item is None else int(item.data(ID_ROLE))

    def set_active_class(self, class_id: int) -> None:
        for row in range(self.list.count()):
            if int(self.list.item(row).data(ID_ROLE)) == class_id:
                self.list.setCurrentRow(row)
                self.active_class_changed.emit(class_id)
                return

    def select_key(self, number: int) -> None:
        """Keys 1-9: the number-th trainable class."""
        classes = key_classes(self.table)
        if 1 <= number <= len(classes):
            self.set_active_class(classes[number - 1].id)

    def _on_list_current_changed(self, current: QListWidgetItem | None, _prev: object) -> None:
        if current is not None:
            self.active_class_changed.emit(int(current.data(ID_ROLE)))

    # -- edits -------------------------------------------------------------------------------------
    def _run(self, what: str, fn: object) -> bool:
        try:
            fn()  # type: ignore[operator]
        except (SegstudioError, KeyError) as exc:
            dialogs.show_error(self, f"Cannot {what}", str(exc))
            return False
        return True

    def add_class(self, name: str | None = None, color: Color | None = None) -> bool:
        if self.session is None:
            return False
        if name is None:
            name, ok = QInputDialog.getText(self, "Add class", "Name of the new class:")
            if not ok or not name.strip():
                return False
        session = self.session
        added: list[ClassDef] = []
        if not self._run("add the class", lambda: added.append(session.classes.add(name, color))):
            return False
        self.set_active_class(added[0].id)
        return True

    def rename_class(self, class_id: int | None = None, name: str | None = None) -> bool:
        class_id = self.active_class() if class_id is None else class_id
        if self.session is None or class_id is None:
            return False
        if name is None:
            old = self.table.by_id(class_id).name
            name, ok = QInputDialog.getText(self, "Rename class", "New name:", text=old)
            if not ok or not name.strip():
                return False
        session = self.session
        return self._run("rename the class", lambda: session.classes.rename(class_id, name))

    def recolor_class(self, class_id: int | None = None, color: Color | None = None) -> bool:
        class_id = self.active_class() if class_id is None else class_id
        if self.session is None or class_id is None:
            return False
        if color is None:
            chosen = QColorDialog.getColor(QColor(*self.table.by_id(class_id).color), self,
                                           "Class colour")
            if not chosen.isValid():
                return False
            color = (chosen.red(), chosen.green(), chosen.blue())
        session = self.session
        return self._run("change the colour", lambda: session.classes.recolor(class_id, color))

    def delete_class(self, class_id: int | None = None, into: int | None = None) -> bool:
        class_id = self.active_class() if class_id is None else class_id
        if self.session is None or class_id is None:
            return False
        if into is None:
            dialog = DeleteClassDialog(self.table, self.table.by_id(class_id), self)
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return False
            into = dialog.chosen()
        session = self.session
        return self._run("delete the class", lambda: session.classes.delete(class_id, into))

    def _move(self, offset: int) -> None:
        class_id = self.active_class()
        if self.session is not None and class_id is not None:
            session = self.session
            self._run("move the class", lambda: session.classes.move(class_id, offset))
            self.set_active_class(class_id)
