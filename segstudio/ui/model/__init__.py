"""Model in the loop for the main window: the Model dock, the Model menu and export dialogs.

    loop = install_loop(window)     # once, after the window built its parts

`install_loop` adds everything without the window knowing the details: it follows the
workspace's session when a project opens or closes, and routes clicks on the canvas to
"accept region" while that mode is on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QKeySequence, QMouseEvent
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMenu

from segstudio.core.runs import active_model
from segstudio.ui.model.controller import LoopController
from segstudio.ui.model.prediction_dock import PredictionDock

if TYPE_CHECKING:
    from segstudio.ui.main_window import MainWindow

# (name, text, shortcut, tip); shortcuts chosen not to clash with the window's table
MENU = (
    ("open_model", "&Open model...", "", "Use a model folder or .onnx file for predictions"),
    ("use_active_model", "Use the project's &active model", "", "The model training made active"),
    (None, None, None, None),
    ("predict_image", "&Predict this image", "Ctrl+P", "Predict the open image in the background"),
    ("prelabel_all", "Pre-&label all unlabelled images", "", "Write predictions as masks (status predicted)"),
    ("cancel_predict", "&Cancel prediction", "", "Stop after the current image"),
    (None, None, None, None),
    ("toggle_prediction", "Show p&rediction", "Shift+P", "Show the prediction layer"),
    ("toggle_disagreement", "Show &disagreement", "Shift+D", "Highlight where mask and prediction differ"),
    ("toggle_confidence", "Show &uncertainty map", "Shift+C", "Heat map of 1 - max probability"),
    (None, None, None, None),
    ("accept_all", "&Accept prediction", "Alt+A", "Take the whole prediction (one undo step)"),
    ("accept_unlabeled", "Accept into &unlabelled pixels", "Alt+U", "Keep what is labelled"),
    ("accept_region_here", "Accept predicted &region under cursor", "Shift+A",
     "Take the predicted area under the mouse pointer"),
    ("confirm_reviewed", "Confirm &reviewed", "", "Save and mark this image reviewed"),
    ("next_uncertain", "&Next most uncertain image", "Shift+N", "Open the image the model is least sure of"),
    (None, None, None, None),
    ("export_model", "&Export model...", "", "ONNX, TorchScript or safetensors, verified"),
    ("export_dataset", "Export &dataset...", "Ctrl+Shift+E", "Masks, colour, overlays, VOC, COCO, Cityscapes"),
)


class _RegionClicks(QObject):
    """While armed, a left click on the canvas accepts the predicted region under it."""

    def __init__(self, loop: LoopInstall) -> None:
        super().__init__(loop.controller)
        self.loop = loop

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (event.type() == QEvent.Type.MouseButtonPress and self.loop.dock.accept_region_button.isChecked()
                and isinstance(event, QMouseEvent) and event.button() == Qt.MouseButton.LeftButton):
            scene = self.loop.window.canvas.mapToScene(event.position().toPoint())
            self.loop.controller.accept_region(int(scene.x()), int(scene.y()))
            return True  # the paint tool never sees this click
        return False


@dataclass
class LoopInstall:
    """What install_loop added to a window (tests and the window reach the parts here)."""

    window: MainWindow
    controller: LoopController
    dock: PredictionDock
    menu: QMenu
    actions: dict[str, QAction]
    cursor: tuple[int, int] = (-1, -1)
    tabified: bool = False

    def open_model_dialog(self) -> None:
        session = self.controller.session
        start = str(session.project.root / "models") if session else ""
        path = QFileDialog.getExistingDirectory(self.window, "Open a model folder", start)
        if path:
            self.controller.set_model(Path(path))

    def use_active_model(self) -> None:
        session = self.controller.session
        active = active_model(session.project) if session else None
        if active is None:
            self.controller.message.emit("the project has no active model yet; train one first")
            return
        self.controller.set_model(active, adopted=str(active))

    def predict_listed(self) -> None:
        self.controller.predict(self.window.dataset_dock.visible_ids())

    def accept_region_here(self) -> None:
        x, y = self.cursor
        if x >= 0 and y >= 0:
            self.controller.accept_region(x, y)

    def toggle_confidence(self, on: bool) -> None:
        combo = self.dock.confidence_combo
        combo.setCurrentIndex(1 if on else 0)

    def export_model(self) -> None:
        from segstudio.ui.model.export_dialogs import ExportModelDialog

        ExportModelDialog(self.controller.model_path, self.window).exec()

    def export_dataset(self) -> None:
        from segstudio.ui.model.export_dialogs import ExportDatasetDialog

        session = self.controller.session
        if session is None:
            return
        session.save_all()  # the exporters read masks from disk
        ExportDatasetDialog(session.project, self.window).exec()

    def _on_canvas_cursor_moved(self, x: int, y: int, _class_id: int) -> None:
        self.cursor = (x, y)

    def _on_project_changed(self) -> None:
        session = self.window.workspace.session
        self.controller.attach(session)
        for name, action in self.actions.items():
            if name not in ("export_model",):
                action.setEnabled(session is not None)
        self.dock.setVisible(session is not None)
        if session is not None and not self.tabified:
            self._tabify_with_training()

    def _tabify_with_training(self) -> None:
        """Training and Model share one tab stack (both are about the model); done once, when
        both docks are visible (Qt ignores tabifying a hidden dock), so a layout the user
        arranges afterwards is kept."""
        training = self.window.findChild(QDockWidget, "training_dock")
        if training is None or not training.isVisible():
            return
        self.tabified = True
        if self.dock not in self.window.tabifiedDockWidgets(training):
            self.window.tabifyDockWidget(training, self.dock)


def _build_menu(window: MainWindow, install_actions: dict[str, QAction]) -> QMenu:
    menu = QMenu("&Model", window)
    menu.setObjectName("menu_model")
    for name, text, key, tip in MENU:
        if name is None:
            menu.addSeparator()
            continue
        action = QAction(text, window)
        action.setObjectName(f"action_{name}")
        if key:
            action.setShortcut(QKeySequence(key))
            tip = f"{tip} ({key})"
        action.setToolTip(tip)
        action.setStatusTip(tip)
        window.addAction(action)  # shortcuts work while the menu is closed
        menu.addAction(action)
        install_actions[name] = action
    for flag in ("toggle_prediction", "toggle_disagreement", "toggle_confidence"):
        install_actions[flag].setCheckable(True)
    bar = window.menuBar()
    help_menu = next((a for a in bar.actions() if a.menu() is not None
                      and a.menu().objectName() == "menu_help"), None)
    if help_menu is not None:
        bar.insertMenu(help_menu, menu)
    else:
        bar.addMenu(menu)
    return menu


def install_loop(window: MainWindow) -> LoopInstall:
    """Add the Model dock and menu to `window`; call once after the window is built."""
    controller = LoopController(window.canvas, window)
    dock = PredictionDock(controller, window)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    actions: dict[str, QAction] = {}
    menu = _build_menu(window, actions)
    loop = LoopInstall(window, controller, dock, menu, actions)
    c = controller
    for name, slot in (
        ("open_model", loop.open_model_dialog), ("use_active_model", loop.use_active_model),
        ("predict_image", c.predict_current), ("prelabel_all", c.prelabel_all),
        ("cancel_predict", c.cancel), ("accept_all", c.accept_all),
        ("accept_unlabeled", c.accept_unlabeled), ("accept_region_here", loop.accept_region_here),
        ("confirm_reviewed", c.confirm_reviewed), ("next_uncertain", c.next_uncertain),
        ("export_model", loop.export_model), ("export_dataset", loop.export_dataset),
    ):
        actions[name].triggered.connect(slot)
    actions["toggle_prediction"].setChecked(c.show_prediction)
    actions["toggle_prediction"].toggled.connect(dock.show_prediction.setChecked)
    dock.show_prediction.toggled.connect(actions["toggle_prediction"].setChecked)
    actions["toggle_disagreement"].toggled.connect(dock.show_disagreement.setChecked)
    dock.show_disagreement.toggled.connect(actions["toggle_disagreement"].setChecked)
    actions["toggle_confidence"].toggled.connect(loop.toggle_confidence)
    dock.confidence_combo.currentIndexChanged.connect(
        lambda index: actions["toggle_confidence"].setChecked(index > 0))
    dock.predict_listed.clicked.connect(loop.predict_listed)
    c.message.connect(window.status.show_note)
    c.effort_changed.connect(dock._refresh_effort)
    window.canvas.cursor_moved.connect(loop._on_canvas_cursor_moved)
    clicks = _RegionClicks(loop)
    window.canvas.viewport().installEventFilter(clicks)
    # The workspace has no "project opened" signal; the image list swaps its model exactly
    # when a project is attached or closed, after the new session exists.
    window.dataset_dock.proxy.sourceModelChanged.connect(loop._on_project_changed)
    loop._on_project_changed()
    return loop
