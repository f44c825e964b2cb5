"""The look: light or dark palette following the system, and one icon set for every action.

Icons come from qtawesome's Material Design set (MIT/Apache fonts, drawn as vectors at any
scale), tinted with the palette's text colour so they read on light and dark themes alike.
They are rebuilt when the system switches between light and dark.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Literal

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QColor, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QApplication

Theme = Literal["light", "dark"]
THEME_ENV = "SEGSTUDIO_THEME"  # light | dark | system (the default): for screenshots and tests

# action name (without the action_ prefix) -> Material Design icon
ACTION_ICONS = {
    "tool_brush": "mdi6.brush",
    "tool_eraser": "mdi6.eraser",
    "tool_fill": "mdi6.format-color-fill",
    "tool_polygon": "mdi6.vector-polygon",
    "tool_lasso": "mdi6.lasso",
    "tool_box_select": "mdi6.selection-drag",
    "tool_scribble": "mdi6.gesture",
    "tool_wand": "mdi6.auto-fix",
    "tool_picker": "mdi6.eyedropper",
    "tool_pan": "mdi6.hand-back-right-outline",
    "tool_assist": "mdi6.cursor-default-click-outline",
    "open_project": "mdi6.folder-open-outline",
    "new_project": "mdi6.folder-plus-outline",
    "import_dataset": "mdi6.database-import-outline",
    "open_sample": "mdi6.image-multiple-outline",
    "save": "mdi6.content-save-outline",
    "close_project": "mdi6.close-box-outline",
    "quit": "mdi6.exit-to-app",
    "undo": "mdi6.undo",
    "redo": "mdi6.redo",
    "protect": "mdi6.shield-lock-outline",
    "zoom_in": "mdi6.magnify-plus-outline",
    "zoom_out": "mdi6.magnify-minus-outline",
    "zoom_fit": "mdi6.fit-to-screen-outline",
    "zoom_100": "mdi6.numeric-1-box-outline",
    "toggle_overlay": "mdi6.layers-outline",
    "outline_mode": "mdi6.vector-square",
    "next_image": "mdi6.chevron-right",
    "prev_image": "mdi6.chevron-left",
    "next_unlabeled": "mdi6.skip-next-outline",
    "mark_labeled": "mdi6.check",
    "mark_reviewed": "mdi6.check-all",
    "add_class": "mdi6.tag-plus-outline",
    "shortcuts": "mdi6.keyboard-outline",
    "about": "mdi6.information-outline",
}


def system_theme() -> Theme:
    """What the desktop asks for ($SEGSTUDIO_THEME wins), light when it does not say."""
    wanted = os.environ.get(THEME_ENV, "system").lower()
    if wanted in ("light", "dark"):
        return wanted  # type: ignore[return-value]
    hints = QGuiApplication.styleHints()
    scheme = hints.colorScheme() if hints is not None and hasattr(hints, "colorScheme") else None
    return "dark" if scheme == Qt.ColorScheme.Dark else "light"


def dark_palette() -> QPalette:
    palette = QPalette()
    roles = QPalette.ColorRole
    for role, color in (
        (roles.Window, "#2b2d31"), (roles.WindowText, "#e6e6e6"), (roles.Base, "#1f2023"),
        (roles.AlternateBase, "#2f3136"), (roles.ToolTipBase, "#3a3c42"), (roles.ToolTipText, "#f0f0f0"),
        (roles.Text, "#e6e6e6"), (roles.Button, "#35373c"), (roles.ButtonText, "#e6e6e6"),
        (roles.BrightText, "#ff6b6b"), (roles.Link, "#6cb6ff"), (roles.Highlight, "#3d7bd9"),
        (roles.HighlightedText, "#ffffff"), (roles.PlaceholderText, "#8b8e94"), (roles.Mid, "#45474d"),
        (roles.Dark, "#18191b"), (roles.Light, "#4a4d54"), (roles.Midlight, "#3d4046"), (roles.Shadow, "#0d0d0e"),
    ):
        palette.setColor(role, QColor(color))
    for role in (roles.Text, roles.WindowText, roles.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7c7f86"))
    return palette


def apply_theme(app: QApplication, theme: Theme | None = None) -> Theme:
    """Fusion style (the same on every platform) with a light or dark palette."""
    theme = theme or system_theme()
    app.setStyle("Fusion")
    app.setPalette(dark_palette() if theme == "dark" else app.style().standardPalette())
    app.setProperty("segstudio_theme", theme)
    return theme


def current_theme() -> Theme:
    app = QApplication.instance()
    value = app.property("segstudio_theme") if app is not None else None
    return "dark" if value == "dark" else "light"


def icon(name: str) -> QIcon:
    """A Material Design icon tinted for the current palette (empty when qtawesome is missing)."""
    try:
        import qtawesome
    except ImportError:  # icons are a nicety: the actions keep their text
        return QIcon()
    palette = QApplication.palette()
    color = palette.color(QPalette.ColorRole.ButtonText)
    disabled = palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText)
    return qtawesome.icon(name, color=color, color_disabled=disabled,
                          color_active=color, color_selected=palette.color(QPalette.ColorRole.HighlightedText))


def apply_icons(actions: Iterable[QAction]) -> int:
    """Give every known action its icon; returns how many got one."""
    done = 0
    for action in actions:
        name = action.objectName().removeprefix("action_")
        if name in ACTION_ICONS:
            action.setIcon(icon(ACTION_ICONS[name]))
            done += 1
    return done


def follow_system_theme(app: QApplication) -> None:
    """Switch palette and icons when the desktop switches between light and dark."""
    hints = app.styleHints()
    if hints is None or not hasattr(hints, "colorSchemeChanged") or os.environ.get(THEME_ENV):
        return

    def _on_hints_color_scheme_changed(*_: object) -> None:
        apply_theme(app)
        for widget in app.allWidgets():
            apply_icons(widget.actions())

    hints.colorSchemeChanged.connect(_on_hints_color_scheme_changed)
