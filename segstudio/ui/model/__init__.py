"""Model in the loop, a feature of the window: the Model dock, the Model menu, export dialogs.

    model = install(context)     # once; the same hook as every feature (ui/features.py)

It follows the open project through the workspace's signals and routes clicks on the
canvas to "accept region" while that mode is on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QKeySequence, QMouseEvent
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMenu

from segstudio.ui import dialogs
from segstudio.ui.model.controller import LoopController
from segstudio.ui.model.prediction_dock import PredictionDock

if TYPE_CHECKING:
    from segstudio.core.project import Project
    from segstudio.ui.annotate.canvas import Canvas
    from segstudio.ui.features import FeatureContext
    from segstudio.ui.project.workspace import Workspace

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

    def __init__(self, hook: ModelHook) -> None:
        super().__init__(hook.controller)
        self.hook = hook

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (event.type() == QEvent.Type.MouseButtonPress and self.hook.dock.accept_region_button.isChecked()
                and isinstance(event, QMouseEvent) and event.button() == Qt.MouseButton.LeftButton):
            scene = self.hook.canvas.mapToScene(event.position().toPoint())
            self.hook.controller.accept_region(int(scene.x()), int(scene.y()))
            return True  # the paint tool never sees this click
        return False


@dataclass
class ModelHook:
    """What installing the Model part added (tests reach the parts here)."""

    workspace: Workspace
    canvas: Canvas
    controller: LoopController
    dock: PredictionDock
    menu: QMenu
    actions: dict[str, QAction]
    tab_dock: Callable[[QDockWidget, str], bool]
    cursor: tuple[int, int] = (-1, -1)
    tabified: bool = False

    def open_model_dialog(self) -> None:
        project = self.workspace.project
        start = str(project.root / "models") if project is not None else ""
        path, _ = QFileDialog.getOpenFileName(
            self.dock.window(), "Open a model: its config.json, or an exported .onnx / .pt file", start,
            "Models (config.json *.onnx *.pt);;All files (*)")
        if path:
            chosen = Path(path)
            # a model folder is chosen by its config.json (a folder picker cannot also take files)
            self.controller.set_model(chosen.parent if chosen.name == "config.json" else chosen)

    def use_active_model(self) -> None:
        active = self.workspace.active_model
        if active is None:
            self.controller.message.emit("the project has no active model yet; train one first")
            return
        self.controller.set_model(active, adopted=active)

    def predict_listed(self) -> None:
        self.controller.predict(self.workspace.listed_ids())

    def accept_region_here(self) -> None:
        x, y = self.cursor
        if x >= 0 and y >= 0:
            self.controller.accept_region(x, y)

    def toggle_confidence(self, on: bool) -> None:
        combo = self.dock.confidence_combo
        combo.setCurrentIndex(1 if on else 0)

    def export_model(self) -> None:
        from segstudio.ui.model.export_dialogs import ExportModelDialog

        ExportModelDialog(self.controller.model_path, self.dock.window()).exec()

    def export_dataset(self) -> None:
        from segstudio.ui.model.export_dialogs import ExportDatasetDialog

        session = self.controller.session
        if session is None:
            return
        saved = session.save_all()  # the exporters read masks from disk
        if not saved.ok and not dialogs.ask(
                self.dock.window(), "Some masks are not saved",
                f"{saved.error}\n\nThe export would take the last saved version of those masks. "
                "Their unsaved edits stay in the recovery journal. Export anyway?"):
            return
        ExportDatasetDialog(session.project, self.dock.window()).exec()

    def _on_canvas_cursor_moved(self, x: int, y: int, _class_id: int) -> None:
        self.cursor = (x, y)

    def _on_workspace_project_changed(self, project: Project | None) -> None:
        for name, action in self.actions.items():
            if name not in ("export_model",):
                action.setEnabled(project is not None)
        self.dock.setVisible(project is not None)
        if project is not None and not self.tabified:
            # Training and Model share one tab stack (both are about the model); done once,
            # when both docks are visible (Qt ignores tabifying a hidden dock), so a layout
            # the user arranges afterwards is kept.
            self.tabified = self.tab_dock(self.dock, "training_dock")


def _build_menu(install_actions: dict[str, QAction]) -> QMenu:
    menu = QMenu("&Model")
    menu.setObjectName("menu_model")
    for name, text, key, tip in MENU:
        if name is None:
            menu.addSeparator()
            continue
        action = QAction(text, menu)
        action.setObjectName(f"action_{name}")
        if key:
            action.setShortcut(QKeySequence(key))
            tip = f"{tip} ({key})"
        action.setToolTip(tip)
        action.setStatusTip(tip)
        menu.addAction(action)
        install_actions[name] = action
    for flag in ("toggle_prediction", "toggle_disagreement", "toggle_confidence"):
        install_actions[flag].setCheckable(True)
    return menu


def install(context: FeatureContext) -> ModelHook:
    """Add the Model dock and menu; the Model part follows the workspace from here on."""
    controller = LoopController(context.canvas)
    dock = PredictionDock(controller)
    controller.setParent(dock)  # lives as long as its dock, which the window owns
    context.add_dock(dock, Qt.DockWidgetArea.RightDockWidgetArea)
    actions: dict[str, QAction] = {}
    menu = _build_menu(actions)
    context.add_menu(menu)
    hook = ModelHook(context.workspace, context.canvas, controller, dock, menu, actions, context.tab_dock)
    c = controller
    for name, slot in (
        ("open_model", hook.open_model_dialog), ("use_active_model", hook.use_active_model),
        ("predict_image", c.predict_current), ("prelabel_all", c.prelabel_all),
        ("cancel_predict", c.cancel), ("accept_all", c.accept_all),
        ("accept_unlabeled", c.accept_unlabeled), ("accept_region_here", hook.accept_region_here),
        ("confirm_reviewed", c.confirm_reviewed), ("next_uncertain", c.next_uncertain),
        ("export_model", hook.export_model), ("export_dataset", hook.export_dataset),
    ):
        actions[name].triggered.connect(slot)
    actions["toggle_prediction"].setChecked(c.show_prediction)
    actions["toggle_prediction"].toggled.connect(dock.show_prediction.setChecked)
    dock.show_prediction.toggled.connect(actions["toggle_prediction"].setChecked)
    actions["toggle_disagreement"].toggled.connect(dock.show_disagreement.setChecked)
    dock.show_disagreement.toggled.connect(actions["toggle_disagreement"].setChecked)
    actions["toggle_confidence"].toggled.connect(hook.toggle_confidence)
    dock.confidence_combo.currentIndexChanged.connect(
        lambda index: actions["toggle_confidence"].setChecked(index > 0))
    dock.predict_listed.clicked.connect(hook.predict_listed)
    c.message.connect(context.notify)
    c.effort_changed.connect(dock._refresh_effort)
    context.canvas.cursor_moved.connect(hook._on_canvas_cursor_moved)
    clicks = _RegionClicks(hook)
    context.canvas.viewport().installEventFilter(clicks)
    controller.follow(context.workspace)  # first: it has the session before the dock shows
    context.workspace.project_changed.connect(hook._on_workspace_project_changed)
    hook._on_workspace_project_changed(context.workspace.project)
    return hook
