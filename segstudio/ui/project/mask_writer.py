"""Writes big masks (and their journal copies) on one worker thread, in order.

Encoding and checking an 8000x8000 mask takes seconds; done on the UI thread every few
seconds it would freeze painting. The session hands over a copy of the mask and the
document revision it was taken at; one thread runs the jobs first-in first-out, so a
later save of an image can never be overtaken by an earlier one.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from segstudio.core.errors import SegstudioError
from segstudio.core.project import Project
from segstudio.core.recovery import RecoveryJournal


class _Signals(QObject):
    saved = Signal(str, int, str)  # image id, revision, error ("" when it worked)
    journaled = Signal(str, int, str)


class _SaveJob(QRunnable):
    def __init__(self, signals: _Signals, project: Project, journal: RecoveryJournal,
                 image_id: str, mask: np.ndarray, revision: int) -> None:
        super().__init__()
        self._args = (signals, project, journal, image_id, mask, revision)

    def run(self) -> None:
        signals, project, journal, image_id, mask, revision = self._args
        try:
            project.write_mask(image_id, mask, save_manifest=False)
        except (SegstudioError, OSError) as exc:
            signals.saved.emit(image_id, revision, str(exc) or type(exc).__name__)
            return
        journal.discard(image_id)
        signals.saved.emit(image_id, revision, "")


class _JournalJob(QRunnable):
    def __init__(self, signals: _Signals, project: Project, journal: RecoveryJournal,
                 image_id: str, mask: np.ndarray, revision: int, status: str) -> None:
        super().__init__()
        self._args = (signals, project, journal, image_id, mask, revision, status)

    def run(self) -> None:
        signals, project, journal, image_id, mask, revision, status = self._args
        try:
            journal.record(image_id, mask, revision, status, project)
        except (SegstudioError, OSError) as exc:
            signals.journaled.emit(image_id, revision, str(exc))
            return
        signals.journaled.emit(image_id, revision, "")


class MaskWriter(QObject):
    """One ordered worker for mask saves and journal writes; results come back as signals."""

    saved = Signal(str, int, str)
    journaled = Signal(str, int, str)

    def __init__(self, project: Project, journal: RecoveryJournal, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project = project
        self.journal = journal
        self._signals = _Signals()
        self._signals.saved.connect(self.saved)
        self._signals.journaled.connect(self.journaled)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)  # first in, first out: saves never overtake each other
        self._in_flight: dict[str, int] = {}
        self.saved.connect(self._on_saved)

    def save(self, image_id: str, mask: np.ndarray, revision: int) -> None:
        self._in_flight[image_id] = self._in_flight.get(image_id, 0) + 1
        self._pool.start(_SaveJob(self._signals, self.project, self.journal, image_id, mask, revision))

    def record(self, image_id: str, mask: np.ndarray, revision: int, status: str) -> None:
        self._pool.start(_JournalJob(self._signals, self.project, self.journal, image_id, mask,
                                     revision, status))

    def saving(self, image_id: str) -> bool:
        return self._in_flight.get(image_id, 0) > 0

    def _on_saved(self, image_id: str, _revision: int, _error: str) -> None:
        count = self._in_flight.get(image_id, 0) - 1
        if count > 0:
            self._in_flight[image_id] = count
        else:
            self._in_flight.pop(image_id, None)

    def wait(self, msecs: int = -1) -> bool:
        """Block until every queued write is on disk (before synchronous saves and closing)."""
        return self._pool.waitForDone(msecs)
