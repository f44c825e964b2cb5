"""Does every visible text fit? The rule behind "nothing clipped at 1280x800 or at 200%".

`clipped_texts(window)` walks the visible labels, buttons, check boxes, radio buttons and group
box titles under a window and reports each whose text is wider than the room it is drawn in:
the widget's contents (less the icon, check indicator or frame the style draws there), cut
further by any ancestor that hides part of the widget (a dock narrower than its contents).

Run as a script it opens the real app on the sample project in a fresh QApplication and checks
the scenes a new user meets (first layout, the window at 1280x800, the welcome screen, the
Training and Model docks), printing one JSON object. The screen and scale factor come from
the environment (QT_QPA_PLATFORM=offscreen:configfile=..., QT_SCALE_FACTOR), which is why
tests/ui/test_label_fit.py runs it in a child process.

    QT_QPA_PLATFORM=offscreen .venv/bin/python tests/ui/label_fit.py [--shots DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from PySide6 import QtGui
from PySide6.QtCore import QEventLoop, QRect, Qt
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QCheckBox,
    QGroupBox,
    QLabel,
    QPushButton,
    QRadioButton,
    QStyle,
    QStyleOptionButton,
    QStyleOptionGroupBox,
    QToolButton,
    QWidget,
)

# Widgets whose text is allowed to run past their width, by objectName, with the reason.
# A label that elides on purpose sets already-elided text (which fits) and so needs no entry.
EXEMPT: dict[str, str] = {}

ICON_TEXT_SPACING = 4  # what QPushButton/QToolButton put between an icon and the text


@dataclass(frozen=True)
class Clipped:
    """One text that does not fit: where it is, what it says and by how much it overflows."""

    widget: str  # class and object name, with the nearest named ancestors
    text: str
    needed: int  # horizontal advance of the text, logical pixels
    room: int  # width it is drawn in, after icons, indicators and clipping ancestors

    def __str__(self) -> str:
        return f"{self.widget}: {self.text!r} needs {self.needed}px, has {self.room}px"


def _plain(text: str) -> str:
    """The text as drawn: rich text reduced to plain, mnemonic ampersands removed."""
    if QtGui.Qt.mightBeRichText(text):  # a QtGui function, on QtGui's Qt namespace
        document = QTextDocument()
        document.setHtml(text)
        return document.toPlainText()
    return re.sub(r"&(.)", r"\1", text)


def _name(widget: QWidget) -> str:
    parts: list[str] = []
    node: QWidget | None = widget
    while node is not None and len(parts) < 4:
        label = type(node).__name__ + (f"#{node.objectName()}" if node.objectName() else "")
        if node is widget or node.objectName():
            parts.append(label)
        node = node.parentWidget()
    return " < ".join(parts)


def _visible_span(widget: QWidget, left: int, right: int) -> tuple[int, int]:
    """[left, right) in the widget's coordinates, cut to what its ancestors show."""
    node = widget
    offset = 0
    while not node.isWindow():
        parent = node.parentWidget()
        if parent is None:
            break
        offset += node.x()
        left = max(left, -offset)
        right = min(right, parent.width() - offset)
        node = parent
    return left, right


def _on_screen(widget: QWidget) -> bool:
    """False for a widget no ancestor lets show at all: the page behind a tab, a dock tabbed
    away (Qt keeps those 'visible' but gives them no room)."""
    node = widget
    while not node.isWindow() and node.parentWidget() is not None:
        parent = node.parentWidget()
        if parent.width() <= 0 or parent.height() <= 0:
            return False
        node = parent
    left, right = _visible_span(widget, 0, widget.width())
    return right > left


def _exempt(widget: QWidget) -> bool:
    node: QWidget | None = widget
    while node is not None:
        if node.objectName() in EXEMPT:
            return True
        node = node.parentWidget()
    return False


def _label_room(label: QLabel) -> QRect | None:
    if label.pixmap() is not None and not label.pixmap().isNull():
        return None
    rect = label.contentsRect()
    margin = label.margin()
    return rect.adjusted(margin, margin, -margin, -margin)


