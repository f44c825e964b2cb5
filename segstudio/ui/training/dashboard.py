"""The live training dashboard: progress, curves, per-class figures, previews, messages.

It is fed the engine's events (`handle_event`) and only ever redraws on them: a curve
point per epoch, a progress line at most twice a second. Preview PNGs are decoded on the
thread pool, so a big preview never stalls painting on the canvas.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QObject, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QScrollArea,
    QSlider,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from segstudio.ui.jobs import Job, run_in_background
from segstudio.ui.qimages import rgb_qimage
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

CURVES = (("train_loss", "train loss", 0, "loss"), ("val_loss", "val loss", 1, "loss"),
          ("miou", "mIoU", 0, "metric"), ("mean_dice", "mean Dice", 1, "metric"),
          ("pixel_accuracy", "pixel accuracy", 2, "metric"))


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class _ImageLoader(QObject):
    """Decodes preview PNGs on pool threads (ui.jobs) into numpy arrays; they become
    QImages on the UI thread and `loaded` says so. No Qt object is touched off the UI thread."""

    loaded = Signal(int, int, object)  # generation, slot, QImage (null if unreadable)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)

    def load(self, generation: int, slot: int, path: str) -> None:
        run_in_background(partial(_decode, path), partial(self._on_job_done, generation, slot),
                          partial(self._on_job_failed, generation, slot), pool=self._pool, owner=self)

    def _on_job_done(self, generation: int, slot: int, pixels: np.ndarray | None) -> None:
        self.loaded.emit(generation, slot, _to_qimage(pixels))

    def _on_job_failed(self, generation: int, slot: int, _exc: BaseException) -> None:
        self.loaded.emit(generation, slot, QImage())  # shown as "(preview missing)"


def _decode(path: str, _job: Job[np.ndarray | None]) -> np.ndarray | None:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _to_qimage(pixels: np.ndarray | None) -> QImage:
    if pixels is None:
        return QImage()
    return rgb_qimage(pixels)


class PreviewStrip(QWidget):
    """The image | truth | prediction strips of one epoch, with a slider over epochs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.epochs: dict[int, list[str]] = {}
        self._shown_epoch: int | None = None
        self._generation = 0
        self._images: dict[int, QImage] = {}
        self._loader = _ImageLoader(self)
        self._loader.loaded.connect(self._on_loader_loaded)
        self.title = QLabel("No previews yet: they appear after each epoch.")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setEnabled(False)
        self.slider.valueChanged.connect(self._on_slider_value_changed)
        self.follow_latest = True
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.slider, 1)
        self.grid = QGridLayout()
        self.grid.setSpacing(6)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignHCenter)
        self.labels: list[QLabel] = []
        body = QWidget()
        body.setLayout(self.grid)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(body)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(header)
        layout.addWidget(QLabel("<small>each row: image &nbsp;|&nbsp; truth &nbsp;|&nbsp; prediction "
                                "(the same validation images every epoch)</small>"))
        layout.addWidget(self.scroll, 1)

    def clear(self) -> None:
        self.epochs.clear()
        self._generation += 1
        self._images.clear()
        for label in self.labels:
            label.clear()
        self.slider.setEnabled(False)
        self.title.setText("No previews yet: they appear after each epoch.")
        self.follow_latest = True

    def add_epoch(self, epoch: int, paths: list[str]) -> None:
        self.epochs[epoch] = list(paths)
        ordered = sorted(self.epochs)
        at_latest = self.slider.value() == self.slider.maximum()
        self.slider.blockSignals(True)
        self.slider.setRange(0, len(ordered) - 1)
        self.slider.setEnabled(len(ordered) > 1)
        self.slider.blockSignals(False)
        if self.follow_latest or at_latest:
            self.slider.setValue(len(ordered) - 1)
            self.show_epoch(epoch)

    def _on_slider_value_changed(self, value: int) -> None:
        ordered = sorted(self.epochs)
        if 0 <= value < len(ordered):
            self.follow_latest = value == len(ordered) - 1
            self.show_epoch(ordered[value])

    @property
    def shown_epoch(self) -> int | None:
        return self._shown_epoch if self.epochs else None

    def show_epoch(self, epoch: int) -> None:
        self._shown_epoch = epoch
        self._generation += 1
        self._images.clear()
        paths = self.epochs.get(epoch, [])
        self.title.setText(f"Epoch {epoch} ({len(paths)} validation images)")
        while len(self.labels) < len(paths):
            label = QLabel()
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.grid.addWidget(label, len(self.labels), 0)
            self.labels.append(label)
        for slot, label in enumerate(self.labels):
            label.setVisible(slot < len(paths))
        for slot, path in enumerate(paths):
            self._loader.load(self._generation, slot, path)

    def _on_loader_loaded(self, generation: int, slot: int, image: QImage) -> None:
        if generation != self._generation or slot >= len(self.labels):
            return
        self._images[slot] = image
        self._fit(slot)

    def loaded_count(self) -> int:
        return sum(1 for image in self._images.values() if not image.isNull())

    def _fit(self, slot: int) -> None:
        image = self._images.get(slot)
        if image is None or image.isNull():
            self.labels[slot].setText("(preview missing)")
            return
        width = max(120, self.scroll.viewport().width() - 12)
        pixmap = QPixmap.fromImage(image)
        # Fit the strip to the width: shrink big ones, enlarge small ones (at most 3x).
        width = min(width, pixmap.width() * 3)
        if pixmap.width() != width:
            pixmap = pixmap.scaledToWidth(width, Qt.TransformationMode.SmoothTransformation)
        self.labels[slot].setPixmap(pixmap)

    def resizeEvent(self, event) -> None:  # noqa: ANN001
        super().resizeEvent(event)
        for slot in self._images:
            self._fit(slot)


