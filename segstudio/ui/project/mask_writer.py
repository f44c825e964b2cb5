"""Writes big masks (and their journal copies) on one worker thread, in order.

Encoding and checking an 8000x8000 mask takes seconds; done on the UI thread every few
seconds it would freeze painting. The session hands over a copy of the mask and the
document revision it was taken at; one thread runs the jobs first-in first-out, so a
later save of an image can never be overtaken by an earlier one.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
from PySide6.QtCore import QObject, QThreadPool

from segstudio.core.project import Project
from segstudio.core.recovery import RecoveryJournal
from segstudio.ui.jobs import Job

Written = Callable[[str, int], None]  # image id, revision
Failed = Callable[[str, int, BaseException], None]  # image id, revision, the error


class MaskWriter(QObject):
    """One ordered worker for mask saves and journal writes; each job reports through the
    ui.jobs callbacks, on the UI thread, like every other background job."""

    def __init__(self, project: Project, journal: RecoveryJournal, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project = project
        self.journal = journal
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)  # first in, first out: saves never overtake each other
        self._in_flight: dict[str, int] = {}

    def save(self, image_id: str, mask: np.ndarray, revision: int, on_done: Written, on_error: Failed) -> Job[None]:
        """Queue an atomic write of `mask` (a copy the caller no longer touches)."""
        self._in_flight[image_id] = self._in_flight.get(image_id, 0) + 1
        return Job(partial(self._write, image_id, mask),
                   on_done=partial(self._on_save_done, image_id, revision, on_done),
                   on_error=partial(self._on_save_failed, image_id, revision, on_error),
                   owner=self).start(self._pool)

    def record(self, image_id: str, mask: np.ndarray, revision: int, status: str, on_error: Failed) -> Job[None]:
        """Queue a recovery-journal copy of `mask`; only a failure is reported."""
        return Job(partial(self._journal, image_id, mask, revision, status),
                   on_done=_ignore, on_error=partial(on_error, image_id, revision),
                   owner=self).start(self._pool)

    def saving(self, image_id: str) -> bool:
        return self._in_flight.get(image_id, 0) > 0

    def wait(self, msecs: int = -1) -> bool:
        """Block until every queued write is on disk (before synchronous saves and closing)."""
        return self._pool.waitForDone(msecs)

    # -- worker thread ---------------------------------------------------------------------------
    def _write(self, image_id: str, mask: np.ndarray, _job: Job[None]) -> None:
        self.project.write_mask(image_id, mask, save_manifest=False)
        self.journal.discard(image_id)

    def _journal(self, image_id: str, mask: np.ndarray, revision: int, status: str, _job: Job[None]) -> None:
        self.journal.record(image_id, mask, revision, status, self.project)

    # -- UI thread -------------------------------------------------------------------------------
    def _done_with(self, image_id: str) -> None:
        count = self._in_flight.get(image_id, 0) - 1
        if count > 0:
            self._in_flight[image_id] = count
        else:
            self._in_flight.pop(image_id, None)

    def _on_save_done(self, image_id: str, revision: int, on_done: Written, _result: None) -> None:
        self._done_with(image_id)
        on_done(image_id, revision)

    def _on_save_failed(self, image_id: str, revision: int, on_error: Failed, exc: BaseException) -> None:
        self._done_with(image_id)
        on_error(image_id, revision, exc)


def _ignore(_result: object) -> None:
    pass
