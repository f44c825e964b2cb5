"""Autosave: timers that push the session's edits to disk and to the recovery journal.

A mask is saved 3 s after the last edit, and at the latest 20 s after the first unsaved
one (so steady painting is saved too); in between, dirty masks go to the recovery journal
every 2 s, so a crash or kill loses at most that much.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer

from segstudio.core.saving import SaveResult
from segstudio.ui.project.session import EditingSession

SAVE_DELAY_MS = 3000
SAVE_MAX_DELAY_MS = 20000
JOURNAL_INTERVAL_MS = 2000


class Autosaver(QObject):
    """Qt timer glue between an EditingSession's `edited` signal and its save/journal calls."""

    def __init__(self, session: EditingSession, save_delay_ms: int = SAVE_DELAY_MS,
                 max_delay_ms: int = SAVE_MAX_DELAY_MS, journal_interval_ms: int = JOURNAL_INTERVAL_MS,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._save_timer = self._timer(save_delay_ms, single_shot=True)
        self._max_timer = self._timer(max_delay_ms, single_shot=True)
        self._journal_timer = self._timer(journal_interval_ms, single_shot=True)
        self._save_timer.timeout.connect(self._on_save_timer_timeout)
        self._max_timer.timeout.connect(self._on_save_timer_timeout)
        self._journal_timer.timeout.connect(self._on_journal_timer_timeout)
        session.edited.connect(self._on_session_edited)
        session.saved.connect(self._on_session_saved)
        self.enabled = save_delay_ms > 0

    def _timer(self, interval_ms: int, single_shot: bool) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(single_shot)
        timer.setInterval(max(0, interval_ms))
        return timer

    def _on_session_edited(self, _image_id: str) -> None:
        if self.enabled:
            self._save_timer.start()  # restarts: 3 s after the *last* edit
            if not self._max_timer.isActive():
                self._max_timer.start()
        if not self._journal_timer.isActive():
            self._journal_timer.start()

    def _on_session_saved(self, _image_id: str) -> None:
        if not self.session.has_unsaved():
            self._max_timer.stop()
            self._save_timer.stop()

    def _on_save_timer_timeout(self) -> None:
        self._save_timer.stop()
        self._max_timer.stop()
        result = self.session.save_all(background=True)
        if not result.saved or self.session.has_unsaved():
            # deferred (mid-stroke, an older write in flight), queued (look again once it is
            # written) or failed (the session said why; the disk may have room next time)
            self._save_timer.start()

    def _on_journal_timer_timeout(self) -> None:
        if self.session.has_unsaved():
            self.session.write_journal()
            # Tick on while anything is unsaved: a journal write that failed (disk full, a
            # drive gone) is retried even if no further edit comes.
            self._journal_timer.start()

    def set_intervals(self, save_delay_ms: int | None = None, max_delay_ms: int | None = None,
                      journal_interval_ms: int | None = None) -> None:
        """Change the timings (tests and the crash driver shorten them; 0 save delay = off)."""
        if save_delay_ms is not None:
            self._save_timer.setInterval(max(0, save_delay_ms))
            self.enabled = save_delay_ms > 0
        if max_delay_ms is not None:
            self._max_timer.setInterval(max(0, max_delay_ms))
        if journal_interval_ms is not None:
            self._journal_timer.setInterval(max(0, journal_interval_ms))

    def flush(self) -> SaveResult:
        """Save every dirty document now (also called before quitting or switching project)."""
        return self.session.save_all()

    def stop(self) -> None:
        for timer in (self._save_timer, self._max_timer, self._journal_timer):
            timer.stop()