def _button_room(button: QAbstractButton) -> QRect | None:
    """The rectangle the style gives the button's text (icon and indicator taken off)."""
    style = button.style()
    if isinstance(button, QToolButton):
        if button.toolButtonStyle() == Qt.ToolButtonStyle.ToolButtonIconOnly and not button.icon().isNull():
            return None
        rect = button.rect()
        frame = style.pixelMetric(QStyle.PixelMetric.PM_DefaultFrameWidth, None, button)
        rect = rect.adjusted(frame, frame, -frame, -frame)
        if button.popupMode() == QToolButton.ToolButtonPopupMode.MenuButtonPopup:
            rect.setRight(rect.right() - style.pixelMetric(QStyle.PixelMetric.PM_MenuButtonIndicator, None, button))
        if (button.toolButtonStyle() == Qt.ToolButtonStyle.ToolButtonTextBesideIcon
                and not button.icon().isNull()):
            rect.setLeft(rect.left() + button.iconSize().width() + ICON_TEXT_SPACING)
        return rect
    option = QStyleOptionButton()
    option.initFrom(button)
    option.text = button.text()
    option.icon = button.icon()
    option.iconSize = button.iconSize()
    if isinstance(button, QCheckBox):
        rect = style.subElementRect(QStyle.SubElement.SE_CheckBoxContents, option, button)
    elif isinstance(button, QRadioButton):
        rect = style.subElementRect(QStyle.SubElement.SE_RadioButtonContents, option, button)
    elif isinstance(button, QPushButton):
        rect = style.subElementRect(QStyle.SubElement.SE_PushButtonContents, option, button)
        if button.menu() is not None:
            rect.setRight(rect.right() - style.pixelMetric(QStyle.PixelMetric.PM_MenuButtonIndicator, option, button))
    else:
        rect = button.rect()
    if not button.icon().isNull():
        rect.setLeft(rect.left() + button.iconSize().width() + ICON_TEXT_SPACING)
    return rect


def _check(widget: QWidget, text: str, room: QRect, alignment: Qt.AlignmentFlag, wrap: bool) -> list[Clipped]:
    metrics = widget.fontMetrics()
    lines = [line for line in _plain(text).splitlines() if line.strip()]
    if wrap:  # a wrapped text only overflows through a word longer than its line
        lines = [word for line in lines for word in line.split()]
    out: list[Clipped] = []
    for line in lines:
        needed = metrics.horizontalAdvance(line)
        if alignment & Qt.AlignmentFlag.AlignRight:
            left = room.right() + 1 - needed
        elif alignment & Qt.AlignmentFlag.AlignHCenter:
            left = room.left() + (room.width() - needed) // 2
        else:
            left = room.left()
        shown_left, shown_right = _visible_span(widget, room.left(), room.right() + 1)
        # one pixel of slack: advances are rounded, and the last glyph's bearing is empty
        if left < shown_left - 1 or left + needed > shown_right + 1:
            out.append(Clipped(_name(widget), line, needed, max(0, shown_right - shown_left)))
    return out


def clipped_texts(window: QWidget) -> list[Clipped]:
    """Every visible text under `window` that runs past the room it is drawn in."""
    found: list[Clipped] = []
    for widget in [window, *window.findChildren(QWidget)]:
        if not widget.isVisible() or widget.width() <= 0 or _exempt(widget) or not _on_screen(widget):
            continue
        if isinstance(widget, QLabel):
            room = _label_room(widget)
            if room is not None and widget.text():
                found += _check(widget, widget.text(), room, widget.alignment(), widget.wordWrap())
        elif isinstance(widget, QAbstractButton):
            room = _button_room(widget)
            if room is not None and widget.text():
                alignment = (Qt.AlignmentFlag.AlignHCenter if isinstance(widget, QPushButton | QToolButton)
                             else Qt.AlignmentFlag.AlignLeft)
                found += _check(widget, widget.text(), room, alignment, wrap=False)
        elif isinstance(widget, QGroupBox) and widget.title():
            option = QStyleOptionGroupBox()
            widget.initStyleOption(option)
            room = widget.rect()
            indicator = (widget.style().pixelMetric(QStyle.PixelMetric.PM_IndicatorWidth, option, widget)
                         + ICON_TEXT_SPACING if widget.isCheckable() else 0)
            room = room.adjusted(indicator + 8, 0, -8, 0)  # the title sits inside the frame's corners
            found += _check(widget, widget.title(), room, Qt.AlignmentFlag.AlignLeft, wrap=False)
    return found


