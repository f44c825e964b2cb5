"""The editing session without a window: documents, history across switches, saving,
status transitions, bad input, class delete with remap, autosave and the journal."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segstudio.core.project import Project
from segstudio.core.recovery import RecoveryJournal
from segstudio.core.region import Region
from segstudio.core.saving import SaveOutcome
from segstudio.ui.project.autosave import Autosaver
from segstudio.ui.project.session import EditingSession


def paint(session: EditingSession, class_id: int, box: Region = Region(4, 6, 20, 30)) -> None:
    assert session.document is not None
    assert session.document.apply_edit("paint", box, class_id)


def test_paint_sets_in_progress_and_save_writes_exact_mask(qtbot, make_project) -> None:
    project = make_project()
    session = EditingSession(project)
    messages: list[str] = []
    session.message.connect(messages.append)
    with qtbot.waitSignal(session.image_opened):
        assert session.open_image("img03")
    assert project.image("img03").status == "unlabeled"
    with qtbot.waitSignal(session.status_changed) as blocker:
        paint(session, 1)
    assert blocker.args == ["img03", "in_progress"]
    assert session.has_unsaved()
    expected = np.array(session.document.mask)
    assert session.save().outcome is SaveOutcome.SAVED
    assert not session.has_unsaved()
    reopened = Project.open(project.root)
    assert np.array_equal(reopened.read_mask("img03"), expected)
    assert reopened.image("img03").status == "in_progress"
    assert messages == []


def test_history_survives_switching_images(qtbot, make_project) -> None:
    project = make_project()
    session = EditingSession(project)
    session.open_image("img00")
    original = np.array(session.document.mask)
    paint(session, 1)
    painted = np.array(session.document.mask)
    session.open_image("img01")  # switching saves img00
    assert np.array_equal(project.read_mask("img00"), painted)
    paint(session, 2)
    session.open_image("img00")
    assert np.array_equal(session.document.mask, painted)
    assert session.undo()
    assert np.array_equal(session.document.mask, original)
    assert session.redo()
    assert np.array_equal(session.document.mask, painted)
    assert session.undo()
    session.open_image("img02")
    assert np.array_equal(project.read_mask("img00"), original)


def test_lru_evicts_oldest_after_saving_it(qtbot, make_project) -> None:
    project = make_project(count=4, labeled=0)
    session = EditingSession(project, cache_size=2)
    session.open_image("img00")
    paint(session, 1)
    painted = np.array(session.document.mask)
    session.open_image("img01")
    session.open_image("img02")
    assert session.open_ids() == ["img01", "img02"]
    assert np.array_equal(project.read_mask("img00"), painted)
    session.open_image("img00")  # reloaded from disk: the history is gone, the work is not
    assert np.array_equal(session.document.mask, painted)
    assert not session.document.can_undo


def test_mark_done_and_next_unlabeled(qtbot, make_project) -> None:
    project = make_project(count=5, labeled=2)
    session = EditingSession(project)
    session.open_image("img01")
    assert session.next_unlabeled_id() == "img02"
    session.open_image("img02")
    assert session.mark_done()  # nothing painted: the blank mask is still written
    assert project.image("img02").status == "labeled"
    assert project.read_mask("img02") is not None
    assert session.next_unlabeled_id() == "img03"
    session.open_image("img03")
    paint(session, 0)
    assert session.mark_done(reviewed=True)
    reopened = Project.open(project.root)
    assert reopened.image("img03").status == "reviewed"
    assert np.array_equal(reopened.read_mask("img03"), session.document.mask)
    assert session.neighbor_id(1) == "img04"
    assert session.neighbor_id(-1) == "img02"
    session.open_image("img04")
    assert session.neighbor_id(1) is None
    assert session.next_unlabeled_id() is None  # the only unlabelled image is the open one


def test_missing_image_gives_message_and_keeps_current(qtbot, make_project) -> None:
    project = make_project()
    session = EditingSession(project)
    session.open_image("img00")
    project.image_path("img01").unlink()
    with qtbot.waitSignal(session.message) as blocker:
        assert not session.open_image("img01")
    assert "img01" in blocker.args[0]
    assert session.current_id == "img00"


def test_wrong_size_mask_opens_blank_and_keeps_the_file(qtbot, make_project) -> None:
    project = make_project(labeled=0)
    bad = np.zeros((10, 10), np.uint8)
    Image.fromarray(bad, mode="L").save(project.mask_path("img00"))
    session = EditingSession(project)
    with qtbot.waitSignal(session.message) as blocker:
        assert session.open_image("img00")
    assert "10x10" in blocker.args[0] and "rejected" in blocker.args[0]
    assert (session.document.mask == project.classes.unlabeled_id).all()
    paint(session, 1)
    assert session.save().outcome is SaveOutcome.SAVED
    kept = project.mask_path("img00").with_name("img00.png.rejected")
    assert np.array_equal(np.asarray(Image.open(kept)), bad)
    assert project.read_mask("img00").shape == (48, 64)


def test_unknown_class_ids_are_shown_unlabelled(qtbot, make_project) -> None:
    project = make_project(labeled=0)
    mask = np.zeros((48, 64), np.uint8)
    mask[:, :10] = 77  # no such class
    Image.fromarray(mask, mode="L").save(project.mask_path("img01"))
    session = EditingSession(project)
    notes: list[str] = []
    session.message.connect(notes.append)
    session.open_image("img01")
    assert notes and "77" in notes[0]
    assert (session.document.mask[:, :10] == 255).all()
    assert (session.document.mask[:, 10:] == 0).all()


def test_delete_class_remaps_saved_and_open_masks_and_undo_restores(qtbot, make_project) -> None:
    project = make_project(count=4, labeled=2)
    session = EditingSession(project)
    session.open_image("img01")
    before = np.array(session.document.mask)
    assert (before == 1).any()
    changed = session.classes.delete(1, 0)  # car -> road
    assert set(changed) == {"img00", "img01"}
    assert 1 not in project.classes.ids
    assert 1 not in Project.open(project.root).classes.ids
    saved = project.read_mask("img00")
    assert not (saved == 1).any()
    assert not (session.document.mask == 1).any()
    assert not session.has_unsaved()
    assert session.undo()  # brings the pixels and the class back in the open image
    assert np.array_equal(session.document.mask, before)
    assert 1 in project.classes.ids
    assert session.save().outcome is SaveOutcome.SAVED
    assert np.array_equal(Project.open(project.root).read_mask("img01"), before)
    assert session.redo()
    assert 1 not in project.classes.ids
    assert not (session.document.mask == 1).any()


def test_delete_ignore_class_is_refused(qtbot, make_project) -> None:
    from segstudio.core.errors import ClassTableError

    session = EditingSession(make_project())
    with pytest.raises(ClassTableError, match="ignore"):
        session.classes.delete(255, 0)


def test_background_load_hands_back_on_ui_thread(qtbot, make_project) -> None:
    project = make_project()
    session = EditingSession(project)
    with qtbot.waitSignal(session.image_opened, timeout=5000) as blocker:
        assert session.open_image("img02", background=True)
    assert blocker.args == ["img02"]
    assert session.image.shape == (48, 64, 3)


def test_autosave_writes_soon_after_the_last_edit(qtbot, make_project) -> None:
    project = make_project()
    session = EditingSession(project)
    autosaver = Autosaver(session, save_delay_ms=150, journal_interval_ms=50)
    session.open_image("img04")
    paint(session, 2)
    painted = np.array(session.document.mask)
    journal_file = RecoveryJournal(project.root).journal_path
    qtbot.waitUntil(journal_file.is_file, timeout=3000)
    qtbot.waitUntil(lambda: not session.has_unsaved(), timeout=3000)
    assert np.array_equal(Project.open(project.root).read_mask("img04"), painted)
    assert RecoveryJournal(project.root).entries == {}  # a clean save empties the journal
    autosaver.stop()


def test_big_masks_save_on_the_writer_thread_and_keep_newer_edits_dirty(qtbot, make_project,
                                                                         monkeypatch) -> None:
    import segstudio.ui.project.persistence as persistence_module

    monkeypatch.setattr(persistence_module, "BACKGROUND_SAVE_PIXELS", 1)  # every mask counts as big
    project = make_project()
    session = EditingSession(project)
    session.open_image("img03")
    paint(session, 1)
    first = np.array(session.document.mask)
    with qtbot.waitSignal(session.saved, timeout=5000):
        assert session.save(background=True).outcome is SaveOutcome.QUEUED
        paint(session, 2, Region(30, 40, 40, 60))  # while the first save is on its way
    assert np.array_equal(project.read_mask("img03"), first)
    assert session.has_unsaved()  # the newer stroke is not marked saved by the older write
    assert session.write_journal() == 1
    session.writer.wait()
    qtbot.waitUntil(lambda: RecoveryJournal(project.root).revision_of("img03") is not None)
    with qtbot.waitSignal(session.saved, timeout=5000):
        session.save(background=True)
    assert not session.has_unsaved()
    assert np.array_equal(project.read_mask("img03"), session.document.mask)
    assert RecoveryJournal(project.root).entries == {}


def test_autosave_waits_for_an_open_stroke(qtbot, make_project) -> None:
    project = make_project()
    session = EditingSession(project)
    autosaver = Autosaver(session, save_delay_ms=50)
    session.open_image("img02")
    document = session.document
    document.begin_stroke("drag")
    document.write(Region(0, 0, 4, 4), 1)
    qtbot.wait(200)
    assert document.in_stroke and project.read_mask("img02") is None  # never cut mid-stroke
    document.write(Region(4, 4, 8, 8), 1)
    document.end_stroke()
    qtbot.waitUntil(lambda: project.read_mask("img02") is not None, timeout=3000)
    assert np.array_equal(project.read_mask("img02"), document.mask)
    autosaver.stop()


def test_a_slow_background_load_never_takes_over_a_later_choice(qtbot, make_project) -> None:
    project = make_project()
    session = EditingSession(project)
    session.open_image("img00")
    session.open_image("img01")
    session.writer.wait()
    session.open_image("img03", background=True)  # slow load in flight...
    session.open_image("img00")  # ...the user moves on to an image already open
    session._pool.waitForDone(5000)
    qtbot.wait(100)  # let the queued result arrive
    assert session.current_id == "img00"
