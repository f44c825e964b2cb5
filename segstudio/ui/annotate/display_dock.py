"""The Display dock: which bands show as red, green and blue (or one as grey), and each shown
band's contrast limits over its histogram, for projects with a channel table.

A change re-renders the open image at once (the canvas and the session's cached pixels),
then, after a pause, is saved into the project's settings (merged under the manifest lock
like any setting) and re-renders the thumbnails. Photo projects have no mapping: the dock
stays hidden and nothing they show changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QSignalBlocker, QTimer, Signal
from PySide6.QtGui import QColor, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from segstudio.core import channels, display, gigapixel_project, imagery
from segstudio.core.errors import SegstudioError
from segstudio.core.project import ImageRecord, Project
from segstudio.ui.annotate.contrast_slider import ContrastSlider
from segstudio.ui.jobs import Job, error_text, run_in_background

if TYPE_CHECKING:
    from segstudio.ui.annotate.canvas import Canvas
    from segstudio.ui.project.dataset_dock import DatasetDock
    from segstudio.ui.project.workspace import Workspace

RENDER_DELAY_MS = 30  # a dragged handle re-renders the image at most this often
SAVE_DELAY_MS = 700  # ...and is saved (and the thumbnails redrawn) once the user pauses
COLOURS = (("R", QColor(235, 80, 80)), ("G", QColor(80, 200, 90)), ("B", QColor(90, 140, 240)))
GREY = ("Grey", QColor(220, 220, 220))


class _BandRow(QWidget):
    """One shown colour: its band picker, contrast slider and exact limits."""

    def __init__(self, name: str, colour: QColor, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 2, 0, 2)
        grid.setVerticalSpacing(2)
        self.label = QLabel(name, self)
        self.label.setMinimumWidth(30)
        self.band = QComboBox(self)
        self.slider = ContrastSlider(colour, self)
        self.low, self.high = QDoubleSpinBox(self), QDoubleSpinBox(self)
        limits = QHBoxLayout()
        for text, spin in (("low", self.low), ("high", self.high)):
            spin.setRange(-1e12, 1e12)
            spin.setKeyboardTracking(False)
            limits.addWidget(QLabel(text, self))
            limits.addWidget(spin, 1)
        grid.addWidget(self.label, 0, 0)
        grid.addWidget(self.band, 0, 1)
        grid.addWidget(self.slider, 1, 0, 1, 2)
        grid.addLayout(limits, 2, 0, 1, 2)
        self.histogram_of: tuple[str | None, int] | None = None  # (image id, band) drawn now
        self.set_colour(name, colour)

    def set_colour(self, name: str, colour: QColor) -> None:
        self.label.setText(name)
        self.label.setStyleSheet(f"color: {colour.name()}; font-weight: bold")
        self.slider.colour = QColor(colour)
        self.slider.update()


class DisplayDock(QDockWidget):
    """The open project's display mapping, edited; `mapping_changed` after each change."""

    mapping_changed = Signal(object)  # the new DisplayMapping
    message = Signal(str)  # for the status bar

    def __init__(self, workspace: Workspace, canvas: Canvas, dataset_dock: DatasetDock,
                 parent: QWidget | None = None) -> None:
        super().__init__("Display", parent)
        self.setObjectName("display_dock")
        self.workspace, self.canvas, self.dataset_dock = workspace, canvas, dataset_dock
        self.project: Project | None = None
        self.table: channels.ChannelTable | None = None
        self.mapping: display.DisplayMapping | None = None
        self._raw: tuple[str, np.ndarray] | None = None  # the open image's own pixels, by id
        self._data_ranges: dict[int, tuple[float, float]] = {}  # per band, of the open image
        self._reset_job: Job[tuple[tuple[float, float], ...]] | None = None
        self._read_only = False  # the open project's window writes nothing (kept past its close)
        # Big images load on a worker, rendered through the mapping of that moment: the count
        # of changes when each load started says whether it arrives stale.
        self._changes = 0
        self._loads: dict[str, int] = {}
        body = QWidget(self)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(6, 4, 6, 4)
        top = QHBoxLayout()
        top.addWidget(QLabel("Show", body))
        self.mode = QComboBox(body)
        self.mode.addItem("Colour (R, G, B)", "rgb")
        self.mode.addItem("One band (grey)", "grey")
        top.addWidget(self.mode, 1)
        layout.addLayout(top)
        self.rows = [_BandRow(name, colour, body) for name, colour in COLOURS]
        for row in self.rows:
            layout.addWidget(row)
        self.reset_button = QPushButton("Reset contrast to the dataset's", body)
        self.reset_button.setToolTip("Contrast limits from the 0.5 and 99.5 percentiles of each band "
                                     "over the project's images (as on import)")
        layout.addWidget(self.reset_button)
        layout.addStretch(1)
        self.setWidget(body)
        self._render_timer = self._timer(RENDER_DELAY_MS, self._on_render_timer_timeout)
        self._save_timer = self._timer(SAVE_DELAY_MS, self._on_save_timer_timeout)
        self.mode.currentIndexChanged.connect(self._on_mode_changed)
        for index, row in enumerate(self.rows):
            row.band.currentIndexChanged.connect(partial(self._on_row_band_changed, index))
            row.slider.limits_changed.connect(partial(self._on_row_limits_changed, index))
            row.low.valueChanged.connect(partial(self._on_row_spin_changed, index))
            row.high.valueChanged.connect(partial(self._on_row_spin_changed, index))
        self.reset_button.clicked.connect(self.reset_contrast)
        workspace.project_changed.connect(self._on_workspace_project_changed)
        workspace.image_opened.connect(self._on_workspace_image_opened)
        workspace.project_refreshed.connect(self._on_workspace_project_refreshed)

    def _timer(self, delay_ms: int, slot: object) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setInterval(delay_ms)
        timer.timeout.connect(slot)
        return timer

    # -- the mapping ------------------------------------------------------------------------------
    def set_mapping(self, mapping: display.DisplayMapping) -> None:
        """Show the open project through `mapping`: the image now, settings and thumbnails soon."""
        if self.project is None or mapping == self.mapping:
            return
        self.mapping = mapping
        self._changes += 1
        self.project.settings[display.SETTINGS_KEY] = mapping.to_dict()  # later reads use it
        self._sync_controls()
        if not self._render_timer.isActive():  # throttled: a drag re-renders as it goes
            self._render_timer.start()
        self._save_timer.start()  # debounced: saved once the user pauses
        self.mapping_changed.emit(mapping)

    def pick(self, colour: int, band: int) -> None:
        """Show `band` as colour 0, 1, 2 (R, G, B); in grey mode colour 0 is the grey band."""
        if self.mapping is None:
            return
        if self.mapping.mode == "grey":
            self.set_mapping(replace(self.mapping, grey=band))
        else:
            rgb = list(self.mapping.rgb)
            rgb[colour] = band
            self.set_mapping(replace(self.mapping, rgb=(rgb[0], rgb[1], rgb[2])))

    def set_mode(self, mode: display.Mode) -> None:
        if self.mapping is not None:
            self.set_mapping(replace(self.mapping, mode=mode))

    def set_limits(self, band: int, low: float, high: float) -> None:
        if self.mapping is not None:
            self.set_mapping(self.mapping.with_limits(band, low, high))

    def reset_contrast(self) -> None:
        """Limits back to the dataset-wide percentiles (read on a worker: up to 16 images)."""
        if self.project is None or self.table is None or self._reset_job is not None:
            return
        count = self.table.count
        records = [r for r in self.project.images if r.channels in (0, count)]
        self.reset_button.setEnabled(False)
        self._reset_job = run_in_background(partial(_dataset_limits, self.project, records),
                                            partial(self._on_reset_done, self.project),
                                            self._on_reset_failed, owner=self)

    def flush(self) -> None:
        """Render and save what is pending now (closing, tests)."""
        if self._render_timer.isActive():
            self._render_timer.stop()
            self._on_render_timer_timeout()
        if self._save_timer.isActive():
            self._save_timer.stop()
            self._on_save_timer_timeout()

    # -- following the workspace ------------------------------------------------------------------
    def _on_workspace_project_changed(self, project: Project | None) -> None:
        self.flush()  # a change made just before closing is still saved, into that project
        self.project, self.table, self.mapping, self._raw = project, None, None, None
        self._read_only = self.workspace.read_only
        self._loads.clear()
        if project is not None and self.workspace.session is not None:
            self.workspace.session.loading.connect(self._on_session_loading)
        self._data_ranges.clear()
        if project is not None:
            try:
                self.table = channels.table_of(project.settings)
                self.mapping = display.mapping_of(project.settings)
            except SegstudioError as exc:
                self.message.emit(str(exc))
                self.table = self.mapping = None
        if self.mapping is None or self.table is None or len(self.mapping.limits) != self.table.count:
            self.mapping = None
            self.hide()  # photo projects (and the welcome screen) have nothing to map
            return
        self._fill_band_pickers(self.table)
        self._sync_controls()
        self.show()

    def _on_session_loading(self, image_id: str) -> None:
        self._loads[image_id] = self._changes

    def _on_workspace_image_opened(self, image_id: str) -> None:
        self._raw = None
        self._data_ranges.clear()
        started = self._loads.pop(image_id, self._changes)
        if self.mapping is not None and started != self._changes:
            self._on_render_timer_timeout()  # loaded through an older mapping
        if self.mapping is not None and self.isVisible():
            self._sync_controls()

    def _on_workspace_project_refreshed(self, _change: object) -> None:
        """Another program saved the manifest: follow its display mapping unless ours is
        waiting to be saved (then ours is written over it, as the last choice)."""
        if self.project is None or self.mapping is None or self._save_timer.isActive():
            return
        try:
            theirs = display.mapping_of(self.project.settings)
        except SegstudioError:
            return
        if theirs is not None and theirs != self.mapping and len(theirs.limits) == len(self.mapping.limits):
            self.mapping = theirs
            self._sync_controls()
            self._on_render_timer_timeout()
            self.dataset_dock.set_mapping(theirs)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self.mapping is not None:
            self._sync_controls()  # histograms are skipped while hidden

    # -- controls -> mapping ----------------------------------------------------------------------
    def _on_mode_changed(self, _index: int) -> None:
        self.set_mode(self.mode.currentData())

    def _on_row_band_changed(self, colour: int, index: int) -> None:
        if index >= 0:
            self.pick(colour, index)

    def _on_row_limits_changed(self, colour: int, low: float, high: float) -> None:
        if self.mapping is not None:
            self.set_limits(self.mapping.shown[colour], low, high)

    def _on_row_spin_changed(self, colour: int, _value: float) -> None:
        if self.mapping is not None:
            row = self.rows[colour]
            self.set_limits(self.mapping.shown[colour], row.low.value(), row.high.value())

    # -- mapping -> controls ----------------------------------------------------------------------
    def _fill_band_pickers(self, table: channels.ChannelTable) -> None:
        decimals = 0 if table.dtype.startswith(("uint", "int")) else 4
        for row in self.rows:
            with QSignalBlocker(row.band):
                row.band.clear()
                row.band.addItems([f"{i + 1}: {name}" for i, name in enumerate(table.names)])
            for spin in (row.low, row.high):
                spin.setDecimals(decimals)

    def _sync_controls(self) -> None:
        mapping = self.mapping
        if mapping is None:
            return
        grey = mapping.mode == "grey"
        with QSignalBlocker(self.mode):
            self.mode.setCurrentIndex(1 if grey else 0)
        for colour, row in enumerate(self.rows):
            row.setVisible(colour == 0 or not grey)
            name, qcolour = GREY if grey else COLOURS[colour]
            row.set_colour(name, qcolour)
            band = mapping.shown[colour]
            low, high = mapping.limits[band]
            for widget in (row.band, row.low, row.high):
                widget.blockSignals(True)
            row.band.setCurrentIndex(band)
            row.low.setValue(low)
            row.high.setValue(high)
            for widget in (row.band, row.low, row.high):
                widget.blockSignals(False)
            if self.isVisible() and row.isVisibleTo(self):
                self._update_histogram(row, band, low, high)
            row.slider.set_limits(low, high)

    def _update_histogram(self, row: _BandRow, band: int, low: float, high: float) -> None:
        raw = self._current_raw()
        if raw is None:
            row.slider.set_histogram(np.zeros(0), min(low, high - 1), high)
            return
        same = row.histogram_of == (self._raw_id(), band)
        # the range only grows while one band of one image is shown: a handle being dragged
        # never has the scale change under it
        base = row.slider.value_range if same else self._band_range(raw, band)
        span = (min(base[0], low), max(base[1], high))
        if not same or row.slider.value_range != span:
            counts, _ = display.histogram(raw, band, span[0], span[1])
            row.slider.set_histogram(counts, *span)
            row.histogram_of = (self._raw_id(), band)

    def _band_range(self, raw: np.ndarray, band: int) -> tuple[float, float]:
        found = self._data_ranges.get(band)
        if found is None:
            sample = channels.sample_pixels(raw)[:, band]
            sample = sample[np.isfinite(sample)]
            found = (float(sample.min()), float(sample.max())) if sample.size else (0.0, 1.0)
            self._data_ranges[band] = found
        return found

    # -- the open image -------------------------------------------------------------------------
    def _raw_id(self) -> str | None:
        return None if self._raw is None else self._raw[0]

    def _current_raw(self) -> np.ndarray | None:
        """The open image's own pixels (read once per image: for histograms and re-renders)."""
        session = self.workspace.session
        image_id = None if session is None else session.current_id
        if image_id is None or self.project is None:
            return None
        if self._raw is None or self._raw[0] != image_id:
            try:
                raw = (gigapixel_project.overview_raw(self.project, image_id)
                       if gigapixel_project.is_gigapixel_record(self.project, image_id)
                       else self.project.read_raw(image_id))  # a gigapixel image: its overview
                self._raw = (image_id, raw)
            except (SegstudioError, OSError) as exc:
                self.message.emit(f"cannot read '{image_id}' for its histogram: {exc}")
                return None
            self._data_ranges.clear()
        return self._raw[1]

    def _on_render_timer_timeout(self) -> None:
        session, mapping = self.workspace.session, self.mapping
        if session is None or mapping is None or session.document is None:
            return
        raw = self._current_raw()
        if raw is None:
            return  # could not be read: said so already
        try:
            rgb = display.render(raw, mapping)
        except SegstudioError as exc:
            self.message.emit(str(exc))
            return
        session.redisplay(rgb)
        if self.canvas.document is session.document and session.image is not None:
            self.canvas.set_image(session.image)

    def _on_save_timer_timeout(self) -> None:
        project, mapping = self.project, self.mapping
        if project is None or mapping is None:
            return
        self.dataset_dock.set_mapping(mapping)
        if self._read_only:
            return  # shown here only: a read-only window writes nothing
        try:
            project.save()
        except SegstudioError as exc:
            self.message.emit(f"the display settings were not saved: {exc}")

    def _on_reset_done(self, project: Project, limits: Sequence[tuple[float, float]]) -> None:
        self._reset_job = None
        self.reset_button.setEnabled(True)
        if project is self.project and self.mapping is not None and len(limits) == len(self.mapping.limits):
            self.set_mapping(replace(self.mapping, limits=tuple(limits)))

    def _on_reset_failed(self, exc: BaseException) -> None:
        self._reset_job = None
        self.reset_button.setEnabled(True)
        self.message.emit(f"cannot reset the contrast: {error_text(exc)}")


def _dataset_limits(project: Project, records: Sequence[ImageRecord],
                    _job: Job[tuple[tuple[float, float], ...]]) -> tuple[tuple[float, float], ...]:
    return imagery.dataset_limits(project, records)
