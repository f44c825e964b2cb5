"""One way to run work off the UI thread: `run_in_background(fn, on_done, on_error)`.

`fn(job)` runs on a QThreadPool thread; its result goes to `on_done(result)`, any exception
it raises to `on_error(exc)`, and `job.progress(*values)` calls to `on_progress(*values)`,
all on the UI thread. Every background job reports errors this one way.

Results travel through one long-lived dispatcher QObject that lives on the UI thread, so no
per-job QObject is ever deleted from a worker thread (a crash PySide punishes hard), and
callbacks whose owner QObject was deleted meanwhile are skipped rather than called.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, QRunnable, Qt, QThreadPool, Signal, Slot

from segstudio.core.errors import SegstudioError

T = TypeVar("T")

# Errors a user or the disk can cause; anything else is a bug and its traceback is printed.
_EXPECTED = (SegstudioError, OSError, MemoryError)


class JobCancelled(Exception):
    """A job was cancelled; `on_error` receives this when the work was cut short."""


def error_text(exc: BaseException) -> str:
    """A one-line message for the status bar: typed errors speak for themselves."""
    if isinstance(exc, SegstudioError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _Dispatcher(QObject):
    """Lives on the UI thread; worker threads emit on it, its slots run queued there."""

    finished = Signal(object, object, object)  # job, result, exception (None when it worked)
    progressed = Signal(object, object)  # job, values

    def __init__(self) -> None:
        super().__init__()
        # queued even when emitted on the UI thread (a job cancelled before it started)
        self.finished.connect(self._on_finished, Qt.ConnectionType.QueuedConnection)
        self.progressed.connect(self._on_progressed, Qt.ConnectionType.QueuedConnection)

    @Slot(object, object, object)
    def _on_finished(self, job: Job[Any], result: object, error: BaseException | None) -> None:
        _RUNNING.discard(job)
        job._deliver(result, error)

    @Slot(object, object)
    def _on_progressed(self, job: Job[Any], values: tuple[object, ...]) -> None:
        job._deliver_progress(values)


_RUNNING: set[Job[Any]] = set()  # jobs outlive their caller until their result is delivered
_dispatcher: _Dispatcher | None = None


def _the_dispatcher() -> _Dispatcher:
    global _dispatcher
    if _dispatcher is None:
        _dispatcher = _Dispatcher()
        app = QCoreApplication.instance()
        if app is not None and _dispatcher.thread() is not app.thread():
            _dispatcher.moveToThread(app.thread())
    return _dispatcher


class Job(QRunnable, Generic[T]):
    """One call of `fn(job)` on a pool thread; create and start it on the UI thread."""

    def __init__(self, fn: Callable[[Job[T]], T], on_done: Callable[[T], None],
                 on_error: Callable[[BaseException], None],
                 on_progress: Callable[..., None] | None = None, owner: QObject | None = None) -> None:
        super().__init__()
        self.setAutoDelete(False)  # Python owns it; it is kept alive in _RUNNING
        self._fn = fn
        self._on_done = on_done
        self._on_error = on_error
        self._on_progress = on_progress
        if owner is None:
            bound_to = getattr(on_done, "__self__", None)
            owner = bound_to if isinstance(bound_to, QObject) else None
        self._owner = owner
        self._cancel = threading.Event()
        self._dispatcher = _the_dispatcher()
        self._pool: QThreadPool | None = None
        self.delivered = False

    # -- worker side -----------------------------------------------------------------------------
    def progress(self, *values: object) -> None:
        """Hand `values` to `on_progress` on the UI thread (callable from the worker)."""
        if self._on_progress is not None:
            self._dispatcher.progressed.emit(self, values)

    def cancel(self) -> None:
        """Ask the job to stop: one still queued is taken off the queue (on_error gets
        JobCancelled); a running `fn` sees it through `cancelled` / `check_cancelled()`."""
        self._cancel.set()
        if self._pool is not None and self._pool.tryTake(self):
            self._dispatcher.finished.emit(self, None, JobCancelled("cancelled before it started"))

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        """Raise JobCancelled if cancel() was called: `fn` calls this between steps."""
        if self._cancel.is_set():
            raise JobCancelled("cancelled")

    def run(self) -> None:
        result: object = None
        error: BaseException | None = None
        try:
            self.check_cancelled()  # cancelled before it started: skip the work
            result = self._fn(self)
        except Exception as exc:  # handed to on_error on the UI thread, never raised here
            if not isinstance(exc, (JobCancelled, *_EXPECTED)):
                traceback.print_exc()
            error = exc
        self._dispatcher.finished.emit(self, result, error)

    # -- UI side ---------------------------------------------------------------------------------
    def start(self, pool: QThreadPool | None = None) -> Job[T]:
        _RUNNING.add(self)
        self._pool = pool or QThreadPool.globalInstance()
        self._pool.start(self)
        return self

    def _owner_alive(self) -> bool:
        return self._owner is None or shiboken6.isValid(self._owner)

    def _deliver(self, result: object, error: BaseException | None) -> None:
        self.delivered = True
        if not self._owner_alive():
            return  # whoever asked is gone; nobody wants the answer now
        if error is None:
            self._on_done(result)  # type: ignore[arg-type]
        else:
            self._on_error(error)

    def _deliver_progress(self, values: tuple[object, ...]) -> None:
        if self._on_progress is not None and not self.delivered and self._owner_alive():
            self._on_progress(*values)


def run_in_background(fn: Callable[[Job[T]], T], on_done: Callable[[T], None],
                      on_error: Callable[[BaseException], None], *,
                      on_progress: Callable[..., None] | None = None, pool: QThreadPool | None = None,
                      owner: QObject | None = None) -> Job[T]:
    """Start `fn(job)` on `pool` (default: the global pool); see the module docstring.

    `owner`: a QObject whose deletion silences the callbacks (default: the QObject that
    `on_done` is a bound method of, if any).
    """
    return Job(fn, on_done, on_error, on_progress, owner).start(pool)
