"""Per-project view memory: a project opens with the class, tool, brush size and overlay
opacity the user left it with (kept in QSettings by AppSettings, keyed by the project folder)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject

from segstudio.core.project import Project
from segstudio.ui.actions import TOOLS

if TYPE_CHECKING:
    from segstudio.ui.annotate.canvas import Canvas
    from segstudio.ui.annotate.classes_dock import ClassesDock
    from segstudio.ui.annotate.tool_bar import ToolBar
    from segstudio.ui.project.workspace import Workspace
    from segstudio.ui.settings import AppSettings

TOOL_NAMES = {name for name, *_ in TOOLS}


class ViewMemory(QObject):
    """Restores the view when a project opens; records it whenever the user changes it."""

    def __init__(self, settings: AppSettings, workspace: Workspace, canvas: Canvas, tool_bar: ToolBar,
                 classes_dock: ClassesDock, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.canvas = canvas
        self.tool_bar = tool_bar
        self.classes_dock = classes_dock
        self._project: Project | None = None
        self._restoring = False
        workspace.project_changed.connect(self._on_workspace_project_changed)
        canvas.tool_changed.connect(self._remember)
        canvas.brush_size_changed.connect(self._remember)
        classes_dock.active_class_changed.connect(self._remember)
        tool_bar.brush_size_changed.connect(self._remember)
        tool_bar.opacity_changed.connect(self._remember)

    def current(self) -> dict[str, Any]:
        return {"class": self.canvas.active_class, "tool": self.canvas.tool,
                "brush": self.canvas.brush_size, "opacity": self.tool_bar.opacity.value()}

    def _on_workspace_project_changed(self, project: Project | None) -> None:
        self._project = project
        if project is None:
            return
        view = self.settings.project_view(project.root)
        self._restoring = True
        try:
            class_id = view.get("class")
            if isinstance(class_id, int) and any(c.id == class_id for c in project.classes):
                self.classes_dock.set_active_class(class_id)
            if view.get("tool") in TOOL_NAMES:
                self.canvas.set_tool(str(view["tool"]))
            if isinstance(view.get("brush"), int):
                self.tool_bar.brush_size.setValue(int(view["brush"]))
            if isinstance(view.get("opacity"), int):
                self.tool_bar.opacity.setValue(int(view["opacity"]))
        finally:
            self._restoring = False

    def _remember(self, *_: object) -> None:
        if self._restoring or self._project is None:
            return
        self.settings.save_project_view(self._project.root, self.current())
