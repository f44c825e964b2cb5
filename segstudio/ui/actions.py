"""Every user action of the main window, with its menu, shortcut and tooltip, in one table.

The menus, the tool bar and the F1 shortcut sheet are all built from this table, so an
action cannot exist without a menu entry and the sheet can never go stale.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu, QMenuBar, QWidget

from segstudio.ui.theme import apply_icons

StandardKey = QKeySequence.StandardKey


@dataclass(frozen=True)
class ActionSpec:
    """One action: key name, menu, label, shortcuts (first is shown), and what it does."""

    name: str
    menu: str
    text: str
    shortcuts: tuple[str | StandardKey, ...] = ()
    tip: str = ""
    checkable: bool = False
    separator_before: bool = False


TOOLS = (
    ("brush", "&Brush", "B", "Paint the active class"),
    ("eraser", "&Eraser", "E", "Paint unlabelled"),
    ("fill", "&Fill", "F", "Flood-fill a connected area"),
    ("polygon", "&Polygon", "P", "Click corners; double-click or Enter closes"),
    ("lasso", "&Lasso", "L", "Drag a free-hand outline to fill"),
    ("box_select", "Bo&x", "R", "Drag a box around an object: a smart cut (GrabCut) fills it"),
    ("scribble", "&Scribble select", "S", "Scribble inside and outside for a smart cut"),
    ("assist", "&Assist (click or box)", "A", "Click an object (right click: not this) or drag a box; Enter accepts, Tab cycles"),
    ("wand", "Magic &wand", "W", "Select similar colours"),
    ("picker", "Class p&icker", "I", "Pick the class under the cursor"),
    ("pan", "P&an", "H", "Drag to move the view"),
)

# Keys a tool reads itself (no QAction carries them); the F1 sheet lists them as rows too.
TOOL_KEY_ROWS = (
    ("Assist tool", "Accept the proposal", "Enter, double click"),
    ("Assist tool", "Next alternative mask", "Tab"),
    ("Assist tool", "Remove the last point", "Backspace"),
    ("Assist tool", "Drop the proposal", "Esc"),
    ("Assist tool", "Not this (negative point)", "Right click, Alt+click"),
)

# After the tools in the Tools menu, behind a separator.
TOOLS_MENU_TAIL = (
    ActionSpec("assist_models", "&Tools", "Assist &models...", (),
               "Download, add, remove and choose the models the Assist tool uses",
               separator_before=True),
)

# What the tool bar shows (the menus keep the full names): it must fit 1024-pixel screens.
SHORT_NAMES = {"scribble": "Scribble", "assist": "Assist", "wand": "Wand", "picker": "Picker"}

_SPECS: tuple[ActionSpec, ...] = (
    # File
    ActionSpec("open_project", "&File", "&Open project...", (StandardKey.Open,), "Open a project folder"),
    ActionSpec("new_project", "&File", "&New project from image folder...", (StandardKey.New,),
               "Create a project from a folder of images"),
    ActionSpec("import_dataset", "&File", "&Import dataset...", ("Ctrl+I",),
               "Import images and masks (folders, VOC, COCO, Cityscapes, LabelMe)"),
    ActionSpec("open_sample", "&File", "Open &sample project", (), "Open the built-in CamVid sample"),
    ActionSpec("save", "&File", "&Save mask", (StandardKey.Save,), "Save the open mask now",
               separator_before=True),
    # Explicit keys: some platform themes map Close to Ctrl+F4 and Quit to nothing.
    ActionSpec("close_project", "&File", "&Close project", ("Ctrl+W",), "Save and close"),
    ActionSpec("quit", "&File", "&Quit", ("Ctrl+Q",), "Save and quit", separator_before=True),
    # Edit
    ActionSpec("undo", "&Edit", "&Undo", (StandardKey.Undo,), "Undo the last edit of this image"),
    ActionSpec("redo", "&Edit", "&Redo", ("Ctrl+Shift+Z", "Ctrl+Y"), "Redo"),
    ActionSpec("brush_bigger", "&Edit", "Brush &larger", ("]",), "Grow the brush",
               separator_before=True),
    ActionSpec("brush_smaller", "&Edit", "Brush &smaller", ("[",), "Shrink the brush"),
    ActionSpec("protect", "&Edit", "&Protect labelled pixels", ("X",),
               "Paint only over unlabelled pixels", checkable=True),
    ActionSpec("right_erases", "&Edit", "Right drag &erases", (),
               "With the brush, a right-button drag erases", checkable=True),
    # View
    ActionSpec("zoom_in", "&View", "Zoom &in", (StandardKey.ZoomIn, "Ctrl+="), "Zoom in"),
    ActionSpec("zoom_out", "&View", "Zoom &out", (StandardKey.ZoomOut,), "Zoom out"),
    ActionSpec("zoom_fit", "&View", "Zoom to &fit", ("Ctrl+0",), "Fit the image in the window"),
    ActionSpec("zoom_100", "&View", "&Actual pixels", ("Ctrl+1",), "Show at 100%"),
    ActionSpec("toggle_overlay", "&View", "Show &mask", ("O",), "Show or hide the mask overlay",
               checkable=True, separator_before=True),
    ActionSpec("outline_mode", "&View", "Mask &outlines only", ("Shift+O",),
               "Draw class borders instead of filled areas", checkable=True),
    # Image
    ActionSpec("next_image", "&Image", "&Next image", ("PgDown", "Alt+Right"), "Go to the next image"),
    ActionSpec("prev_image", "&Image", "&Previous image", ("PgUp", "Alt+Left"), "Go to the previous image"),
    ActionSpec("next_unlabeled", "&Image", "Next &unlabelled image", ("N",),
               "Go to the next image nobody has labelled"),
    ActionSpec("mark_labeled", "&Image", "Mark &done (labelled)", ("Ctrl+Return",),
               "Save and mark this image labelled", separator_before=True),
    ActionSpec("mark_reviewed", "&Image", "Mark &reviewed", ("Ctrl+Shift+Return",),
               "Save and mark this image reviewed"),
    # Classes
    ActionSpec("add_class", "&Classes", "&Add class...", ("Ctrl+Shift+A",), "Add a class"),
    # Help
    ActionSpec("shortcuts", "&Help", "&Keyboard shortcuts", ("F1",), "Show every shortcut"),
    ActionSpec("about", "&Help", "&About segstudio", (), "Version and licence"),
)

MENU_ORDER = ("&File", "&Edit", "&View", "&Tools", "&Image", "&Classes", "&Help")
CLASS_KEYS = 9


class Actions:
    """Creates and owns the QActions; `menus()` builds the menu bar from the same table."""

    def __init__(self, parent: QWidget) -> None:
        self._parent = parent
        self._actions: dict[str, QAction] = {}
        self._menus: dict[str, list[tuple[QAction, bool]]] = {name: [] for name in MENU_ORDER}
        for spec in _SPECS:
            self._add(spec)
        self.tool_group = QActionGroup(parent)
        self.tool_group.setExclusive(True)
        for index, (name, text, key, tip) in enumerate(TOOLS):
            action = self._add(ActionSpec(f"tool_{name}", "&Tools", text, (key,), tip, checkable=True))
            action.setData(name)
            action.setIconText(SHORT_NAMES.get(name, text.replace("&", "")))
            self.tool_group.addAction(action)
            if index == 0:
                action.setChecked(True)
        for spec in TOOLS_MENU_TAIL:
            self._add(spec)
        for number in range(1, CLASS_KEYS + 1):
            action = self._add(ActionSpec(f"class_{number}", "&Classes", f"Select class {number}",
                                          (str(number),), f"Make the class in row {number} active",
                                          separator_before=number == 1))
            action.setData(number - 1)
        self["toggle_overlay"].setChecked(True)
        self["protect"].setIconText("Protect")
        apply_icons(self._actions.values())

    def _add(self, spec: ActionSpec) -> QAction:
        action = QAction(spec.text, self._parent)
        action.setObjectName(f"action_{spec.name}")
        action.setProperty("base_text", spec.text)  # the undo text changes; the sheet does not
        keys = [QKeySequence(k) for k in spec.shortcuts]
        if keys:
            action.setShortcuts(keys)
        # The tooltip names the action and its key, then says what it does: an icon-only
        # tool button is otherwise a riddle.
        title = spec.text.replace("&", "").removesuffix("...")
        if keys:
            title = f"{title} ({keys[0].toString(QKeySequence.SequenceFormat.NativeText)})"
        action.setToolTip(f"<b>{title}</b><br>{spec.tip}" if spec.tip else f"<b>{title}</b>")
        action.setStatusTip(spec.tip)
        action.setCheckable(spec.checkable)
        self._parent.addAction(action)  # shortcuts work even while a menu is hidden
        self._actions[spec.name] = action
        self._menus[spec.menu].append((action, spec.separator_before))
        return action

    def __getitem__(self, name: str) -> QAction:
        return self._actions[name]

    def __iter__(self) -> Iterator[tuple[str, QAction]]:
        return iter(self._actions.items())

    def tool_actions(self) -> list[QAction]:
        return [self._actions[f"tool_{name}"] for name, *_ in TOOLS]

    def class_actions(self) -> list[QAction]:
        return [self._actions[f"class_{n}"] for n in range(1, CLASS_KEYS + 1)]

    def build_menus(self, bar: QMenuBar) -> None:
        for title in MENU_ORDER:
            menu = bar.addMenu(title)
            menu.setObjectName("menu_" + title.replace("&", "").lower())
            for action, separator in self._menus[title]:
                if separator:
                    menu.addSeparator()
                menu.addAction(action)

    def shortcut_rows(self, bar: QMenuBar | None = None) -> list[tuple[str, str, str]]:
        """(menu, action, shortcuts) for the shortcut sheet, in menu order, then the keys
        tools read themselves (TOOL_KEY_ROWS).

        With the menu bar, every menu is listed, including those other parts installed.
        """
        if bar is None:
            rows = [row for title in MENU_ORDER
                    for row in _rows(title, [action for action, _ in self._menus[title]])]
            return [*rows, *TOOL_KEY_ROWS]
        rows = []
        for top in bar.actions():
            if top.menu() is not None:
                rows.extend(_rows(top.text(), _walk(top.menu())))
        return [*rows, *TOOL_KEY_ROWS]


def _walk(menu: QMenu) -> list[QAction]:
    found = []
    for action in menu.actions():
        if action.menu() is not None:
            found.extend(_walk(action.menu()))
        elif not action.isSeparator():
            found.append(action)
    return found


def _rows(title: str, actions: list[QAction]) -> list[tuple[str, str, str]]:
    rows = []
    for action in actions:
        keys = ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts())
        if keys:
            text = str(action.property("base_text") or action.text())
            rows.append((title.replace("&", ""), text.replace("&", ""), keys))
    return rows
