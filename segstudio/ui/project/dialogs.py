"""Dialogs that create or fill projects: new project from an image folder, dataset import,
and the import report. The work runs on the thread pool behind a progress dialog."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEventLoop, QObject, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QProgressDialog,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.classes import ClassTable, load_class_file, parse_labels
from segstudio.core.importers import FORMATS, ImportOptions, ImportReport, import_dataset
from segstudio.core.progress import ProgressCallback
from segstudio.core.project import SPLITS, Project
from segstudio.ui.jobs import run_in_background


class _Waiter(QObject):
    """Holds the job's answer and ends the local event loop when it arrives."""

    def __init__(self, dialog: QProgressDialog, title: str) -> None:
        super().__init__()
        self.loop = QEventLoop()
        self.outcome: tuple[Any, BaseException | None] | None = None
        self._dialog = dialog
        self._title = title

    def on_progress(self, count: int, _total: int, name: str) -> None:
        self._dialog.setLabelText(f"{self._title}\n{count}: {name}")

    def on_done(self, result: Any) -> None:
        self.outcome = (result, None)
        self.loop.quit()

    def on_error(self, error: BaseException) -> None:
        self.outcome = (None, error)
        self.loop.quit()


def run_job(parent: QWidget | None, title: str, fn: Callable[[ProgressCallback], Any]) -> Any:
    """Run `fn(progress)` on the thread pool behind a busy dialog; return its result or raise."""
    progress = QProgressDialog(title, "", 0, 0, parent)
    progress.setCancelButton(None)
    progress.setWindowModality(Qt.WindowModality.WindowModal)
    progress.setMinimumDuration(300)
    waiter = _Waiter(progress, title)
    run_in_background(lambda job: fn(job.progress), waiter.on_done, waiter.on_error,
                      on_progress=waiter.on_progress)
    if waiter.outcome is None:
        waiter.loop.exec()
    progress.close()
    assert waiter.outcome is not None
    result, error = waiter.outcome
    if error is not None:
        raise error
    return result


def _browse_row(parent: QWidget, edit: QLineEdit, folder: bool = True, file_filter: str = "") -> QWidget:
    row = QWidget(parent)
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    button = QPushButton("Browse...", row)

    def browse() -> None:
        if folder:
            chosen = QFileDialog.getExistingDirectory(parent, "Choose a folder", edit.text())
        else:
            chosen, _ = QFileDialog.getOpenFileName(parent, "Choose a file", edit.text(), file_filter)
        if chosen:
            edit.setText(chosen)

    button.clicked.connect(browse)
    layout.addWidget(button)
    return row


def _buttons(dialog: QDialog, ok_text: str) -> QDialogButtonBox:
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel,
                               dialog)
    buttons.button(QDialogButtonBox.StandardButton.Ok).setText(ok_text)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    return buttons


class NewProjectDialog(QDialog):
    """Image folder, project folder, class names (or a class file), copy or reference."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New project from an image folder")
        form = QFormLayout(self)
        self.images = QLineEdit(self)
        self.project = QLineEdit(self)
        self.classes = QLineEdit(self)
        self.classes.setPlaceholderText("road, car, sky   (or the path of classes.json / labels.txt)")
        self.copy = QCheckBox("Copy the images into the project folder", self)
        form.addRow("Images", _browse_row(self, self.images))
        form.addRow("New project folder", _browse_row(self, self.project))
        form.addRow("Classes", self.classes)
        form.addRow("", self.copy)
        form.addRow(_buttons(self, "Create"))
        self.images.textChanged.connect(self._on_images_text_changed)
        self.resize(620, self.sizeHint().height())

    def _on_images_text_changed(self, text: str) -> None:
        if text and not self.project.isModified():
            folder = Path(text)
            self.project.setText(str(folder.parent / f"{folder.name}-segstudio"))

    def class_table(self) -> ClassTable:
        text = self.classes.text().strip()
        if text and Path(text).is_file():
            return load_class_file(Path(text))
        return parse_labels(text.replace(",", "\n").splitlines(), source="the class list")


def create_project_from_folder(images: Path, root: Path, classes: ClassTable, copy: bool,
                               progress: ProgressCallback | None = None) -> ImportReport:
    """Create the project, then import the folder's images with the `images` importer."""
    Project.create(root, classes)
    return import_dataset(root, "images", ImportOptions(sources=(images,), copy=copy), progress)


class ImportDialog(QDialog):
    """Format, source, optional masks folder and class file, split, copy; target project."""

    def __init__(self, current_project: Path | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import a dataset")
        form = QFormLayout(self)
        self.format = QComboBox(self)
        self.format.addItems(list(FORMATS))
        self.source = QLineEdit(self)
        self.source.setPlaceholderText("dataset folder (or a COCO .json file)")
        self.masks = QLineEdit(self)
        self.masks.setPlaceholderText("folders format only: the masks folder (optional)")
        self.classes_file = QLineEdit(self)
        self.classes_file.setPlaceholderText("optional classes.json / labels.txt")
        self.split = QComboBox(self)
        self.split.addItem("as the dataset says", None)
        for split in SPLITS:
            self.split.addItem(split, split)
        self.copy = QCheckBox("Copy the images into the project folder", self)
        self.target = QLineEdit(self)
        if current_project is not None:
            self.target.setText(str(current_project))
        self.target.setPlaceholderText("project folder (created if it does not exist)")
        form.addRow("Format", self.format)
        form.addRow("Source", _browse_row(self, self.source))
        form.addRow("Masks", _browse_row(self, self.masks))
        form.addRow("Class file", _browse_row(self, self.classes_file, folder=False))
        form.addRow("Split", self.split)
        form.addRow("", self.copy)
        form.addRow("Into project", _browse_row(self, self.target))
        form.addRow(_buttons(self, "Import"))
        self.resize(640, self.sizeHint().height())

    def options(self) -> ImportOptions:
        source = Path(self.source.text().strip())
        masks = self.masks.text().strip()
        classes = self.classes_file.text().strip()
        common: dict[str, Any] = {
            "split": self.split.currentData(),
            "classes_file": Path(classes) if classes else None,
            "copy": self.copy.isChecked(),
        }
        if self.format.currentText() == "folders" and masks:
            return ImportOptions(images=(source,), masks=(Path(masks),), **common)
        return ImportOptions(sources=(source,), **common)

    def project_root(self) -> Path:
        return Path(self.target.text().strip())


class ReportDialog(QDialog):
    """The import report in words: counts, new classes, every skipped file and why."""

    def __init__(self, report: ImportReport, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("import_report")
        self.setWindowTitle("Import report")
        layout = QVBoxLayout(self)
        self.text = QPlainTextEdit(self)
        self.text.setReadOnly(True)
        self.text.setPlainText("\n".join(report.lines()))
        layout.addWidget(self.text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.accept)
        layout.addWidget(buttons)
        self.resize(640, 360)
