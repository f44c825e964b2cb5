"""Small image thumbnails, decoded on a worker thread and cached in memory.

The dataset list asks for a thumbnail when it paints a row; the first request starts a
job and the row repaints when `ready` arrives, so scrolling 5000 images never blocks.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import cv2
from PySide6.QtCore import QObject, QSize, QThreadPool, Signal
from PySide6.QtGui import QImage, QPixmap

from segstudio.core import display, gigapixel, imageio
from segstudio.ui.jobs import Job, run_in_background
from segstudio.ui.qimages import rgb_qimage

THUMB_SIZE = QSize(72, 54)


def make_thumbnail(path: Path, size: QSize, _job: Job[QImage],
                   mapping: display.DisplayMapping | None = None, cache_dir: Path | None = None) -> QImage:
    """Read and shrink one image (worker thread; raises like imageio on a bad file); through
    the project's display mapping when it has one, so a thumbnail looks like the canvas."""
    if gigapixel.is_gigapixel_file(path):  # never decoded whole: its smallest pyramid level
        rgb = gigapixel.overview(path, mapping, cache_dir=cache_dir)
    else:
        rgb = imageio.read_image_rgb(path) if mapping is None else display.render(imageio.read_image_raw(path), mapping)
    height, width = rgb.shape[:2]
    scale = min(size.width() / width, size.height() / height, 1.0)
    small = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    return rgb_qimage(small)  # a QImage (unlike a QPixmap) may be built off the UI thread


class ThumbnailCache(QObject):
    """Thumbnails by image id; `ready(image_id)` says one has arrived."""

    ready = Signal(str)

    def __init__(self, size: QSize = THUMB_SIZE, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.size = size
        self._pixmaps: dict[str, QPixmap] = {}
        # Shown while a thumbnail is re-rendered for a new display mapping: no blank flash.
        self._stale: dict[str, QPixmap] = {}
        self._pending: set[str] = set()
        self._failed: set[str] = set()
        self._jobs: dict[str, Job[QImage]] = {}
        # Image ids repeat across projects; a thumbnail started for the previous project
        # must not land in this one's cache.
        self._generation = 0
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)  # thumbnails must not compete with painting
        self.mapping: display.DisplayMapping | None = None  # the project's, when it has one
        # The project's built pyramids (gigapixel thumbnails read their smallest level).
        self.pyramid_dir: Path | None = None

    def set_mapping(self, mapping: display.DisplayMapping | None) -> None:
        """Render thumbnails through `mapping` (None: as photos) from now on; the ones made
        before stay on show until their new rendering arrives."""
        if mapping != self.mapping:
            stale = {**self._stale, **self._pixmaps}
            self.mapping = mapping
            self.clear()
            self._stale = stale

    def get(self, image_id: str, path: Path) -> QPixmap | None:
        pixmap = self._pixmaps.get(image_id)
        if pixmap is not None or image_id in self._pending or image_id in self._failed:
            return pixmap if pixmap is not None else self._stale.get(image_id)
        self._pending.add(image_id)
        self._jobs[image_id] = run_in_background(partial(make_thumbnail, path, QSize(self.size), mapping=self.mapping,
                                                  cache_dir=self.pyramid_dir),
                          partial(self._on_job_done, self._generation, image_id),
                          partial(self._on_job_failed, self._generation, image_id),
                          pool=self._pool, owner=self)
        return self._stale.get(image_id)

    def failed(self, image_id: str) -> bool:
        return image_id in self._failed

    def retry(self, image_id: str) -> None:
        """Try a failed thumbnail again (a gigapixel image has one once its pyramid is built
        by opening it); the view asks for it when `ready` repaints the row."""
        if image_id in self._failed:
            self._failed.discard(image_id)
            self.ready.emit(image_id)

    def _on_job_done(self, generation: int, image_id: str, image: QImage) -> None:
        if generation != self._generation:
            return
        self._pending.discard(image_id)
        self._jobs.pop(image_id, None)
        self._pixmaps[image_id] = QPixmap.fromImage(image)
        self._stale.pop(image_id, None)
        self.ready.emit(image_id)

    def _on_job_failed(self, generation: int, image_id: str, _exc: BaseException) -> None:
        if generation != self._generation:
            return
        self._pending.discard(image_id)
        self._jobs.pop(image_id, None)
        self._stale.pop(image_id, None)
        self._failed.add(image_id)  # the row shows a placeholder; the list says why elsewhere
        self.ready.emit(image_id)

    def clear(self) -> None:
        """Forget everything; queued jobs are dropped, a running one finishes unheard."""
        for job in self._jobs.values():
            job.cancel()
        self._jobs.clear()
        self._generation += 1
        self._pixmaps.clear()
        self._stale.clear()
        self._pending.clear()
        self._failed.clear()

    def wait(self, msecs: int = 5000) -> bool:
        return self._pool.waitForDone(msecs)