# -- the scenes, run in a fresh QApplication ------------------------------------------------------
def _settle(app: QApplication, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)


def _wait(app: QApplication, done, timeout_s: float) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            return False
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.02)
    return True


def run_scenes(scratch: Path, shots: Path | None, probe_timeout_s: float) -> dict[str, object]:
    from PySide6.QtCore import QSettings

    from segstudio.ui import dialogs, resources
    from segstudio.ui.app import create_app

    (scratch / "settings").mkdir(parents=True, exist_ok=True)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(scratch / "settings"))
    resources.user_data_dir = lambda: scratch / "appdata"
    errors: list[str] = []
    dialogs.show_error = lambda _parent, title, text: errors.append(f"{title}: {text}")
    app = create_app(["segstudio-label-fit"])
    from segstudio.ui.main_window import MainWindow

    window = MainWindow()
    window.show()
    _settle(app, 0.5)
    screen = window.screen()
    report: dict[str, object] = {
        "screen": [screen.geometry().width(), screen.geometry().height()],
        "device_pixel_ratio": screen.devicePixelRatio(),
        "scenes": {},
    }
    scenes: dict[str, list[dict[str, object]]] = report["scenes"]  # type: ignore[assignment]

    fits: dict[str, bool] = {}
    class_rows: dict[str, float] = {}
    report["window_on_screen"] = fits
    report["class_rows"] = class_rows
    sizes: dict[str, list[int]] = {}
    report["window_geometry"] = sizes

    def scene(name: str) -> None:
        _settle(app, 0.6)
        scenes[name] = [asdict(item) for item in clipped_texts(window)]
        # a window grown past the screen hides its own bottom (status bar, dock buttons)
        geometry = window.geometry()
        fits[name] = screen.availableGeometry().contains(geometry)
        sizes[name] = [geometry.x(), geometry.y(), geometry.width(), geometry.height()]
        rows = window.classes_dock.list
        if rows.isVisible() and rows.count():
            class_rows[name] = round(rows.viewport().height() / rows.sizeHintForRow(0), 1)
        if shots is not None:
            window.grab().save(str(shots / f"{name}.png"))

    scene("welcome")
    if not window.workspace.open_sample():
        raise SystemExit(f"the sample project did not open: {errors}")
    _settle(app, 1.5)
    report["first_layout_size"] = [window.width(), window.height()]
    scene("first_layout")
    hook = window.training
    controller = hook.show()
    report["probe_answered"] = _wait(app, lambda: controller.probe.report is not None, probe_timeout_s)
    hook.dock.raise_()
    scene("training_dock")
    hook.dock.tabs.setCurrentIndex(1)
    scene("training_runs")
    hook.dock.tabs.setCurrentIndex(0)
    window.model.dock.raise_()
    scene("model_dock")
    window.setGeometry(screen.availableGeometry())  # as big as the screen, as a maximised one is
    hook.dock.raise_()
    scene("training_dock_full_screen")
    window.model.dock.raise_()
    scene("model_dock_full_screen")
    window.workspace.close_project()
    scene("welcome_after_project")
    report["errors"] = errors
    window.close()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=Path, help="also save a picture of each scene here")
    parser.add_argument("--probe-timeout", type=float, default=180.0,
                        help="seconds to wait for the Training dock's device probe")
    args = parser.parse_args(argv)
    if args.shots is not None:
        args.shots.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="segstudio-label-fit-") as scratch:
        report = run_scenes(Path(scratch), args.shots, args.probe_timeout)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
