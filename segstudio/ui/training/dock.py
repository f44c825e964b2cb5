"""The Training dock (Train panel + live dashboard | Runs history) and its hook into the
main window: a Training menu, the dock, following the open project, the close guard.

The dock's insides (pyqtgraph, about a second to import) are built the first time the
dock is shown or Train is chosen, so the app starts as fast without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QLabel, QWidget

if TYPE_CHECKING:
    from segstudio.ui.main_window import MainWindow
    from segstudio.ui.training.controller import TrainingController


class TrainingDock(QDockWidget):
    """Train tab (panel above the dashboard) and Runs tab; built on first use."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Training", parent)
        self.setObjectName("training_dock")
        self.controller: TrainingController | None = None
        self.setWidget(QLabel("Training is prepared when first shown."))

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


class TrainingHook:
    """What the main window holds: the dock, its actions, and the project follower."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.dock = TrainingDock(window)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.hide()
        menu = window.menuBar().addMenu("&Training")
        self.train_action = QAction("&Train model", window)
        self.train_action.setShortcut(QKeySequence("Ctrl+T"))
        self.train_action.setToolTip("Save all masks and fine-tune a model on the labelled images")
        self.train_action.triggered.connect(self._on_train_action_triggered)
        self.show_action = self.dock.toggleViewAction()
        self.show_action.setText("Show training &dashboard")
        menu.addAction(self.train_action)
        menu.addAction(self.show_action)
        self._session: object | None = None
        # The workspace retitles the window whenever a project opens or closes (and on status
        # changes): a cheap, edit-free way to follow it.
        window.windowTitleChanged.connect(self.sync_project)
        self.dock.visibilityChanged.connect(self._on_dock_visibility_changed)

    @property
    def controller(self) -> TrainingController:
        """The controller, building the dock's insides if needed."""
        if self.dock.controller is None:
            controller = self.dock.build()
            controller.message.connect(self._on_controller_message)
            self._session = None
            self.sync_project()
        return self.dock.controller  # type: ignore[return-value]

    def sync_project(self, *_: object) -> None:
        controller = self.dock.controller
        if controller is None:
            return
        workspace = getattr(self.window, "workspace", None)
        project = getattr(workspace, "project", None)
        session = getattr(workspace, "session", None)
        if session is not self._session:
            self._session = session
            for name in ("status_changed", "saved"):
                signal = getattr(session, name, None)
                if signal is not None:
                    signal.connect(controller.refresh_data_soon)
        controller.set_project(project, getattr(session, "save_all", None))

    def show(self) -> TrainingController:
        controller = self.controller
        self.dock.show()
        self.dock.raise_()
        return controller

    def _on_dock_visibility_changed(self, visible: bool) -> None:
        if visible:
            controller = self.controller
            # Probing imports torch in a child (seconds of CPU): only once training is wanted.
            controller.start_probe()
            controller.refresh_data_soon()

    def _on_train_action_triggered(self) -> None:
        controller = self.show()
        self.dock.tabs.setCurrentIndex(0)
        controller.start()

    def _on_controller_message(self, text: str) -> None:
        status = getattr(self.window, "status", None)
        if status is not None and hasattr(status, "show_note"):
            status.show_note(text)
        else:
            self.window.statusBar().showMessage(text, 8000)

    def confirm_close(self) -> bool:
        return self.dock.confirm_close()


def install_training(window: MainWindow) -> TrainingHook:
    """Add the Training dock and menu to `window` (called once from MainWindow)."""
    return TrainingHook(window)
