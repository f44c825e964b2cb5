"""ui.jobs: results, exceptions and progress arrive on the UI thread; cancel; a deleted
owner silences the callbacks."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QObject, QThreadPool

from segstudio.core.errors import MaskError
from segstudio.ui.jobs import Job, JobCancelled, error_text, run_in_background


class Recorder:
    """Callbacks that note what they got and on which thread they ran."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object, bool]] = []
        self.ui_thread = threading.get_ident()

    def _note(self, kind: str, value: object) -> None:
        self.calls.append((kind, value, threading.get_ident() == self.ui_thread))

    def done(self, value: object) -> None:
        self._note("done", value)

    def error(self, exc: BaseException) -> None:
        self._note("error", exc)

    def progress(self, *values: object) -> None:
        self._note("progress", values)


@pytest.fixture
def pool() -> QThreadPool:
    pool = QThreadPool()
    pool.setMaxThreadCount(1)
    yield pool
    pool.waitForDone(5000)


def test_result_and_progress_arrive_on_the_ui_thread(qtbot, pool: QThreadPool) -> None:
    rec = Recorder()

    def work(job: Job[int]) -> int:
        job.progress(1, "one")
        job.progress(2, "two")
        return threading.get_ident()

    job = run_in_background(work, rec.done, rec.error, on_progress=rec.progress, pool=pool)
    qtbot.waitUntil(lambda: job.delivered, timeout=5000)
    kinds = [(kind, value) for kind, value, _ in rec.calls]
    assert kinds[:2] == [("progress", (1, "one")), ("progress", (2, "two"))]
    assert kinds[2][0] == "done" and kinds[2][1] != rec.ui_thread  # fn ran on a worker
    assert all(on_ui for _, _, on_ui in rec.calls)


def test_an_exception_is_delivered_not_raised(qtbot, pool: QThreadPool) -> None:
    rec = Recorder()

    def fail(_job: Job[None]) -> None:
        raise MaskError("mask is 3x3 but its image is 4x4; delete or resize the mask")

    job = run_in_background(fail, rec.done, rec.error, pool=pool)
    qtbot.waitUntil(lambda: job.delivered, timeout=5000)
    [(kind, exc, on_ui)] = rec.calls
    assert kind == "error" and isinstance(exc, MaskError) and on_ui
    assert error_text(exc) == "mask is 3x3 but its image is 4x4; delete or resize the mask"
    assert error_text(ZeroDivisionError("division by zero")) == "ZeroDivisionError: division by zero"


def test_cancel_a_queued_job_and_a_running_one(qtbot, pool: QThreadPool) -> None:
    rec_running, rec_queued = Recorder(), Recorder()
    started, release = threading.Event(), threading.Event()

    def steps(job: Job[int]) -> int:
        started.set()
        for step in range(100):
            release.wait(5)
            job.check_cancelled()
            job.progress(step)
        return 100

    running = run_in_background(steps, rec_running.done, rec_running.error, pool=pool)
    assert started.wait(5)
    queued = run_in_background(steps, rec_queued.done, rec_queued.error, pool=pool)  # waits: one thread
    queued.cancel()
    running.cancel()
    release.set()
    qtbot.waitUntil(lambda: running.delivered and queued.delivered, timeout=5000)
    assert [kind for kind, _, _ in rec_running.calls] == ["error"]
    assert isinstance(rec_running.calls[0][1], JobCancelled)
    assert [kind for kind, _, _ in rec_queued.calls] == ["error"]
    assert isinstance(rec_queued.calls[0][1], JobCancelled)


def test_callbacks_of_a_deleted_owner_are_skipped(qtbot, pool: QThreadPool) -> None:
    got: list[object] = []
    gate = threading.Event()

    class Owner(QObject):
        def on_done(self, value: object) -> None:
            got.append(value)

    owner = Owner()
    job = run_in_background(lambda _job: gate.wait(5), owner.on_done, got.append, pool=pool)
    owner.deleteLater()
    qtbot.waitUntil(lambda: not _alive(owner), timeout=2000)
    gate.set()
    qtbot.waitUntil(lambda: job.delivered, timeout=5000)
    assert got == []  # the owner (inferred from the bound method) is gone: nothing called


def _alive(obj: QObject) -> bool:
    import shiboken6

    return shiboken6.isValid(obj)
