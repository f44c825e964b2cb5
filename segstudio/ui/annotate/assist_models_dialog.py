"""Assist models (Tools menu): the catalogue and the registered models with family, size and
licence; Download (progress, cancel, resumable), Add from files, Remove, Use for assist.

Non-commercial licences are marked in the list and spelled out under it when such a model
is selected, because that is where the user picks one.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from segstudio.assist.catalogue import CATALOGUE, CatalogueEntry, catalogue_entry
from segstudio.assist.store import ModelStore, RegisteredModel
from segstudio.ui.annotate.assist_add_dialog import AddModelDialog
from segstudio.ui.jobs import Job, JobCancelled, error_text, run_in_background

NON_COMMERCIAL_COLOUR = QColor(200, 40, 40)
COLUMNS = ("Name", "Family", "Size", "Licence", "Status")


@dataclass(frozen=True)
class ModelRow:
    """One line of the list: a registered model, a catalogue entry, or both."""

    name: str
    title: str
    family: str
    size_mb: float | None
    licence: str
    commercial_use: bool
    registered: RegisteredModel | None
    entry: CatalogueEntry | None

    @property
    def status(self) -> str:
        if self.registered is not None:
            return "registered"
        if self.entry is not None and self.entry.downloadable:
            return "can be downloaded"
        return "add from files (no direct download)"


def model_rows(store: ModelStore) -> list[ModelRow]:
    """Registered models first (by name), then the catalogue entries not registered yet."""
    registered = store.models()
    rows = []
    for name, model in sorted(registered.items()):
        entry = catalogue_entry(name)
        size = entry.size_mb if entry is not None else _files_mb(model)
        rows.append(ModelRow(name, entry.title if entry else name, model.family, size, model.licence,
                             model.commercial_use, model, entry))
    for entry in CATALOGUE:
        if entry.name not in registered:
            rows.append(ModelRow(entry.name, entry.title, entry.family, entry.size_mb, entry.licence,
                                 entry.commercial_use, None, entry))
    return rows


def _files_mb(model: RegisteredModel) -> float | None:
    try:
        return (Path(model.encoder).stat().st_size + Path(model.decoder).stat().st_size) / 1e6
    except OSError:
        return None


class AssistModelsDialog(QDialog):
    """The model manager. It changes the registry itself; choosing and removing are also
    signalled so the window loads (or drops) the assist's model."""

    model_chosen = Signal(str)
    model_removed = Signal(str)

    def __init__(self, store: ModelStore | None = None, in_use: str | None = None,
                 runs_on: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("assist_models_dialog")
        self.setWindowTitle("Assist models")
        self.store = store or ModelStore()
        self.in_use = in_use
        self._rows: list[ModelRow] = []
        self._job: Job[object] | None = None
        layout = QVBoxLayout(self)
        intro = QLabel("Models for the Assist tool (key A). They live in your user data folder "
                       f"({self.store.folder}), not in projects.", self)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.table.horizontalHeader()
        for column in range(len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)  # licences are long
        layout.addWidget(self.table)
        self.licence_note = QLabel(self)
        self.licence_note.setObjectName("licence_note")
        self.licence_note.setWordWrap(True)
        layout.addWidget(self.licence_note)
        self.runs_on = QLabel(runs_on, self)
        self.runs_on.setObjectName("runs_on")
        layout.addWidget(self.runs_on)
        progress_row = QHBoxLayout()
        self.progress = QProgressBar(self)
        self.progress.setObjectName("download_progress")
        self.cancel_button = QPushButton("Cancel download", self)
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        layout.addLayout(progress_row)
        self.message = QLabel(self)
        self.message.setObjectName("message")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.message)
        buttons = QHBoxLayout()
        self.download_button = QPushButton("&Download", self)
        self.add_button = QPushButton("&Add from files...", self)
        self.remove_button = QPushButton("&Remove", self)
        self.use_button = QPushButton("&Use for assist", self)
        close = QPushButton("Close", self)
        for button in (self.download_button, self.add_button, self.remove_button, self.use_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout.addLayout(buttons)
        self.download_button.clicked.connect(self.download_selected)
        self.add_button.clicked.connect(self._on_add_button_clicked)
        self.remove_button.clicked.connect(self.remove_selected)
        self.use_button.clicked.connect(self.use_selected)
        self.cancel_button.clicked.connect(self.cancel_download)
        close.clicked.connect(self.reject)
        self.table.itemSelectionChanged.connect(self._on_table_selection_changed)
        self._show_progress(False)
        self.refresh()
        self.resize(980, 520)

    # -- the list -------------------------------------------------------------------------------
    def refresh(self, select: str | None = None) -> None:
        self._rows = model_rows(self.store)
        self.table.setRowCount(len(self._rows))
        for index, row in enumerate(self._rows):
            title = f"{row.title}  (in use)" if row.name == self.in_use else row.title
            licence = row.licence if row.commercial_use else f"⚠ {row.licence}" + (
                "" if "non-commercial" in row.licence.lower() else " (non-commercial)")
            size = "" if row.size_mb is None else f"{row.size_mb:.0f} MB" if row.size_mb >= 1 else "<1 MB"
            for column, text in enumerate((title, row.family, size, licence, row.status)):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, row.name)
                if column == 3 and not row.commercial_use:
                    item.setForeground(NON_COMMERCIAL_COLOUR)
                    font = QFont(item.font())
                    font.setBold(True)
                    item.setFont(font)
                if column == 0 and row.entry is not None:
                    item.setToolTip(f"{row.entry.source_page}\n{row.entry.note}".strip())
                self.table.setItem(index, column, item)
        wanted = select or self.in_use
        found = next((i for i, row in enumerate(self._rows) if row.name == wanted), 0 if self._rows else -1)
        if found >= 0:
            self.table.selectRow(found)
        self._on_table_selection_changed()

    def selected(self) -> ModelRow | None:
        rows = self.table.selectionModel().selectedRows()
        return self._rows[rows[0].row()] if rows else None

    def select(self, name: str) -> None:
        for index, row in enumerate(self._rows):
            if row.name == name:
                self.table.selectRow(index)
                return

    def _on_table_selection_changed(self) -> None:
        row = self.selected()
        downloading = self._job is not None
        registered = row is not None and row.registered is not None
        self.download_button.setEnabled(
            not downloading and row is not None and row.registered is None
            and row.entry is not None and row.entry.downloadable)
        self.remove_button.setEnabled(not downloading and registered)
        self.use_button.setEnabled(registered)
        if row is not None and not row.commercial_use:
            self.licence_note.setText(
                f"<b style='color:{NON_COMMERCIAL_COLOUR.name()}'>{html.escape(row.title)} is under "
                f"{html.escape(row.licence)}: "
                "it may be used for non-commercial work only.</b> Pick another model for commercial projects.")
        elif row is not None and row.entry is not None and row.entry.note:
            self.licence_note.setText(f"{row.title}: {row.entry.note}")
        else:
            self.licence_note.setText("")

    # -- actions --------------------------------------------------------------------------------
    def use_selected(self) -> None:
        row = self.selected()
        if row is None or row.registered is None:
            return
        self.in_use = row.name
        self.model_chosen.emit(row.name)
        self.message.setText(f"The Assist tool now uses {row.title}.")
        self.refresh(select=row.name)

    def remove_selected(self) -> None:
        row = self.selected()
        if row is None or row.registered is None:
            return
        self.store.remove(row.name)
        where = ("its downloaded files were deleted" if row.registered.source == "catalogue"
                 else "your files were left where they are")
        self.message.setText(f"Removed {row.title}; {where}.")
        if self.in_use == row.name:
            self.in_use = None
        self.model_removed.emit(row.name)
        self.refresh(select=row.name)

    def _on_add_button_clicked(self) -> None:
        dialog = AddModelDialog(self.store, self)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.model is not None:
            self.register_added(dialog.model)

    def register_added(self, model: RegisteredModel) -> None:
        self.store.register(model)
        self.message.setText(f"Registered {model.name} ({model.family}).")
        self.refresh(select=model.name)

    def download_selected(self) -> Job[object] | None:
        """Download the selected catalogue entry in the background with progress."""
        row = self.selected()
        if row is None or row.entry is None or self._job is not None:
            return None
        entry, store = row.entry, self.store

        def work(job: Job[object]) -> object:
            from segstudio.assist.download import download_model

            def progress(done: int, total: int, item: str) -> None:
                job.check_cancelled()  # stops mid-file; the part file stays for a resume
                job.progress(done, total, item)

            return download_model(entry, store, progress)

        self.message.setText(f"Downloading {entry.title} ({entry.size_mb:.0f} MB)...")
        self._show_progress(True)
        self._job = run_in_background(work, self._on_download_done, self._on_download_failed,
                                      on_progress=self._on_download_progress, owner=self)
        self._on_table_selection_changed()
        return self._job

    def cancel_download(self) -> None:
        if self._job is not None:
            self._job.cancel()

    def _on_download_progress(self, done: int, total: int, item: str) -> None:
        if total:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * done / total))
        else:
            self.progress.setRange(0, 0)
        self.progress.setFormat(f"{item}: {done / 1e6:.1f} of {total / 1e6:.1f} MB" if total else item)

    def _on_download_done(self, result: object) -> None:
        self._job = None
        self._show_progress(False)
        model, digests = result  # type: ignore[misc]
        self.message.setText(f"Downloaded and registered {model.name}; sha256 of the encoder: "
                             f"{digests.get('encoder', '')[:16]}...")
        self.refresh(select=model.name)

    def _on_download_failed(self, exc: BaseException) -> None:
        self._job = None
        self._show_progress(False)
        if isinstance(exc, JobCancelled):
            self.message.setText("Download cancelled; Download again to resume where it stopped.")
        else:
            self.message.setText(f"<b>Download failed:</b> {html.escape(error_text(exc))}")
        self._on_table_selection_changed()

    def _show_progress(self, on: bool) -> None:
        self.progress.setVisible(on)
        self.cancel_button.setVisible(on)
        if on:
            self.progress.setRange(0, 0)

    def reject(self) -> None:
        self.cancel_download()
        super().reject()
