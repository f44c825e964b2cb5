"""The app follows what other programs do to its project (issue 15): another writer's images,
statuses and classes show up; a mask changed under unsaved edits becomes a keep-mine /
load-theirs offer; a failed save keeps the work in the journal and says why."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import segstudio.ui.resources as resources
from segstudio.core import atomic
from segstudio.core.classes import ClassDef, ClassTable
from segstudio.core.mask_guard import CONFLICTS_DIR
from segstudio.core.project import Project
from segstudio.core.recovery import RecoveryJournal
from segstudio.core.region import Region
from segstudio.ui import dialogs
from segstudio.ui.main_window import MainWindow


@pytest.fixture
def window(qtbot, tmp_path: Path, monkeypatch) -> MainWindow:  # noqa: ANN001
    monkeypatch.setattr(resources, "user_data_dir", lambda: tmp_path / "appdata")
    monkeypatch.setattr(dialogs, "show_error", lambda *_a: None)
    monkeypatch.setattr(dialogs, "ask", lambda *_a: True)  # close with unsaved work: yes
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    return win


def add_images(other: Project, names: list[str], size: tuple[int, int] = (64, 48)) -> None:
    rng = np.random.default_rng(5)
    for name in names:
        path = other.root / "images" / f"{name}.png"
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        other.add_image(path, split="train")


def test_the_list_statuses_and_classes_follow_another_writer(qtbot, window, make_project) -> None:  # noqa: ANN001
    project = make_project(count=5, labeled=2)
    assert window.open_project(project.root)
    dock, ws = window.dataset_dock, window.workspace
    moved: list[tuple[str, str]] = []
    ws.status_changed.connect(lambda image_id, status: moved.append((image_id, status)))
    other = Project.open(project.root)  # a second writer (CLI import, another window)
    add_images(other, ["new_a", "new_b"])
    other.update_image("img03", status="reviewed")
    other.set_classes(ClassTable((*other.classes.classes, ClassDef(7, "bike", (0, 200, 0)))))
    other.save()
    qtbot.waitUntil(lambda: len(dock.visible_ids()) == 7, timeout=3000)
    assert {"new_a", "new_b"} <= set(dock.visible_ids())
    row = dock.model.row_of("img03")
    assert dock.model.index(row).data(dock_status_role()) == "reviewed"
    assert ("img03", "reviewed") in moved
    names = [window.classes_dock.list.item(i).text() for i in range(window.classes_dock.list.count())]
    assert any(name.endswith(" bike") for name in names)
    assert ws.project.classes.by_name("bike").id == 7
    assert "7 images" in dock.counts.text()
    assert "another program changed the project" in window.status.currentMessage()
    # our own save merges and keeps theirs
    ws.session.document.apply_edit("paint", Region(0, 0, 4, 4), 1)
    assert ws.save()
    again = Project.open(project.root)
    assert len(again) == 7 and again.image("img03").status == "reviewed"


def dock_status_role() -> int:
    from segstudio.ui.project.dataset_dock import STATUS_ROLE

    return STATUS_ROLE


def their_mask(project: Project, image_id: str) -> np.ndarray:
    record = project.image(image_id)
    mask = np.zeros((record.height, record.width), np.uint8)
    mask[:, : record.width // 2] = 2
    return mask


@pytest.fixture
def editing(qtbot, window, make_project):  # noqa: ANN001, ANN201
    """img00 open with unsaved edits while another writer replaces its mask on disk."""
    project = make_project(count=3, labeled=2)
    assert window.open_project(project.root)
    ws = window.workspace
    assert ws.session.current_id == "img00"
    ws.autosaver.set_intervals(save_delay_ms=0)  # the offer must come from the watcher here
    ws.session.document.apply_edit("mine", Region(0, 0, 10, 10), 1)
    mine = np.array(ws.session.document.mask)
    other = Project.open(project.root)
    theirs = their_mask(other, "img00")
    other.write_mask("img00", theirs, status="reviewed")
    qtbot.waitUntil(lambda: "img00" in ws.shared.offers, timeout=3000)
    return window, project, mine, theirs


def test_keep_mine_writes_ours_and_keeps_theirs_aside(editing) -> None:  # noqa: ANN001
    window, project, mine, theirs = editing
    offer = window.workspace.shared.offers["img00"]
    assert offer.isVisible() and not offer.isModal()
    offer.keep_button.click()
    assert np.array_equal(Project.open(project.root).read_mask("img00"), mine)
    kept = list((project.root / CONFLICTS_DIR).glob("img00.*.png"))
    assert len(kept) == 1
    from segstudio.core.imageio import read_mask

    assert np.array_equal(read_mask(kept[0], project.classes), theirs)
    assert not window.workspace.session.has_unsaved()
    assert "img00" not in window.workspace.shared.offers


def test_load_theirs_shows_theirs_and_undo_brings_mine_back(editing) -> None:  # noqa: ANN001
    window, project, mine, theirs = editing
    window.workspace.shared.offers["img00"].load_button.click()
    session = window.workspace.session
    assert np.array_equal(session.document.mask, theirs)
    assert np.array_equal(window.canvas.document.mask, theirs)
    assert not session.has_unsaved()
    assert session.undo()
    assert np.array_equal(session.document.mask, mine)


def test_a_save_that_meets_a_changed_mask_offers_instead_of_failing_silently(qtbot, window, make_project) -> None:  # noqa: ANN001
    project = make_project(count=3, labeled=2)
    assert window.open_project(project.root)
    ws = window.workspace
    ws.shared.watcher.stop()  # the save, not the watcher, meets the change
    ws.session.document.apply_edit("mine", Region(0, 0, 10, 10), 1)
    other = Project.open(project.root)
    other.write_mask("img00", their_mask(other, "img00"))
    assert ws.save() is False
    assert "img00" in ws.shared.offers
    assert ws.session.has_unsaved()  # nothing of ours was lost, nothing of theirs overwritten
    assert np.array_equal(Project.open(project.root).read_mask("img00"), their_mask(other, "img00"))


def test_a_clean_mask_follows_quietly(qtbot, window, make_project) -> None:  # noqa: ANN001
    project = make_project(count=3, labeled=2)
    assert window.open_project(project.root)
    ws = window.workspace
    other = Project.open(project.root)
    theirs = their_mask(other, "img00")
    other.write_mask("img00", theirs)
    qtbot.waitUntil(lambda: np.array_equal(ws.session.document.mask, theirs), timeout=3000)
    assert ws.shared.offers == {}


def test_a_full_disk_on_save_keeps_the_work_in_the_journal(qtbot, window, make_project, monkeypatch) -> None:  # noqa: ANN001
    project = make_project(count=3, labeled=1)
    assert window.open_project(project.root)
    ws = window.workspace
    ws.autosaver.set_intervals(save_delay_ms=0, journal_interval_ms=50)
    real_replace = os.replace
    full = {"on": True}

    def replace(src: str, dst: str) -> None:
        if full["on"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    before = Project.open(project.root).read_mask("img00")
    ws.session.document.apply_edit("mine", Region(0, 0, 10, 10), 1)
    painted = np.array(ws.session.document.mask)
    assert ws.save() is False
    assert "disk is full" in window.status.currentMessage()
    assert ws.session.has_unsaved() and window.isVisible()
    assert np.array_equal(Project.open(project.root).read_mask("img00"), before)  # previous file intact
    qtbot.wait(200)  # journal ticks fail too...
    assert RecoveryJournal(project.root).revision_of("img00") is None
    full["on"] = False  # ...and are retried without another edit once there is room
    qtbot.waitUntil(lambda: RecoveryJournal(project.root).revision_of("img00") is not None, timeout=3000)
    pending = RecoveryJournal(project.root).pending(Project.open(project.root))
    assert len(pending) == 1 and np.array_equal(pending[0].mask, painted)
    assert ws.save()
    assert np.array_equal(Project.open(project.root).read_mask("img00"), painted)


HOLDER = """
import sys
from pathlib import Path

