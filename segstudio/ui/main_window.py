"""The main window: assembles the parts and connects them; the behaviour lives in the parts.

    actions (menus, shortcuts)   tool bar      dataset dock | canvas | classes dock
    welcome screen (no project)  status bar    workspace (project, session, autosave)
    features (training, model): installed through one hook, `install(FeatureContext)`
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QApplication, QDockWidget, QMainWindow, QMenu, QStackedWidget, QWidget

from segstudio.ui import model, training
from segstudio.ui.actions import Actions
from segstudio.ui.annotate import assist_controller
from segstudio.ui.annotate.canvas import Canvas
from segstudio.ui.annotate.classes_dock import ClassesDock
from segstudio.ui.annotate.display_dock import DisplayDock
from segstudio.ui.annotate.tool_bar import ToolBar
from segstudio.ui.features import CloseGuard, FeatureContext
from segstudio.ui.project.dataset_dock import DatasetDock
from segstudio.ui.project.view_memory import ViewMemory
from segstudio.ui.project.workspace import Workspace
from segstudio.ui.resources import app_icon
from segstudio.ui.settings import AppSettings
from segstudio.ui.status_bar import StatusBar
from segstudio.ui.welcome import WelcomeScreen


class MainWindow(QMainWindow):
    """segstudio's window. `workspace` does the work; tests drive it and the parts."""

    def __init__(self, settings: AppSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("main_window")
        self.setWindowTitle("segstudio")
        self.setWindowIcon(app_icon())
        self.settings = settings or AppSettings()
        self.commands = Actions(self)
        self.commands.build_menus(self.menuBar())
        self.tool_bar = ToolBar(self.commands, self)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.tool_bar)
        self.status = StatusBar(self)
        self.setStatusBar(self.status)
        self.canvas = Canvas(self)
        self.canvas.setObjectName("canvas")
        self.welcome = WelcomeScreen(self)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.welcome)
        self.stack.addWidget(self.canvas)
        self.setCentralWidget(self.stack)
        self.dataset_dock = DatasetDock(self)
        self.classes_dock = ClassesDock(self)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.dataset_dock)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.classes_dock)
        self.workspace = Workspace(self)
        # below the classes; shows itself for projects with a channel table (not for photos)
        self.display_dock = DisplayDock(self.workspace, self.canvas, self.dataset_dock, self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.display_dock)
        self.splitDockWidget(self.classes_dock, self.display_dock, Qt.Orientation.Vertical)
        self.display_dock.message.connect(self.status.show_note)
        self.view_memory = ViewMemory(self.settings, self.workspace, self.canvas, self.tool_bar,
                                      self.classes_dock, self)
        self._close_guards: list[CloseGuard] = []
        self._project_docks: dict[QDockWidget, bool] = {}  # feature docks -> shown with a project
        self._connect()
        features = FeatureContext(
            workspace=self.workspace, canvas=self.canvas, add_dock=self._add_dock,
            tab_dock=self._tab_dock, add_menu=self._add_menu, notify=self.status.show_note,
            add_close_guard=self._close_guards.append,
        )
        self.training = training.install(features)
        self.model = model.install(features)
        self.assist = assist_controller.install(features, self.commands, self.tool_bar, self.settings)
        self._default_layout_pending = True
        self._restore_layout()
        self.display_dock.hide()  # until a project with a channel table opens
        self.workspace.project_changed.connect(self._on_workspace_project_changed)
        self._on_workspace_project_changed(None)
        self.workspace.show_welcome()
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._on_app_about_to_quit)

    def _connect(self) -> None:
        ws, a, canvas = self.workspace, self.commands, self.canvas
        for name, slot in (
            ("open_project", ws.choose_project), ("new_project", ws.new_project),
            ("import_dataset", ws.import_dataset), ("open_sample", ws.open_sample),
            ("save", ws.save), ("close_project", ws.close_project), ("quit", self.close),
            ("undo", ws.undo), ("redo", ws.redo),
            ("brush_bigger", lambda: ws.step_brush(1)), ("brush_smaller", lambda: ws.step_brush(-1)),
            ("zoom_in", lambda: canvas.zoom_by(1.25)), ("zoom_out", lambda: canvas.zoom_by(0.8)),
            ("zoom_fit", canvas.zoom_fit), ("zoom_100", canvas.zoom_100),
            ("next_image", lambda: ws.go(1)), ("prev_image", lambda: ws.go(-1)),
            ("next_unlabeled", ws.go_next_unlabeled),
            ("mark_labeled", lambda: ws.mark_done(False)), ("mark_reviewed", lambda: ws.mark_done(True)),
            ("add_class", lambda: self.classes_dock.add_class()),
            ("shortcuts", ws.show_shortcuts), ("about", ws.show_about),
        ):
            a[name].triggered.connect(slot)
        a["protect"].toggled.connect(canvas.set_protect)
        a["right_erases"].setChecked(self.settings.right_button_erases())
        canvas.set_right_button_erases(a["right_erases"].isChecked())
        a["right_erases"].toggled.connect(canvas.set_right_button_erases)
        a["right_erases"].toggled.connect(self.settings.set_right_button_erases)
        a["toggle_overlay"].toggled.connect(canvas.set_overlay_visible)
        a["outline_mode"].toggled.connect(canvas.set_outline_mode)
        a.tool_group.triggered.connect(lambda action: canvas.set_tool(str(action.data())))
        for action in a.class_actions():
            action.triggered.connect(lambda _=False, n=int(action.data()) + 1: self.classes_dock.select_key(n))
        canvas.overlay_visible_changed.connect(a["toggle_overlay"].setChecked)
        canvas.tool_changed.connect(ws.on_canvas_tool_changed)
        canvas.cursor_moved.connect(self.status.set_cursor)
        canvas.zoom_changed.connect(self.status.set_zoom)
        canvas.class_picked.connect(self.classes_dock.set_active_class)
        canvas.brush_size_changed.connect(self.tool_bar.set_brush_size)
        canvas.tool_error.connect(self.status.show_note)
        self.tool_bar.brush_size_changed.connect(canvas.set_brush_size)
        self.tool_bar.opacity_changed.connect(canvas.set_overlay_opacity)
        self.tool_bar.tolerance_changed.connect(canvas.set_wand_tolerance)
        canvas.set_brush_size(self.tool_bar.brush_size.value())
        canvas.set_overlay_opacity(self.tool_bar.opacity.value() / 100)
        canvas.set_wand_tolerance(self.tool_bar.tolerance.value())
        self.classes_dock.active_class_changed.connect(canvas.set_active_class)
        self.dataset_dock.image_selected.connect(ws.open_image)
        w = self.welcome
        w.open_requested.connect(ws.choose_project)
        w.new_requested.connect(ws.new_project)
        w.import_requested.connect(ws.import_dataset)
        w.sample_requested.connect(ws.open_sample)
        w.recent_requested.connect(ws.open_project)

    def _restore_layout(self) -> None:
        geometry = self.settings.window_geometry()
        if geometry is None or not self.restoreGeometry(geometry) or not self._fits_screen():
            self.fit_to_screen()
        state = self.settings.window_state()
        if state is not None:
            self.restoreState(state)
            self._default_layout_pending = False  # the user's own arrangement wins

    def _fits_screen(self) -> bool:
        """A restored geometry is kept only when it is on a screen and not shrunk to a corner
        (as one written by a crashed or half-started session can be)."""
        screen = self.screen()
        if screen is None:
            return True
        available = screen.availableGeometry()
        frame = self.frameGeometry()
        visible = frame.intersected(available)
        big_enough = (self.width() >= min(1280, available.width() * 0.6)
                      and self.height() >= min(800, available.height() * 0.6))
        return big_enough and visible.width() * visible.height() >= 0.8 * frame.width() * frame.height()

    def fit_to_screen(self) -> None:
        """The first layout: most of the screen's available area (up to 1600x1000), centred."""
        screen = self.screen()
        if screen is None:
            self.resize(1400, 900)
            return
        available = screen.availableGeometry()
        width = min(1600, int(available.width() * 0.92))
        height = min(1000, int(available.height() * 0.92))
        self.resize(width, height)
        self.move(available.left() + (available.width() - width) // 2,
                  available.top() + (available.height() - height) // 2)

    def _on_workspace_project_changed(self, project: object) -> None:
        """Feature docks only make sense with a project: hidden on the welcome screen, back as
        they were when one opens. The layout is saved too, so a crash keeps it."""
        for dock in self._project_docks:
            if project is None:
                self._project_docks[dock] = self._project_docks[dock] or dock.isVisible()
                dock.hide()
            elif self._project_docks[dock]:
                self._project_docks[dock] = False
                dock.show()
        if project is not None:
            self.settings.save_window(self.saveGeometry(), self.saveState())

    # -- feature slots (FeatureContext) ------------------------------------------------------------
    def _add_dock(self, dock: QDockWidget, area: Qt.DockWidgetArea) -> None:
        self.addDockWidget(area, dock)
        self._project_docks[dock] = False

    def _add_menu(self, menu: QMenu) -> None:
        """A feature's menu goes before Help (Help stays rightmost); its shortcuts work while
        it is closed."""
        bar = self.menuBar()
        menu.setParent(bar, menu.windowFlags())  # the window owns it from here on
        help_menu = next((a for a in bar.actions()
                          if a.menu() is not None and a.menu().objectName() == "menu_help"), None)
        if help_menu is not None:
            bar.insertMenu(help_menu, menu)
        else:
            bar.addMenu(menu)
        self.addActions([action for action in menu.actions() if not action.isSeparator()])

    def _tab_dock(self, dock: QDockWidget, beside: str) -> bool:
        other = self.findChild(QDockWidget, beside)
        if other is None or not other.isVisible():
            return False  # Qt ignores tabifying with a hidden dock
        if dock not in self.tabifiedDockWidgets(other):
            self.tabifyDockWidget(other, dock)
        return True

    def apply_default_layout(self) -> None:
        """On first use (no saved layout): room for the image list and the right-hand docks,
        with the class list taking the top part of a shared right column."""
        if not self._default_layout_pending or not self.classes_dock.isVisible():
            return
        self._default_layout_pending = False
        width = self.width()
        left = max(220, min(280, int(width * 0.2)))
        right = max(340, min(380, int(width * 0.27)))  # the Model dock needs about 320 + a scroll bar
        self.resizeDocks([self.dataset_dock, self.classes_dock], [left, right], Qt.Orientation.Horizontal)
        column = [dock for dock in self.findChildren(QDockWidget)
                  if dock.isVisible() and self.dockWidgetArea(dock) == Qt.DockWidgetArea.RightDockWidgetArea]
        if len(column) > 1:
            # at least eight class rows above the buttons, more on a tall screen
            rows = self.classes_dock.height_for_rows(8)
            self.resizeDocks([self.classes_dock], [max(rows, int(self.height() * 0.42))], Qt.Orientation.Vertical)
        QTimer.singleShot(0, self.canvas.zoom_fit)  # the canvas changed size with the docks

    def open_project(self, path: Path) -> bool:
        return self.workspace.open_project(path)

    def _on_app_about_to_quit(self) -> None:
        # Quitting without closing the window (session logout, app.quit()) still saves;
        # what cannot be saved stays in the recovery journal.
        session = self.workspace.session
        if session is not None:
            session.close_all()

    def closeEvent(self, event: QCloseEvent) -> None:
        if not all(guard() for guard in self._close_guards):  # e.g. a run is going and the user kept it
            event.ignore()
            return
        if not self.workspace.close_project(show_welcome=False):
            event.ignore()
            return
        self.settings.save_window(self.saveGeometry(), self.saveState())
        self.settings.sync()
        event.accept()
