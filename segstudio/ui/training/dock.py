"""The Training dock (Train panel + live dashboard | Runs history) and TrainingHook, what
`segstudio.ui.training.install(context)` adds: a Training menu, the dock and a close guard;
it follows the open project through the workspace's signals.

The dock's insides (pyqtgraph, about a second to import) are built the first time the
dock is shown or Train is chosen, so the app starts as fast without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QLabel, QMenu, QWidget

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from segstudio.core.project import Project
    from segstudio.ui.features import FeatureContext
    from segstudio.ui.training.controller import TrainingController


class TrainingDock(QDockWidget):
    """Train tab (panel above the dashboard) and Runs tab; built on first use."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Training", parent)
        self.setObjectName("training_dock")
        self.controller: TrainingController | None = None
        self.before_show: Callable[[], None] | None = None
        self.setWidget(QLabel("Training is prepared when first shown."))

    def setVisible(self, visible: bool) -> None:  # noqa: N802 - Qt override
        # Joining the Model dock's tab stack must happen before the dock shows: shown first as a
        # dock of its own under the class list, its minimum height made the window grow past a
        # 1280x800 screen (and Qt never shrinks it back). Every way of showing (menu, Ctrl+T,
        # the dock's context menu) comes through here.
        if visible and self.isHidden() and self.before_show is not None:
            self.before_show()
        super().setVisible(visible)

    def build(self) -> TrainingController:
        if self.controller is not None:
            return self.controller
        from PySide6.QtWidgets import QScrollArea, QSplitter, QTabWidget

        from segstudio.ui.training.controller import TrainingController
        from segstudio.ui.training.dashboard import Dashboard
        from segstudio.ui.training.panel import TrainingPanel
        from segstudio.ui.training.runs_view import RunsView

        self.panel = TrainingPanel()
        self.dashboard = Dashboard()
        self.runs_view = RunsView()
        # The panel scrolls rather than clip its wrapped notes when the dock is short.
        panel_scroll = QScrollArea()
        panel_scroll.setWidgetResizable(True)
        panel_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        panel_scroll.setWidget(self.panel)
        train = QSplitter(Qt.Orientation.Vertical)
        train.addWidget(panel_scroll)
        train.addWidget(self.dashboard)
        train.setStretchFactor(1, 1)
        train.setSizes([self.panel.sizeHint().height() + 8, 700])
        self.tabs = QTabWidget()
        self.tabs.addTab(train, "Train")
        self.tabs.addTab(self.runs_view, "Runs")
        self.setWidget(self.tabs)
        self.controller = TrainingController(self.panel, self.dashboard, self.runs_view, self)
        self.controller.run_ended.connect(self._on_controller_run_ended)
        return self.controller

    def _on_controller_run_ended(self, final: dict[str, Any]) -> None:
        if final.get("event") == "error":
            self.tabs.setCurrentIndex(0)

    def confirm_close(self) -> bool:
        return self.controller is None or self.controller.confirm_close(self.window())


MODEL_DOCK = "prediction_dock"  # the Model feature's dock, by object name (no import of it)


class TrainingHook:
    """What installing training adds: the dock, its menu and the close guard. It follows the
    open project through the workspace's signals only."""

    def __init__(self, context: FeatureContext) -> None:
        self.workspace = context.workspace
        self.notify = context.notify
        self.tab_dock = context.tab_dock
        self._tabified = False
        self.dock = TrainingDock()
        context.add_dock(self.dock, Qt.DockWidgetArea.RightDockWidgetArea)
        self.dock.hide()
        self.dock.before_show = self._join_model_tabs
        menu = QMenu("&Training")
        menu.setObjectName("menu_training")
        self.train_action = QAction("&Train model", menu)
        self.train_action.setShortcut(QKeySequence("Ctrl+T"))
        self.train_action.setToolTip("Save all masks and fine-tune a model on the labelled images")
        self.train_action.triggered.connect(self._on_train_action_triggered)
        self.show_action = self.dock.toggleViewAction()
        self.show_action.setText("Show training &dashboard")
        menu.addAction(self.train_action)
        menu.addAction(self.show_action)
        context.add_menu(menu)
        context.add_close_guard(self.confirm_close)
        self.workspace.project_changed.connect(self._on_workspace_project_changed)
        self.workspace.status_changed.connect(self._on_workspace_data_changed)
        self.workspace.mask_saved.connect(self._on_workspace_data_changed)
        self.dock.visibilityChanged.connect(self._on_dock_visibility_changed)

    @property
    def controller(self) -> TrainingController:
        """The controller, building the dock's insides if needed."""
        if self.dock.controller is None:
            controller = self.dock.build()
            controller.message.connect(self.notify)
            # training makes a run's model active through the workspace, which tells the rest
            self.dock.runs_view.write_active_model = self._write_active_model
            self._on_workspace_project_changed(self.workspace.project)
        return self.dock.controller  # type: ignore[return-value]

    def _on_workspace_project_changed(self, project: Project | None) -> None:
        controller = self.dock.controller
        if controller is None:
            return  # built on first use, from the workspace's state then
        session = self.workspace.session
        controller.set_project(project, session.save_all if session is not None else None)

    def _on_workspace_data_changed(self, *_: object) -> None:
        if self.dock.controller is not None:
            self.dock.controller.refresh_data_soon()

    def _write_active_model(self, _project: Project, model_dir: Path | None) -> None:
        self.workspace.set_active_model(model_dir)

    def show(self) -> TrainingController:
        controller = self.controller
        self.dock.show()
        self.dock.raise_()
        return controller

    def _join_model_tabs(self) -> None:
        """One tab stack with the Model dock (both are about the model), so showing training
        never squeezes the class list; done once, so the user's own arrangement wins."""
        if not self._tabified:
            self._tabified = self.tab_dock(self.dock, MODEL_DOCK)

    def _on_dock_visibility_changed(self, visible: bool) -> None:
        if visible:
            self._join_model_tabs()  # when the Model dock was hidden at the first show
            controller = self.controller
            # Probing imports torch in a child (seconds of CPU): only once training is wanted.
            controller.start_probe()
            controller.refresh_data_soon()

    def _on_train_action_triggered(self) -> None:
        controller = self.show()
        self.dock.tabs.setCurrentIndex(0)
        controller.start()

    def confirm_close(self) -> bool:
        return self.dock.confirm_close()
