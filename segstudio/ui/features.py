"""What a feature package (training, model) receives from the window, and nothing more.

Every feature package exposes the same hook:

    def install(context: FeatureContext) -> <its handle>

It follows the open project only through the workspace's signals (project_changed,
image_opened, status_changed, mask_saved, active_model_changed, ...) and reaches the
window only through the slots below, so features stay independent of the window and of
each other (import-linter contracts in pyproject.toml keep it so).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QDockWidget, QMenu

    from segstudio.ui.annotate.canvas import Canvas
    from segstudio.ui.project.workspace import Workspace

CloseGuard = Callable[[], bool]  # False: keep the window open


@dataclass(frozen=True)
class FeatureContext:
    """The window's offer to a feature: the workspace to follow, the canvas to draw on, and
    slots for docks, a menu, status notes and a close guard."""

    workspace: Workspace
    canvas: Canvas
    # put a dock in an area of the window (the window owns it from then on)
    add_dock: Callable[[QDockWidget, Qt.DockWidgetArea], None]
    # share a tab stack with the visible dock of that object name; False when there is none
    tab_dock: Callable[[QDockWidget, str], bool]
    # a menu of the menu bar, placed before Help; its shortcuts work while it is closed
    add_menu: Callable[[QMenu], None]
    notify: Callable[[str], None]  # a short note in the status bar
    add_close_guard: Callable[[CloseGuard], None]  # asked before the window closes
