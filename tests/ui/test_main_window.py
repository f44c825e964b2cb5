"""The assembled main window, offscreen: welcome screen, opening projects, painting through
the canvas, undo, navigation, status, autosave + reopen, class delete, shortcuts, settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDialog, QFileDialog

import segstudio.ui.resources as resources
from segstudio.core.project import Project
from segstudio.ui import dialogs
from segstudio.ui.main_window import MainWindow
from segstudio.ui.project import dialogs as project_dialogs
from segstudio.ui.project.dataset_dock import ID_ROLE
from segstudio.ui.settings import AppSettings

LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def window(qtbot, tmp_path: Path, monkeypatch) -> MainWindow:
    monkeypatch.setattr(resources, "user_data_dir", lambda: tmp_path / "appdata")
    errors: list[str] = []
    monkeypatch.setattr(dialogs, "show_error", lambda _p, title, text: errors.append(f"{title}: {text}"))
    win = MainWindow()
    win.errors = errors  # type: ignore[attr-defined]
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    return win


def drag(window: MainWindow, points: list[tuple[int, int]]) -> None:
    """A real left-button drag over image pixels, through the canvas viewport."""
    canvas = window.canvas
    viewport = canvas.viewport()

    def send(kind: QEvent.Type, x: int, y: int, button: Qt.MouseButton, buttons: Qt.MouseButton) -> None:
        pos = canvas.viewportTransform().map(QPointF(x + 0.5, y + 0.5))
        event = QMouseEvent(kind, pos, QPointF(viewport.mapToGlobal(pos.toPoint())), button, buttons,
                            Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(viewport, event)

    x0, y0 = points[0]
    send(QEvent.Type.MouseButtonPress, x0, y0, LEFT, LEFT)
    for x, y in points[1:]:
        send(QEvent.Type.MouseMove, x, y, Qt.MouseButton.NoButton, LEFT)
    send(QEvent.Type.MouseButtonRelease, *points[-1], LEFT, Qt.MouseButton.NoButton)


def test_welcome_screen_shows_and_opens_the_sample(window: MainWindow, tmp_path: Path) -> None:
    assert window.stack.currentWidget() is window.welcome
    assert not window.dataset_dock.isVisible()
    assert not window.commands["undo"].isEnabled()
    window.welcome.buttons["sample"].click()
    sample = tmp_path / "appdata" / resources.SAMPLE_FOLDER
    assert window.workspace.project is not None
    assert window.workspace.project.root == sample
    assert window.stack.currentWidget() is window.canvas
    assert window.dataset_dock.isVisible() and window.classes_dock.isVisible()
    assert window.workspace.session.current_id == window.dataset_dock.visible_ids()[0]
    packaged = resources.resources_dir() / "sample" / "project.json"
    assert packaged.read_bytes() == (sample / "project.json").read_bytes()
    assert window.settings.recent_projects() == [sample.resolve()]


def test_welcome_open_and_recent_buttons(window: MainWindow, make_project, monkeypatch) -> None:
    project = make_project()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(project.root))
    window.welcome.buttons["open"].click()
    assert window.workspace.project.root == project.root
    assert window.workspace.close_project()
    assert window.stack.currentWidget() is window.welcome
    assert window.welcome.recent.count() == 1
    window.welcome.recent.itemClicked.emit(window.welcome.recent.item(0))
    assert window.workspace.project.root == project.root


def test_welcome_new_project_from_folder(window: MainWindow, tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(folder / f"p{i}.png")
    (folder / "notes.txt").write_text("not an image")
    shown: list[str] = []

    def fill(dialog: project_dialogs.NewProjectDialog) -> int:
        dialog.images.setText(str(folder))
        dialog.classes.setText("road, car")
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(project_dialogs.NewProjectDialog, "exec", fill)
    monkeypatch.setattr(project_dialogs.ReportDialog, "exec",
                        lambda self: shown.append(self.text.toPlainText()) or 0)
    window.welcome.buttons["new"].click()
    project = window.workspace.project
    assert project is not None and project.root == tmp_path / "photos-segstudio"
    assert len(project) == 3
    assert [c.name for c in project.classes] == ["road", "car", "unlabeled"]
    assert shown and "imported 3 images" in shown[0] and "notes.txt" in shown[0]


def test_welcome_import_shows_report(window: MainWindow, tmp_path: Path, monkeypatch) -> None:
    images, masks = tmp_path / "ds" / "images", tmp_path / "ds" / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    for i in range(2):
        Image.fromarray(np.full((16, 24, 3), 90, np.uint8)).save(images / f"f{i}.png")
        Image.fromarray(np.full((16, 24), i, np.uint8), mode="L").save(masks / f"f{i}.png")
    Image.fromarray(np.full((16, 24, 3), 90, np.uint8)).save(images / "f9.png")  # no mask
    shown: list[str] = []

    def fill(dialog: project_dialogs.ImportDialog) -> int:
        dialog.format.setCurrentText("folders")
        dialog.source.setText(str(images))
        dialog.masks.setText(str(masks))
        dialog.target.setText(str(tmp_path / "imported"))
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(project_dialogs.ImportDialog, "exec", fill)
    monkeypatch.setattr(project_dialogs.ReportDialog, "exec",
                        lambda self: shown.append(self.text.toPlainText()) or 0)
    window.welcome.buttons["import"].click()
    assert window.errors == []
    assert shown and shown[0].startswith("imported 3 images and 2 masks")
    assert window.workspace.project.root == tmp_path / "imported"


def test_paint_undo_switch_back_and_autosave_reopen(window: MainWindow, qtbot, make_project) -> None:
    project = make_project(count=4, labeled=1)
    assert window.open_project(project.root)
    ws = window.workspace
    ws.autosaver.set_intervals(save_delay_ms=100, journal_interval_ms=50)
    view = window.dataset_dock.view
    view.setCurrentIndex(view.model().index(2, 0))  # a click in the list
    assert ws.session.current_id == "img02"
    window.commands["class_2"].trigger()  # key 2: "car"
    assert window.canvas.active_class == 1
    drag(window, [(10, 10), (20, 12), (30, 14)])
    document = ws.session.document
    assert (document.mask == 1).sum() > 50
    assert ws.project.image("img02").status == "in_progress"
    assert window.status.saved_label.text().endswith("unsaved")
    painted = np.array(document.mask)
    window.commands["next_image"].trigger()
    assert ws.session.current_id == "img03"
    window.commands["prev_image"].trigger()
    assert ws.session.document is document  # the same document, history and all
    window.commands["undo"].trigger()
    assert not (document.mask == 1).any()
    window.commands["redo"].trigger()
    assert np.array_equal(document.mask, painted)
    qtbot.waitUntil(lambda: not ws.session.has_unsaved(), timeout=3000)
    assert window.status.saved_label.text() == "saved"
    reopened = Project.open(project.root)
    assert np.array_equal(reopened.read_mask("img02"), painted)
    assert reopened.image("img02").status == "in_progress"


def test_navigation_and_status_markers(window: MainWindow, make_project, qtbot) -> None:
    project = make_project(count=5, labeled=2)
    window.open_project(project.root)
    ws = window.workspace
    assert ws.session.current_id == "img00"
    window.commands["next_unlabeled"].trigger()
    assert ws.session.current_id == "img02"
    window.commands["mark_labeled"].trigger()
    assert ws.project.image("img02").status == "labeled"
    window.commands["next_unlabeled"].trigger()
    assert ws.session.current_id == "img03"
    window.commands["mark_reviewed"].trigger()
    assert Project.open(project.root).image("img03").status == "reviewed"
    assert "3 labeled" in window.dataset_dock.counts.text()
    assert "1 reviewed" in window.dataset_dock.counts.text()
    window.dataset_dock.status_filter.setCurrentIndex(
        window.dataset_dock.status_filter.findData("unlabeled"))
    # filtering never switches images; the open one stays listed until the user moves on
    assert window.dataset_dock.visible_ids() == ["img03", "img04"]
    assert ws.session.current_id == "img03"
    window.commands["next_image"].trigger()
    assert ws.session.current_id == "img04"
    qtbot.waitUntil(lambda: window.dataset_dock.visible_ids() == ["img04"], timeout=2000)


def test_an_edit_that_takes_the_open_image_out_of_the_filter_keeps_it_open(window: MainWindow, make_project,
                                                                          qtbot) -> None:
    project = make_project(count=5, labeled=2)
    window.open_project(project.root)
    ws, dock = window.workspace, window.dataset_dock
    dock.status_filter.setCurrentIndex(dock.status_filter.findData("unlabeled"))
    assert dock.visible_ids() == ["img00", "img02", "img03", "img04"]  # img00 is open (pinned)
    window.commands["next_image"].trigger()
    assert ws.session.current_id == "img02"
    qtbot.waitUntil(lambda: dock.visible_ids() == ["img02", "img03", "img04"], timeout=2000)
    # marking it labelled (like a first stroke making it 'in progress') takes img02 out of the
    # filter, but it is the image being edited: it stays open, listed and current
    window.commands["mark_labeled"].trigger()
    assert ws.project.image("img02").status == "labeled"
    assert ws.session.current_id == "img02", "the status change did not open another image"
    assert dock.visible_ids() == ["img02", "img03", "img04"]
    assert dock.view.currentIndex().data(ID_ROLE) == "img02"
    # a real click on img03's row: the row above leaves the list only after the click, so the
    # list highlights the image the canvas shows (rows sliding under the press selected img04)
    rect = dock.view.visualRect(dock.view.model().index(1, 0))
    QTest.mouseClick(dock.view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     rect.center())
    assert ws.session.current_id == "img03"
    qtbot.waitUntil(lambda: dock.visible_ids() == ["img03", "img04"], timeout=2000)
    assert ws.session.current_id == "img03"
    selected = [index.data(ID_ROLE) for index in dock.view.selectionModel().selectedIndexes()]
    assert selected == ["img03"] and dock.view.currentIndex().data(ID_ROLE) == "img03"


def test_class_delete_from_dock_remaps_everywhere(window: MainWindow, make_project) -> None:
    project = make_project(count=3, labeled=2)
    window.open_project(project.root)
    dock = window.classes_dock
    assert dock.list.count() == 4
    assert dock.delete_class(class_id=1, into=255)
    assert dock.list.count() == 3
    assert not (project.read_mask("img01") == 1).any()
    assert (project.read_mask("img01") == 255).any()
    assert dock.add_class("bicycle", (10, 200, 10))
    assert "bicycle" in [c.name for c in Project.open(project.root).classes]
    assert dock.rename_class(class_id=0, name="street")
    assert window.workspace.project.classes.by_id(0).name == "street"
    assert "street" in dock.list.item(0).text()


def test_bad_project_and_bad_image_keep_the_app_running(window: MainWindow, make_project, tmp_path) -> None:
    assert not window.open_project(tmp_path / "nothing-here")
    assert window.errors and "not a segstudio project" in window.errors[0]
    assert window.stack.currentWidget() is window.welcome
    project = make_project()
    project.image_path("img01").write_bytes(b"garbage")
    window.open_project(project.root)
    window.commands["next_image"].trigger()
    assert window.workspace.session.current_id == "img00"
    assert "img01" in window.status.currentMessage()


def test_every_action_has_a_menu_and_f1_sheet_lists_shortcuts(window: MainWindow) -> None:
    in_menus = {a for menu in window.menuBar().actions() for a in menu.menu().actions()}
    for name, action in window.commands:
        assert action in in_menus, name
    window.commands["shortcuts"].trigger()
    sheet = window.workspace._sheet
    assert sheet is not None and sheet.isVisible()
    texts = {sheet.table.item(r, 2).text() for r in range(sheet.table.rowCount())}
    assert "F1" in texts and any("Ctrl+Z" in t for t in texts)
    menus = {sheet.table.item(r, 0).text() for r in range(sheet.table.rowCount())}
    assert {"File", "Edit", "View", "Tools", "Image", "Classes", "Help"} <= menus


def test_geometry_and_recent_projects_persist(qtbot, window: MainWindow, make_project) -> None:
    project = make_project()
    window.open_project(project.root)
    window.resize(700, 520)  # inside the offscreen screen, which restoreGeometry clamps to
    window.close()
    again = MainWindow(AppSettings())
    qtbot.addWidget(again)
    assert again.height() == 520  # the width is held up by the docks' minimum sizes
    assert again.settings.recent_projects() == [project.root.resolve()]


def test_status_bar_follows_the_cursor(window: MainWindow, make_project) -> None:
    project = make_project(count=2, labeled=1)
    window.open_project(project.root)
    canvas = window.canvas
    pos = canvas.viewportTransform().map(QPointF(5.5, 2.5))
    event = QMouseEvent(QEvent.Type.MouseMove, pos, QPointF(canvas.viewport().mapToGlobal(pos.toPoint())),
                        Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(canvas.viewport(), event)
    assert window.status.position_label.text() == "x 5, y 2"
    assert window.status.class_label.text() == "sky (2)"  # the fixture's top third is sky
    assert window.status.zoom_label.text().endswith("%")


def test_thumbnails_arrive_off_the_ui_thread(window: MainWindow, qtbot, make_project) -> None:
    from segstudio.ui.project.dataset_dock import THUMB_ROLE

    window.open_project(make_project(count=3).root)
    model = window.dataset_dock.model
    model.data(model.index(1), THUMB_ROLE)  # the first request only starts the job
    qtbot.waitUntil(lambda: model.data(model.index(1), THUMB_ROLE) is not None, timeout=5000)
    pixmap = model.data(model.index(1), THUMB_ROLE)
    assert 0 < pixmap.width() <= 72 and 0 < pixmap.height() <= 54


def test_gui_command_runs_the_app_on_a_project(qtbot, make_project, monkeypatch, tmp_path) -> None:
    import argparse

    import segstudio.ui.app as app_module
    from segstudio.cli import gui_cmd
    from segstudio.cli.main import COMMAND_MODULES

    def build_parser() -> argparse.ArgumentParser:
        # only the gui command: the full CLI would import torch for the engine commands
        parser = argparse.ArgumentParser(prog="segstudio")
        gui_cmd.register(parser.add_subparsers(dest="command"))
        return parser

    assert "segstudio.cli.gui_cmd" in COMMAND_MODULES
    monkeypatch.setattr(resources, "user_data_dir", lambda: tmp_path / "appdata")
    project = make_project()
    args = build_parser().parse_args(["gui", str(project.root)])
    seen: list[str] = []

    def fake_loop(app: QApplication) -> int:
        # Instead of app.exec(), which would end the test session's event loop for good.
        for widget in app.topLevelWidgets():
            if isinstance(widget, MainWindow) and widget.isVisible():
                seen.append(widget.workspace.session.current_id)
                widget.close()
        return 0

    monkeypatch.setattr(app_module, "event_loop", fake_loop)
    assert args.func(args) == 0
    assert seen == ["img00"]
    assert AppSettings().recent_projects() == [project.root.resolve()]

    welcome_args = build_parser().parse_args(["gui", "--welcome"])
    window = app_module.launch(welcome=welcome_args.welcome)
    qtbot.addWidget(window)
    assert window.stack.currentWidget() is window.welcome


def test_sample_project_is_self_contained_and_small() -> None:
    sample = resources.resources_dir() / "sample"
    project = Project.open(sample)
    size = sum(p.stat().st_size for p in sample.rglob("*") if p.is_file())
    assert size <= 3 * 1024 * 1024
    assert len(project) >= 16
    unlabeled = project.images_where(statuses=["unlabeled"])
    assert unlabeled and all(not project.has_mask(r) for r in unlabeled)
    for record in project.images_where(statuses=["labeled", "reviewed"]):
        assert project.image_path(record).is_file()
        assert project.read_mask(record).shape == (record.height, record.width) == (180, 240)


def test_failed_save_keeps_work_in_the_journal_and_asks_before_closing(window: MainWindow, make_project,
                                                                     monkeypatch) -> None:
    from segstudio.core.errors import ProjectError
    from segstudio.core.recovery import RecoveryJournal
    from segstudio.core.region import Region

    project = make_project(count=2, labeled=0)
    window.open_project(project.root)
    ws = window.workspace

    def refuse(*_args, **_kwargs):
        raise ProjectError("disk full; free some space")

    monkeypatch.setattr(ws.project, "write_mask", refuse)
    asked: list[str] = []
    monkeypatch.setattr(dialogs, "ask", lambda _p, title, _text: asked.append(title) or False)
    assert ws.session.document.apply_edit("p", Region(0, 0, 10, 10), 1)
    assert ws.session.write_journal() == 1
    assert not ws.save()
    assert "disk full" in window.status.currentMessage()
    assert not ws.close_project()  # the user chose to keep it open
    assert asked == ["Unsaved masks"] and ws.session is not None
    assert RecoveryJournal(project.root).revision_of("img00") is not None


def test_recent_project_that_vanished_is_dropped(window: MainWindow, make_project) -> None:
    import shutil

    project = make_project()
    window.open_project(project.root)
    window.workspace.close_project()
    shutil.rmtree(project.root / "masks")
    (project.root / "project.json").unlink()
    window.welcome.recent.itemClicked.emit(window.welcome.recent.item(0))
    assert window.errors and "not a segstudio project" in window.errors[-1]
    assert window.settings.recent_projects() == []
    assert window.welcome.recent.count() == 0
