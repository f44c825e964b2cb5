"""Small image thumbnails, decoded on a worker thread and cached in memory.

The dataset list asks for a thumbnail when it paints a row; the first request starts a
job and the row repaints when `ready` arrives, so scrolling 5000 images never blocks.
"""

from __future__ import annotations

from pathlib import Path

import cv2
from PySide6.QtCore import QObject, QRunnable, QSize, QThreadPool, Signal
from PySide6.QtGui import QImage, QPixmap

from segstudio.core import imageio
from segstudio.core.errors import SegstudioError

THUMB_SIZE = QSize(72, 54)


class _Signals(QObject):
    done = Signal(int, str, QImage)
    failed = Signal(int, str)


class _ThumbJob(QRunnable):
    def __init__(self, generation: int, image_id: str, path: Path, size: QSize) -> None:
        super().__init__()
        self.signals = _Signals()
        self._generation = generation
        self._image_id = image_id
        self._path = path
        self._size = size

    def run(self) -> None:
        try:
            rgb = imageio.read_image_rgb(self._path)
        except (SegstudioError, OSError, cv2.error, MemoryError):
            self.signals.failed.emit(self._generation, self._image_id)
            return
        height, width = rgb.shape[:2]
        scale = min(self._size.width() / width, self._size.height() / height, 1.0)
        small = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
        # QImage (unlike QPixmap) may be built off the UI thread; copy() owns the bytes.
        image = QImage(small.data, small.shape[1], small.shape[0], small.strides[0],
                       QImage.Format.Format_RGB888).copy()
        self.signals.done.emit(self._generation, self._image_id, image)


class ThumbnailCache(QObject):
    """Thumbnails by image id; `ready(image_id)` says one has arrived."""

    ready = Signal(str)

    def __init__(self, size: QSize = THUMB_SIZE, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.size = size
        self._pixmaps: dict[str, QPixmap] = {}
        self._pending: set[str] = set()
        self._failed: set[str] = set()
        self._jobs: list[_ThumbJob] = []
        # Image ids repeat across projects; a thumbnail started for the previous project
        # must not land in this one's cache.
        self._generation = 0
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)  # thumbnails must not compete with painting

    def get(self, image_id: str, path: Path) -> QPixmap | None:
        pixmap = self._pixmaps.get(image_id)
        if pixmap is not None or image_id in self._pending or image_id in self._failed:
            return pixmap
        self._pending.add(image_id)
        job = _ThumbJob(self._generation, image_id, path, self.size)
        job.setAutoDelete(False)
        job.signals.done.connect(self._on_job_done)
        job.signals.failed.connect(self._on_job_failed)
        self._jobs.append(job)
        self._pool.start(job)
        return None

    def failed(self, image_id: str) -> bool:
        return image_id in self._failed

    def _on_job_done(self, generation: int, image_id: str, image: QImage) -> None:
        if generation != self._generation:
            self._prune_jobs()
            return
        self._pending.discard(image_id)
        self._pixmaps[image_id] = QPixmap.fromImage(image)
        self._prune_jobs()
        self.ready.emit(image_id)

    def _on_job_failed(self, generation: int, image_id: str) -> None:
        if generation != self._generation:
            self._prune_jobs()
            return
        self._pending.discard(image_id)
        self._failed.add(image_id)
        self._prune_jobs()
        self.ready.emit(image_id)

    def _prune_jobs(self) -> None:
        if not self._pending and self._pool.activeThreadCount() == 0:
            self._jobs.clear()

    def clear(self) -> None:
        """Forget everything; queued jobs are dropped, a running one finishes unheard."""
        self._pool.clear()
        self._generation += 1
        self._pixmaps.clear()
        self._pending.clear()
        self._failed.clear()

    def wait(self, msecs: int = 5000) -> bool:
        return self._pool.waitForDone(msecs)
