"""Features (training, model) follow the open project only through the workspace's signals,
and install through one hook, `install(FeatureContext)`, with no window in reach."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QDockWidget, QMenu
from training_fixtures import epoch_record, write_fake_run

from segstudio.core.project import Project
from segstudio.core.region import Region
from segstudio.ui import dialogs, model, resources, training
from segstudio.ui.annotate.canvas import Canvas
from segstudio.ui.features import FeatureContext
from segstudio.ui.main_window import MainWindow
from segstudio.ui.project.session import EditingSession


@pytest.fixture
def window(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MainWindow:
    monkeypatch.setattr(resources, "user_data_dir", lambda: tmp_path / "appdata")
    monkeypatch.setattr(dialogs, "show_error", lambda *_: None)
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1300, 850)
    win.show()
    qtbot.waitExposed(win)
    return win


def _with_model_run(project: Project, run_id: str) -> Path:
    write_fake_run(project.root, run_id, [epoch_record(1, 0.3, {"a": 0.3})], model=True)
    folder = project.root / "models" / run_id
    (folder / "note.txt").write_text(run_id)  # distinct content, distinct prediction cache
    return folder


def test_features_follow_open_close_and_open_another(window: MainWindow, make_project) -> None:  # noqa: ANN001
    first, second = make_project(name="first"), make_project(count=6, labeled=4, name="second")
    trainer = window.training.controller  # built before any project: it must follow later ones
    loop = window.model.controller
    assert trainer.project is None and loop.session is None

    assert window.open_project(first.root)
    session = window.workspace.session
    assert trainer.project.root == first.root and loop.session is session
    assert trainer.save_all == session.save_all and window.model.dock.isVisible()
    # generated splits: index % 3 == 0 is val; the first `labeled` images have masks
    assert window.training.dock.panel.counts == {"train": 1, "val": 1}

    assert window.workspace.close_project()
    assert trainer.project is None and trainer.save_all is None
    assert loop.session is None and not window.model.dock.isVisible()

    assert window.open_project(second.root)
    session = window.workspace.session
    assert trainer.project.root == second.root and loop.session is session
    assert trainer.save_all == session.save_all
    assert window.training.dock.panel.counts == {"train": 2, "val": 2}


def test_training_counts_follow_statuses_through_the_workspace(qtbot, window: MainWindow,
                                                               make_project) -> None:  # noqa: ANN001
    project = make_project(name="counts")
    assert window.training.controller is not None  # built now, before the project opens
    panel = window.training.dock.panel
    assert window.open_project(project.root)
    assert panel.counts == {"train": 1, "val": 1}
    assert window.workspace.open_image("img02")  # index 2: a train image without a mask
    qtbot.waitUntil(lambda: window.workspace.session.current_id == "img02", timeout=10_000)
    document = window.workspace.session.document
    document.apply_edit("Brush", Region(0, 0, 4, 4), np.ones((4, 4), np.uint8))
    assert window.workspace.mark_done(False)
    qtbot.waitUntil(lambda: panel.counts == {"train": 2, "val": 1}, timeout=10_000)


def test_making_a_model_active_in_training_moves_the_model_part(window: MainWindow, make_project) -> None:  # noqa: ANN001
    project = make_project(name="active")
    run1, run2 = _with_model_run(project, "run1"), _with_model_run(project, "run2")
    assert window.open_project(project.root)
    loop = window.model.controller
    assert loop.model_path is None and window.workspace.active_model is None
    seen: list[Path | None] = []
    window.workspace.active_model_changed.connect(seen.append)

    assert window.training.controller is not None  # the dock's insides, without a device probe
    runs = window.training.dock.runs_view
    runs.select_runs(["run1"])
    runs.active_button.click()
    assert seen == [run1]
    assert Project.open(project.root).settings["active_model"] == "models/run1"
    assert loop.model_path == run1 and "run1" in window.model.dock.model_label.text()

    # The setting changed behind the workspace's back is not picked up on image open:
    # the Model part follows the signal, not the settings file.
    session = window.workspace.session
    session.project.settings["active_model"] = session.project.stored_path(run2)
    assert window.workspace.open_image("img01")
    assert loop.model_path == run1
    runs.select_runs(["run2"])
    runs.active_button.click()
    assert seen == [run1, run2] and loop.model_path == run2


class _Workspace(QObject):
    """Only the workspace's signals and state, no window: what a feature may rely on."""

    project_changed = Signal(object)
    image_opened = Signal(str)
    image_edited = Signal(str)
    status_changed = Signal(str, str)
    mask_saved = Signal(str)
    active_model_changed = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.project: Project | None = None
        self.session: EditingSession | None = None
        self.active_model: Path | None = None

    def listed_ids(self) -> list[str]:
        return [] if self.project is None else [r.id for r in self.project.images]


def test_features_install_from_a_context_without_a_window(qtbot, make_project) -> None:  # noqa: ANN001
    canvas = Canvas()
    qtbot.addWidget(canvas)
    workspace = _Workspace()
    docks: list[QDockWidget] = []
    menus: list[QMenu] = []
    notes: list[str] = []
    guards: list[object] = []
    context = FeatureContext(workspace=workspace, canvas=canvas, add_dock=lambda dock, _area: docks.append(dock),
                             tab_dock=lambda _dock, _name: False, add_menu=menus.append, notify=notes.append,
                             add_close_guard=guards.append)
    trained = training.install(context)
    modelled = model.install(context)
    for dock in docks:
        qtbot.addWidget(dock)
    assert [d.objectName() for d in docks] == ["training_dock", "prediction_dock"]
    assert [m.title() for m in menus] == ["&Training", "&Model"] and len(guards) == 1

    project = make_project(name="bare")
    run1 = _with_model_run(project, "run1")
    workspace.project, workspace.session = project, EditingSession(project, parent=workspace)
    workspace.project_changed.emit(project)
    assert trained.controller.project is project and modelled.controller.session is workspace.session
    workspace.active_model = run1
    workspace.active_model_changed.emit(run1)
    assert modelled.controller.model_path == run1
    modelled.controller.message.emit("hello")
    assert notes[-1] == "hello"
    workspace.project, workspace.session, workspace.active_model = None, None, None
    workspace.project_changed.emit(None)
    assert trained.controller.project is None and modelled.controller.session is None
    assert all(guard() for guard in guards)  # nothing running: closing may go on
