"""The tool bar: tool buttons, brush size, protect toggle, overlay opacity, wand tolerance."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QLabel, QSlider, QSpinBox, QToolBar, QWidget

from segstudio.ui.actions import Actions

MAX_BRUSH = 500
# The everyday actions shown before the tools (each has an icon; the menus have them all).
FILE_ACTIONS = ("save", "undo", "redo", "zoom_fit")


class ToolBar(QToolBar):
    """Widgets that set tool parameters; it emits, the window forwards to the canvas."""

    brush_size_changed = Signal(int)
    opacity_changed = Signal(float)
    tolerance_changed = Signal(int)

    def __init__(self, actions: Actions, parent: QWidget | None = None) -> None:
        super().__init__("Tools", parent)
        self.setObjectName("tool_bar")
        self.setMovable(False)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.setIconSize(QSize(20, 20))
        for name in FILE_ACTIONS:
            self.addAction(actions[name])
        self.addSeparator()
        for action in actions.tool_actions():
            self.addAction(action)
        self.addSeparator()
        self.brush_size = QSpinBox(self)
        self.brush_size.setObjectName("brush_size")
        self.brush_size.setRange(1, MAX_BRUSH)
        self.brush_size.setValue(8)
        self.brush_size.setSuffix(" px")
        self.brush_size.setToolTip("Brush radius ([ and ] change it)")
        self._labelled("Size", self.brush_size)
        self.addAction(actions["protect"])
        self.addSeparator()
        self.opacity = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity.setObjectName("opacity")
        self.opacity.setRange(0, 100)
        self.opacity.setValue(50)
        self.opacity.setFixedWidth(100)
        self.opacity.setToolTip("Mask overlay opacity")
        self._labelled("Opacity", self.opacity)
        self.tolerance = QSpinBox(self)
        self.tolerance.setObjectName("wand_tolerance")
        self.tolerance.setRange(0, 255)
        self.tolerance.setValue(24)
        self.tolerance.setToolTip("Magic wand colour tolerance")
        self._labelled("Tolerance", self.tolerance)
        self.brush_size.valueChanged.connect(self.brush_size_changed)
        self.opacity.valueChanged.connect(self._on_opacity_value_changed)
        self.tolerance.valueChanged.connect(self.tolerance_changed)

    def _labelled(self, text: str, widget: QWidget) -> None:
        label = QLabel(f" {text} ", self)
        label.setBuddy(widget)
        self.addWidget(label)
        self.addWidget(widget)

    def _on_opacity_value_changed(self, value: int) -> None:
        self.opacity_changed.emit(value / 100.0)

    def set_brush_size(self, radius: int) -> None:
        """Show a size the canvas chose (wheel, keys) without echoing it back."""
        self.brush_size.blockSignals(True)
        self.brush_size.setValue(radius)
        self.brush_size.blockSignals(False)
