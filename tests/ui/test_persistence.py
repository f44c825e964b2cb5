"""MaskStore through the session: each SaveOutcome for the situation that causes it, and
image status moves in one place. A masks path that is a directory stands in for a disk
that refuses the write (tests run as root, so a read-only folder would not refuse)."""

from __future__ import annotations

import numpy as np
import pytest

import segstudio.ui.project.persistence as persistence
from segstudio.core.project import Project
from segstudio.core.recovery import RecoveryJournal
from segstudio.core.region import Region
from segstudio.core.saving import SaveOutcome
from segstudio.ui.project.session import EditingSession


def _paint(session: EditingSession, class_id: int = 1) -> None:
    assert session.document is not None
    assert session.document.apply_edit("paint", Region(2, 3, 12, 20), class_id)


@pytest.fixture
def big_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(persistence, "BACKGROUND_SAVE_PIXELS", 1)  # every mask counts as big


def test_saved_means_on_disk(qtbot, make_project) -> None:
    project = make_project()
    session = EditingSession(project)
    session.open_image("img03")
    _paint(session)
    result = session.save()
    assert result.outcome is SaveOutcome.SAVED and result.error == ""
    assert np.array_equal(Project.open(project.root).read_mask("img03"), session.document.mask)
    assert session.save().outcome is SaveOutcome.SAVED  # nothing left to write


def test_queued_then_saved_by_the_writer(qtbot, make_project, big_masks) -> None:
    project = make_project()
    session = EditingSession(project)
    session.open_image("img03")
    _paint(session)
    with qtbot.waitSignal(session.saved, timeout=5000):
        assert session.save(background=True).outcome is SaveOutcome.QUEUED
        assert session.has_unsaved()  # not on disk yet: only queued
    assert not session.has_unsaved()
    assert np.array_equal(project.read_mask("img03"), session.document.mask)


def test_deferred_mid_stroke_and_while_an_older_write_is_in_flight(qtbot, make_project, big_masks) -> None:
    project = make_project()
    session = EditingSession(project)
    session.open_image("img02")
    document = session.document
    document.begin_stroke("drag")
    document.write(Region(0, 0, 4, 4), 1)
    assert session.save(background=True).outcome is SaveOutcome.DEFERRED
    assert project.read_mask("img02") is None  # the stroke was not cut
    document.end_stroke()
    with qtbot.waitSignal(session.saved, timeout=5000):
        assert session.save(background=True).outcome is SaveOutcome.QUEUED
        _paint(session, 2)
        assert session.save(background=True).outcome is SaveOutcome.DEFERRED  # one write in flight
        summary = session.save_all(background=True)
        assert summary.outcome is SaveOutcome.DEFERRED and summary.ok and not summary.saved
    assert session.has_unsaved()  # the newer stroke is still to be written


def test_failed_carries_the_message_and_keeps_the_work(qtbot, make_project) -> None:
    project = make_project(labeled=0)
    session = EditingSession(project)
    messages: list[str] = []
    session.message.connect(messages.append)
    session.open_image("img01")
    _paint(session)
    session.write_journal()
    project.mask_path("img01").mkdir(parents=True)  # a directory where the file must go
    result = session.save()
    assert result.outcome is SaveOutcome.FAILED and not result.ok and result.error
    assert messages == [f"could not save 'img01': {result.error}"]
    assert session.has_unsaved()
    assert RecoveryJournal(project.root).revision_of("img01") is not None  # the journal keeps it
    closing = session.close_all()
    assert closing.outcome is SaveOutcome.FAILED and session.open_ids() == ["img01"]  # not dropped
    assert not session.mark_done()  # cannot be marked done while it cannot be saved
    assert project.image("img01").status == "in_progress"


def test_a_failed_queued_write_is_reported(qtbot, make_project, big_masks) -> None:
    project = make_project(labeled=0)
    session = EditingSession(project)
    session.open_image("img04")
    _paint(session)
    project.mask_path("img04").mkdir(parents=True)
    with qtbot.waitSignal(session.message, timeout=5000) as blocker:
        assert session.save(background=True).outcome is SaveOutcome.QUEUED
    assert blocker.args[0].startswith("could not save 'img04':")
    assert session.has_unsaved() and not session.writer.saving("img04")


def test_status_moves_happen_in_the_store(qtbot, make_project) -> None:
    project = make_project(count=4, labeled=0)
    session = EditingSession(project)
    moves: list[tuple[str, str]] = []
    session.status_changed.connect(lambda image_id, status: moves.append((image_id, status)))
    session.open_image("img00")
    _paint(session)
    _paint(session, 2)  # already in progress: no second move
    assert session.mark_done(reviewed=True)
    mask = np.zeros((48, 64), np.uint8)
    assert session.store.write_closed("img03", mask, "predicted").outcome is SaveOutcome.SAVED
    project.mask_path("img02").mkdir(parents=True)
    assert session.store.write_closed("img02", mask, "predicted").outcome is SaveOutcome.FAILED
    assert moves == [("img00", "in_progress"), ("img00", "reviewed"), ("img03", "predicted")]
    reopened = Project.open(project.root)
    assert [reopened.image(i).status for i in ("img00", "img02", "img03")] == ["reviewed", "unlabeled", "predicted"]
    assert np.array_equal(reopened.read_mask("img03"), mask)