class Dashboard(QWidget):
    """Shows one run as it trains (or, replayed, as it trained)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.epoch_records: list[dict[str, Any]] = []
        self.run_info: dict[str, Any] = {}
        self._started_at: float | None = None
        self._fraction = 0.0
        self._running = False
        self._last_progress: dict[str, Any] = {}
        self._peak_memory: float | None = None

        self.headline = QLabel("No run yet.")
        self.headline.setWordWrap(True)
        self.headline.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.stats = QLabel("")
        self.stats.setTextFormat(Qt.TextFormat.RichText)
        self.stats.hide()  # shown with the first figures: empty, it took a row from a short dock

        self.loss_plot = make_plot("Loss (log scale)", "loss", log_y=True)
        self.metric_plot = make_plot("Validation", "score", (0.0, 1.0))
        self.curves = {}
        for key, name, index, which in CURVES:
            plot = self.loss_plot if which == "loss" else self.metric_plot
            self.curves[key] = add_curve(plot, name, index, dashed=key == "val_loss")
        curves = CurvePair(self.loss_plot, self.metric_plot)

        self.class_bars = ClassBars("Per class (latest epoch, worst first)")
        self.class_table = ClassTable()
        classes = QSplitter(Qt.Orientation.Vertical)
        classes.addWidget(self.class_bars)
        classes.addWidget(self.class_table)
        classes.setSizes([300, 200])

        self.previews = PreviewStrip()
        self.messages = QListWidget()
        self.messages.setWordWrap(True)

        self.tabs = QTabWidget()
        self.tabs.addTab(curves, "Curves")
        self.tabs.addTab(classes, "Classes")
        self.tabs.addTab(self.previews, "Previews")
        self.tabs.addTab(self.messages, "Messages")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.headline)
        layout.addWidget(self.progress)
        layout.addWidget(self.stats)
        layout.addWidget(self.tabs, 1)

        self._clock = QTimer(self)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._on_clock_timeout)

    # -- feeding ----------------------------------------------------------------------------
    def reset(self, headline: str = "Starting...") -> None:
        self.epoch_records.clear()
        self.run_info = {}
        self._started_at = time.monotonic()
        self._fraction = 0.0
        self._last_progress = {}
        self._peak_memory = None
        for curve in self.curves.values():
            curve.setData([], [])
        self.class_bars.set_values([], [])
        self.class_table.set_rows([], {})
        self.previews.clear()
        self.messages.clear()
        self.headline.setText(headline)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.stats.setText("")
        self.stats.hide()

    def set_running(self, running: bool) -> None:
        self._running = running
        if running:
            self._clock.start()
        else:
            self._clock.stop()
        self._update_stats()

    def handle_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        handler = getattr(self, f"_show_{kind}", None)
        if handler is not None:
            handler(event)

    def _show_run_started(self, event: dict[str, Any]) -> None:
        self.run_info = event
        self._started_at = time.monotonic()
        config = event.get("config") or {}
        crop = event.get("crop") or [config.get("crop_size")]
        resumed = f", resumed at epoch {event['start_epoch']}" if event.get("start_epoch") else ""
        self.headline.setText(
            f"<b>{event.get('run_id', '')}</b>: {config.get('arch')} / {config.get('encoder')} on "
            f"{event.get('device')} (AMP {event.get('amp')}), {event.get('train_images')} train / "
            f"{event.get('val_images')} val images, batch {config.get('batch_size')}, "
            f"crop {'x'.join(str(c) for c in crop)}{resumed}")
        self.progress.setFormat(f"epoch {int(event.get('start_epoch') or 0) + 1}/{event.get('epochs')}: starting")
        self._update_stats()

    def _show_progress(self, event: dict[str, Any]) -> None:
        self._last_progress = event
        epochs = max(1, int(event.get("epochs") or 1))
        start = int(self.run_info.get("start_epoch") or 0)
        steps = max(1, int(event.get("steps") or 1))
        done = (int(event.get("epoch", 1)) - 1) + int(event.get("step", 0)) / steps
        total_fraction = done / epochs
        self._fraction = (done - start) / max(1, epochs - start)
        self.progress.setValue(round(1000 * total_fraction))
        loss = event.get("loss")
        self.progress.setFormat(
            f"epoch {event.get('epoch')}/{epochs}  step {event.get('step')}/{steps}"
            + (f"  loss {loss:.4f}" if isinstance(loss, (int, float)) else ""))
        self._update_stats()

    def _show_epoch_end(self, event: dict[str, Any]) -> None:
        self.epoch_records.append(event)
        if isinstance(event.get("peak_gpu_memory_mb"), (int, float)):
            self._peak_memory = max(self._peak_memory or 0.0, float(event["peak_gpu_memory_mb"]))
        self._redraw_curves()
        self._redraw_classes(event)
        self._update_stats()

    def _show_preview(self, event: dict[str, Any]) -> None:
        self.previews.add_epoch(int(event.get("epoch", 0)), [str(p) for p in event.get("images") or []])

    def _show_checkpoint(self, event: dict[str, Any]) -> None:
        if event.get("kind") == "best":
            self.add_message("info", f"Epoch {event.get('epoch')} is the best so far; its weights are saved.")

    def _show_warning(self, event: dict[str, Any]) -> None:
        self.add_message("warning", str(event.get("message", "")))

    def _show_error(self, event: dict[str, Any]) -> None:
        self.add_message("error", str(event.get("message", "")))
        self.headline.setText(f"<b style='color:#B00020'>Training failed.</b> {_html(event.get('message', ''))}")
        self.tabs.setCurrentWidget(self.messages)

    def _show_stopped(self, event: dict[str, Any]) -> None:
        self.add_message("info", f"Stopped after epoch {event.get('epoch')}; checkpoint kept at "
                                 f"{event.get('checkpoint')}. Resume continues from it.")
        self.headline.setText(f"<b>Stopped</b> after epoch {event.get('epoch')}. The checkpoint is kept; "
                              "use Runs > Resume to continue.")

    def _show_run_finished(self, event: dict[str, Any]) -> None:
        best = event.get("best") or {}
        miou = best.get("miou")
        self.progress.setValue(1000)
        self.headline.setText(
            f"<b>Finished</b> ({event.get('reason')}) after {event.get('epochs')} epochs; best epoch "
            f"{event.get('best_epoch')}" + (f", val mIoU {miou:.3f}" if isinstance(miou, float) else "")
            + ". Make it the active model in Runs.")
        self.add_message("info", f"Model written to {event.get('model')}.")

    # -- drawing ----------------------------------------------------------------------------
    def _redraw_curves(self) -> None:
        for key, curve in self.curves.items():
            set_series(curve, [(int(r.get("epoch", i + 1)), _num(r.get(key)))
                               for i, r in enumerate(self.epoch_records)])
        last = int(self.epoch_records[-1].get("epoch", 1)) if self.epoch_records else 1
        for plot in (self.loss_plot, self.metric_plot):
            set_epoch_ticks(plot, last)

    def _redraw_classes(self, record: dict[str, Any]) -> None:
        per_class = record.get("per_class") or {}
        iou = {name: _num(v.get("iou")) for name, v in per_class.items()}
        order = worst_first(iou)
        self.class_bars.setTitle(f"Per class, epoch {record.get('epoch')} (worst first)", size="10pt")
        self.class_bars.set_values(order, [("IoU", [iou[n] for n in order]),
                                           ("Dice", [_num(per_class[n].get("dice")) for n in order])])
        self.class_table.set_rows(["IoU", "Dice", "accuracy"], {
            name: [_num(v.get("iou")), _num(v.get("dice")), _num(v.get("accuracy"))]
            for name, v in per_class.items()})

    def _on_clock_timeout(self) -> None:
        self._update_stats()

    def _update_stats(self) -> None:
        parts = []
        last = self.epoch_records[-1] if self.epoch_records else {}
        if self.epoch_records:
            parts.append(f"val mIoU <b>{_fmt(last.get('miou'))}</b> (best {_fmt(last.get('best_miou'))})")
            parts.append(f"Dice {_fmt(last.get('mean_dice'))}")
        speed = self._last_progress.get("images_per_s") or last.get("images_per_s")
        if isinstance(speed, (int, float)):
            parts.append(f"{speed:.1f} img/s")
        elapsed = time.monotonic() - self._started_at if self._started_at is not None and self._running else None
        if elapsed is not None:
            parts.append(f"elapsed {format_duration(elapsed)}")
            if self._fraction > 0.01:
                parts.append(f"ETA {format_duration(elapsed * (1 - self._fraction) / self._fraction)}")
        if self._peak_memory is not None:
            parts.append(f"GPU memory {self._peak_memory / 1024:.1f} GB")
        self.stats.setText(" &nbsp;·&nbsp; ".join(parts))
        self.stats.setVisible(bool(parts))

    def add_message(self, level: str, text: str) -> None:
        prefix = {"warning": "⚠ ", "error": "✖ ", "info": ""}.get(level, "")
        item = QListWidgetItem(prefix + text)
        if level == "error":
            item.setForeground(Qt.GlobalColor.darkRed)
        elif level == "warning":
            item.setForeground(Qt.GlobalColor.darkYellow)
        self.messages.addItem(item)
        self.messages.scrollToBottom()
        count = self.messages.count()
        self.tabs.setTabText(self.tabs.indexOf(self.messages), f"Messages ({count})")

    # -- replay -----------------------------------------------------------------------------
    def load_records(self, records: list[dict[str, Any]], previews_dir: Path | None = None) -> None:
        """Show a finished run from its metrics.jsonl records (and preview files)."""
        self.reset("")
        for record in records:
            self._show_epoch_end(record)
        if previews_dir is not None and previews_dir.is_dir():
            by_epoch: dict[int, list[str]] = {}
            for path in sorted(previews_dir.glob("epoch*_*.png")):
                try:
                    epoch = int(path.stem.split("_")[0][5:])
                except ValueError:
                    continue
                by_epoch.setdefault(epoch, []).append(str(path))
            for epoch in sorted(by_epoch):
                self.previews.add_epoch(epoch, by_epoch[epoch])


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "n/a"


def _html(text: Any) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br>")