from PySide6.QtCore import QSettings, QSocketNotifier

QSettings.setDefaultFormat(QSettings.Format.IniFormat)
QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, sys.argv[2])

from segstudio.ui.app import create_app
from segstudio.ui.main_window import MainWindow

app = create_app(["holder"])
window = MainWindow()
window.show()
assert window.open_project(Path(sys.argv[1]))
print("READY", flush=True)
notifier = QSocketNotifier(sys.stdin.fileno(), QSocketNotifier.Type.Read)
notifier.activated.connect(lambda *_: (sys.stdin.readline(), window.close(), app.quit()))
app.exec()
print("CLOSED", flush=True)
"""


@pytest.fixture
def first_window(make_project, tmp_path: Path):  # noqa: ANN201
    """Another app process holding the project open (closed cleanly at the end)."""
    import subprocess
    import sys

    project = make_project(count=3, labeled=1)
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    child = subprocess.Popen([sys.executable, str(script), str(project.root), str(tmp_path / "qs")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
    try:
        line = child.stdout.readline()
        assert line.strip() == "READY", child.stderr.read()
        yield project, child
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(30)


def close_child(child) -> None:  # noqa: ANN001
    child.stdin.write("quit\n")
    child.stdin.flush()
    assert child.stdout.readline().strip() == "CLOSED"
    child.wait(30)


def test_a_second_window_names_the_first_and_read_only_disables_editing(window, first_window) -> None:  # noqa: ANN001
    from segstudio.core.presence import presence_folder

    project, child = first_window
    seen: list[list[tuple[str, int]]] = []
    window.workspace.ask_shared = lambda holders: seen.append([(h.host, h.pid) for h in holders]) or "read_only"
    before = Project.open(project.root).read_mask("img00")
    assert window.open_project(project.root)
    assert [pid for _host, pid in seen[0]] == [child.pid]
    ws, commands = window.workspace, window.commands
    assert ws.read_only and "read-only" in window.windowTitle()
    assert not commands["save"].isEnabled() and not commands["mark_labeled"].isEnabled()
    assert not any(action.isEnabled() for action in commands.tool_actions())
    assert window.canvas.tool == "pan" and not window.classes_dock.isEnabled()
    assert ws.session.document.apply_edit("from elsewhere", Region(0, 0, 10, 10), 0)  # e.g. a plug-in
    assert ws.save() is False  # nothing is written even when asked
    # our marker says read-only, for a third window to show
    markers = sorted(presence_folder(project.root).glob("*.json"))
    assert len(markers) == 2 and any('"read_only": true' in m.read_text() for m in markers)
    window.workspace.close_project()
    assert np.array_equal(Project.open(project.root).read_mask("img00"), before)
    close_child(child)
    assert list(presence_folder(project.root).glob("*.json")) == []  # both withdrew


def test_a_second_window_may_write_alongside(window, first_window) -> None:  # noqa: ANN001
    project, child = first_window
    window.workspace.ask_shared = lambda holders: "write"
    assert window.open_project(project.root)
    ws = window.workspace
    assert not ws.read_only and window.commands["save"].isEnabled()
    assert "read-only" not in window.windowTitle()
    assert ws.session.document.apply_edit("mine", Region(0, 0, 10, 10), 0)
    assert ws.save()
    close_child(child)  # the first window closes cleanly and keeps our work
    assert (Project.open(project.root).read_mask("img00")[:10, :10] == 0).all()


def test_cancel_keeps_the_project_closed(window, first_window) -> None:  # noqa: ANN001
    project, _child = first_window
    window.workspace.ask_shared = lambda holders: "cancel"
    assert window.open_project(project.root) is False
    assert window.workspace.project is None
