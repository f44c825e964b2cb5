"""The tool bar: tool buttons, brush size, protect toggle, overlay opacity, wand tolerance,
and which assist the Assist tool runs (shown while that tool is active)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QComboBox, QLabel, QSlider, QSpinBox, QToolBar, QWidget

from segstudio.ui.actions import Actions

MAX_BRUSH = 500
# The everyday actions shown before the tools (each has an icon; the menus have them all).
FILE_ACTIONS = ("save", "undo", "redo", "zoom_fit")
# What the Assist tool runs: (mode, label); modes as segstudio.ui.annotate.assist_tool names them.
ASSIST_CHOICES = (("sam", "SAM"), ("project", "Project model"))


class ToolBar(QToolBar):
    """Widgets that set tool parameters; it emits, the window forwards to the canvas."""

    brush_size_changed = Signal(int)
    opacity_changed = Signal(float)
    tolerance_changed = Signal(int)
    assist_mode_changed = Signal(str)  # 'sam' or 'project'

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
        self.assist_choice = QComboBox(self)
        self.assist_choice.setObjectName("assist_choice")
        for mode, label in ASSIST_CHOICES:
            self.assist_choice.addItem(label, mode)
        self.assist_choice.setToolTip("<b>Assist with</b><br>SAM: a Segment-Anything-family model "
                                      "(clicks or a box); Project model: the project's active model (a box)")
        # no label: the bar must still fit a 1024-pixel screen while the choice shows
        self._assist_actions = (self.addWidget(self.assist_choice),)
        self.set_assist_choice_visible(False)
        self.assist_choice.currentIndexChanged.connect(self._on_assist_choice_index_changed)
        self.brush_size.valueChanged.connect(self.brush_size_changed)
        self.opacity.valueChanged.connect(self._on_opacity_value_changed)
        self.tolerance.valueChanged.connect(self.tolerance_changed)

    def _labelled(self, text: str, widget: QWidget) -> None:
        label = QLabel(f" {text} ", self)
        label.setBuddy(widget)
        self.addWidget(label)
        self.addWidget(widget)

    def _on_assist_choice_index_changed(self, index: int) -> None:
        self.assist_mode_changed.emit(str(self.assist_choice.itemData(index)))

    @property
    def assist_mode(self) -> str:
        return str(self.assist_choice.currentData())

    def set_assist_mode(self, mode: str) -> None:
        index = self.assist_choice.findData(mode)
        if index >= 0:
            self.assist_choice.setCurrentIndex(index)

    def set_assist_choice_visible(self, on: bool) -> None:
        """The choice only matters while the Assist tool is active; hidden, the bar stays short."""
        for action in self._assist_actions:
            action.setVisible(on)

    @property
    def assist_choice_visible(self) -> bool:
        return self._assist_actions[0].isVisible()

    def set_project_model_available(self, on: bool) -> None:
        """'Project model' can be picked only while the project has an active model."""
        item = self.assist_choice.model().item(1)  # type: ignore[attr-defined]
        item.setEnabled(on)
        if not on and self.assist_mode == "project":
            self.set_assist_mode("sam")

    def _on_opacity_value_changed(self, value: int) -> None:
        self.opacity_changed.emit(value / 100.0)

    def set_brush_size(self, radius: int) -> None:
        """Show a size the canvas chose (wheel, keys) without echoing it back."""
        self.brush_size.blockSignals(True)
        self.brush_size.setValue(radius)
        self.brush_size.blockSignals(False)
