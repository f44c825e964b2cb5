"""The project's runs history: a table of runs; for the selected runs (one, or several to
compare) their curves, per-class IoU side by side, settings and data snapshots; resume a
stopped run; make a run's best model the project's active model; re-attach to a run going on
on a host (runs/<id>/remote.json) that this app no longer follows."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.project import Project
from segstudio.core.runs import RunInfo, active_model, list_runs, set_active_model
from segstudio.ui.training.plots import (
    ClassBars,
    ClassTable,
    CurvePair,
    add_curve,
    make_plot,
    set_epoch_ticks,
    set_series,
    worst_first,
)

COLUMNS = ("run", "model", "status", "epochs", "best mIoU", "images (train/val)", "device", "ran on", "started")
HERE = "this computer"
SETTINGS_SHOWN = ("arch", "encoder", "pretrained", "epochs", "batch_size", "crop_size", "lr", "schedule", "loss",
                  "augment", "class_weights", "amp", "device", "patience", "seed")


def run_host(run_dir: Path) -> str | None:
    """The host a run ran on (its remote.json, written when it was launched there), else None."""
    try:
        data = json.loads((Path(run_dir) / "remote.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    host = data.get("host") if isinstance(data, dict) else None
    return str(host) if host else None


def is_detached(run: RunInfo) -> bool:
    """A run on a host with no final event here yet: it may be going on there, unfollowed."""
    return not run.outcome and run_host(run.run_dir) is not None


class RunsView(QWidget):
    resume_requested = Signal(str)  # run id
    reattach_requested = Signal(str)  # run id
    message = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.runs: list[RunInfo] = []
        self.busy = False  # a run is training: no resume meanwhile
        self.running_id: str | None = None  # the run the worker is training now
        # In the window the workspace writes it (and tells the Model part); alone, core does.
        self.write_active_model: Callable[[Project, Path | None], None] = set_active_model
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._on_table_selection_changed)
        self.refresh_button = QPushButton("Refresh")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the selected stopped run from its last checkpoint")
        self.active_button = QPushButton("Make active model")
        self.active_button.setToolTip("Use this run's best model to pre-label images")
        self.folder_button = QPushButton("Open folder")
        self.reattach_button = QPushButton("Re-attach")
        self.reattach_button.setToolTip("Follow the selected run on its host again (it went on there)")
        self.reattach_button.clicked.connect(self._on_reattach_clicked)
        self.refresh_button.clicked.connect(self.refresh)
        self.resume_button.clicked.connect(self._on_resume_clicked)
        self.active_button.clicked.connect(self._on_active_clicked)
        self.folder_button.clicked.connect(self._on_folder_clicked)
        self.hint = QLabel("Select a run to see it; select two (Ctrl+click) to compare them.")
        self.hint.setWordWrap(True)
        buttons = QHBoxLayout()
        for button in (self.refresh_button, self.resume_button, self.reattach_button, self.active_button,
                       self.folder_button):
            buttons.addWidget(button)
        buttons.addStretch(1)

        self.miou_plot = make_plot("Validation mIoU", "mIoU", (0.0, 1.0))
        # Colours match the mIoU legend; a second legend of long run ids would hide the curves.
        self.loss_plot = make_plot("Loss, log (dashed: val)", "loss", log_y=True, legend=False)
        curves = CurvePair(self.miou_plot, self.loss_plot)
        self.class_bars = ClassBars("Per-class IoU at each run's best epoch (worst first)")
        self.class_table = ClassTable()
        classes = QSplitter(Qt.Orientation.Vertical)
        classes.addWidget(self.class_bars)
        classes.addWidget(self.class_table)
        self.settings_table = QTableWidget(0, 0)
        self.settings_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.settings_table.horizontalHeader().setStretchLastSection(True)
        self.details = QTabWidget()
        self.details.addTab(curves, "Curves")
        self.details.addTab(classes, "Per class")
        self.details.addTab(self.settings_table, "Settings and data")
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addLayout(buttons)
        top_layout.addWidget(self.hint)
        top_layout.addWidget(self.table, 1)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(self.details)
        splitter.setSizes([200, 400])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)
        self._update_buttons()

    # -- data -------------------------------------------------------------------------------
    def set_project(self, project: Project | None) -> None:
        self.project = project
        self.refresh()

    def refresh(self) -> None:
        selected = {run.run_id for run in self.selected_runs()}
        self.runs = list_runs(self.project.root) if self.project is not None else []
        active = active_model(self.project) if self.project is not None else None
        self.table.blockSignals(True)
        self.table.clearContents()
        self.table.setRowCount(len(self.runs))
        bold = QFont(self.font())
        bold.setBold(True)
        for row, run in enumerate(self.runs):
            texts = self._row(run)
            if run.run_id == self.running_id:
                texts[2] = "running"
            elif is_detached(run):
                texts[2] = "going on there (re-attach)"
            for column, text in enumerate(texts):
                item = QTableWidgetItem(text)
                if active is not None and run.model_dir is not None and _same(run.model_dir, active):
                    item.setFont(bold)
                    if column == 0:
                        item.setText(f"★ {text}")
                        item.setToolTip("the project's active model")
                self.table.setItem(row, column, item)
            if run.run_id in selected:
                self.table.selectRow(row)
        self.table.blockSignals(False)
        self._on_table_selection_changed()

    @staticmethod
    def _row(run: RunInfo) -> list[str]:
        best = run.best
        counts = run.snapshot.get("counts") or {}
        started = run.snapshot.get("started") or {}
        images = f"{counts.get('train', '?')}/{counts.get('val', '?')}" if counts else "n/a"
        planned = run.planned_epochs
        return [
            run.run_id, run.model_label, run.status,
            f"{run.completed_epochs}/{planned}" if planned else str(run.completed_epochs),
            f"{best['miou']:.3f}" if best else "n/a", images,
            str(started.get("device") or run.config.get("device") or ""),
            run_host(run.run_dir) or HERE,
            time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created)) if run.created else "",
        ]

    def selected_runs(self) -> list[RunInfo]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self.runs[row] for row in rows if row < len(self.runs)]

    def select_runs(self, run_ids: list[str]) -> None:
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for row, run in enumerate(self.runs):
            if run.run_id in run_ids:
                self.table.selectRow(row)
        self.table.setSelectionMode(mode)

    def detached_runs(self) -> list[RunInfo]:
        """Runs on hosts this app does not follow (newest first), the running one aside."""
        return [run for run in self.runs if run.run_id != self.running_id and is_detached(run)]

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self._update_buttons()

    # -- details ----------------------------------------------------------------------------
    def _on_table_selection_changed(self) -> None:
        runs = self.selected_runs()
        self._show_curves(runs)
        self._show_classes(runs)
        self._show_settings(runs)
        self._update_buttons()

    def _update_buttons(self) -> None:
        runs = self.selected_runs()
        one = runs[0] if len(runs) == 1 else None
        # A host's run that ended keeps its checkpoint there (the host says so if it has none).
        ended_on_host = bool(one and one.outcome and run_host(one.run_dir))
        self.resume_button.setEnabled(bool(one and (one.resumable or ended_on_host) and one.status != "finished"
                                           and not self.busy))
        self.active_button.setEnabled(bool(one and one.model_dir is not None))
        self.reattach_button.setEnabled(bool(one and not self.busy and is_detached(one)))
        self.folder_button.setEnabled(one is not None)

    def _show_curves(self, runs: list[RunInfo]) -> None:
        self.loss_plot.clear()
        self.miou_plot.clear()
        self.miou_plot.addLegend(offset=(-8, 8), labelTextSize="8pt").clear()
        for index, run in enumerate(runs[:6]):
            set_series(add_curve(self.miou_plot, run.run_id, index), run.series("miou"))
            set_series(add_curve(self.loss_plot, f"{run.run_id} train", index), run.series("train_loss"))
            set_series(add_curve(self.loss_plot, f"{run.run_id} val", index, dashed=True), run.series("val_loss"))
        last = max((run.completed_epochs for run in runs[:6]), default=1)
        for plot in (self.miou_plot, self.loss_plot):
            set_epoch_ticks(plot, last)

    def _show_classes(self, runs: list[RunInfo]) -> None:
        runs = runs[:6]
        per_run = [run.per_class("iou") for run in runs]
        names: list[str] = []
        for values in per_run:
            names += [n for n in values if n not in names]
        if not names:
            self.class_bars.set_values([], [])
            self.class_table.set_rows([], {})
            return
        # Worst first by the first selected run (the one compared against).
        first = {name: per_run[0].get(name) for name in names}
        order = worst_first(first)
        self.class_bars.set_values(order, [(run.run_id, [v.get(n) for n in order]) for run, v in zip(runs, per_run)])
        columns = [run.run_id for run in runs]
        if len(runs) == 2:
            columns.append("difference")
        rows: dict[str, list[float | None]] = {}
        for name in names:
            values = [v.get(name) for v in per_run]
            if len(runs) == 2:
                values.append(None if None in values else values[1] - values[0])  # type: ignore[operator]
            rows[name] = values
        self.class_table.set_rows(columns, rows)

    def _show_settings(self, runs: list[RunInfo]) -> None:
        table = self.settings_table
        table.clear()
        table.setColumnCount(len(runs))
        table.setHorizontalHeaderLabels([run.run_id for run in runs])
        keys = list(SETTINGS_SHOWN) + ["train images", "val images", "validation", "device used", "precision",
                                       "ran on", "status", "best epoch", "model"]
        table.setRowCount(len(keys))
        table.setVerticalHeaderLabels(keys)
        bold = QFont(self.font())
        bold.setBold(True)
        for column, run in enumerate(runs):
            values = _settings_values(run)
            for row, key in enumerate(keys):
                table.setItem(row, column, QTableWidgetItem(values.get(key, "")))
        if len(runs) > 1:  # differences in bold: what changed between the runs
            for row in range(len(keys)):
                texts = {table.item(row, c).text() for c in range(len(runs))}
                if len(texts) > 1:
                    for column in range(len(runs)):
                        table.item(row, column).setFont(bold)

    # -- actions ----------------------------------------------------------------------------
    def _on_resume_clicked(self) -> None:
        runs = self.selected_runs()
        if len(runs) == 1:
            self.resume_requested.emit(runs[0].run_id)

    def _on_reattach_clicked(self) -> None:
        runs = self.selected_runs()
        if len(runs) == 1:
            self.reattach_requested.emit(runs[0].run_id)

    def _on_active_clicked(self) -> None:
        runs = self.selected_runs()
        if len(runs) != 1 or self.project is None or runs[0].model_dir is None:
            return
        self.write_active_model(self.project, runs[0].model_dir)
        self.message.emit(f"The model of run {runs[0].run_id} is now the project's active model.")
        self.refresh()

    def _on_folder_clicked(self) -> None:
        runs = self.selected_runs()
        if len(runs) == 1:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(runs[0].run_dir)))


def _settings_values(run: RunInfo) -> dict[str, str]:
    values = {key: "none" if run.config.get(key) is None else str(run.config.get(key)) for key in SETTINGS_SHOWN}
    counts = run.snapshot.get("counts") or {}
    started = run.snapshot.get("started") or {}
    values["train images"] = str(counts.get("train", started.get("train_images", "n/a")))
    values["val images"] = str(counts.get("val", started.get("val_images", "n/a")))
    values["validation"] = str(started.get("val_source") or run.snapshot.get("val_source") or "n/a")
    values["device used"] = str(started.get("device") or "n/a")
    values["precision"] = str(started.get("amp") or "n/a")
    values["status"] = run.status
    best = run.best
    values["best epoch"] = f"{best.get('epoch')} (mIoU {best['miou']:.3f})" if best else "n/a"
    values["model"] = str(run.model_dir) if run.model_dir else "none yet"
    values["ran on"] = run_host(run.run_dir) or HERE
    return values


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b

