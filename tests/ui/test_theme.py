"""The look: every tool and main action has an icon and a tooltip naming it and its key;
light and dark palettes, with icons tinted to stay readable on each."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QWidget

from segstudio.ui import theme
from segstudio.ui.actions import TOOLS, Actions
from segstudio.ui.annotate.tool_bar import FILE_ACTIONS, ToolBar


def _mean_icon_colour(icon, size: int = 24) -> tuple[float, float, float, float]:  # noqa: ANN001
    image = icon.pixmap(size, size).toImage()
    opaque = [image.pixelColor(x, y) for x in range(size) for y in range(size) if image.pixelColor(x, y).alpha() > 128]
    assert opaque, "the icon draws nothing"
    n = len(opaque)
    return (sum(c.red() for c in opaque) / n, sum(c.green() for c in opaque) / n,
            sum(c.blue() for c in opaque) / n, n)


def test_every_tool_and_main_action_has_an_icon_and_a_named_tooltip(qtbot) -> None:  # noqa: ANN001
    pytest.importorskip("qtawesome")
    parent = QWidget()
    qtbot.addWidget(parent)
    actions = Actions(parent)
    bar = ToolBar(actions, parent)
    for name, text, key, _tip in TOOLS:
        action = actions[f"tool_{name}"]
        assert not action.icon().isNull(), name
        assert text.replace("&", "") in action.toolTip() and f"({key})" in action.toolTip()
    for name in FILE_ACTIONS:
        assert not actions[name].icon().isNull(), name
        assert actions[name] in bar.actions()
    assert "(Ctrl+S)" in actions["save"].toolTip()


@pytest.mark.parametrize("which", ["light", "dark"])
def test_palettes_and_icon_tint_follow_the_theme(qtbot, which: str) -> None:  # noqa: ANN001
    pytest.importorskip("qtawesome")
    app = QApplication.instance()
    old_palette, old_style = app.palette(), app.style().name()
    try:
        assert theme.apply_theme(app, which) == which
        assert theme.current_theme() == which
        window = app.palette().color(QPalette.ColorRole.Window)
        assert (window.lightness() < 80) == (which == "dark")
        red, green, blue, _ = _mean_icon_colour(theme.icon(theme.ACTION_ICONS["tool_brush"]))
        icon_lightness = (red + green + blue) / 3
        # the icon stands out from the window: dark on light, light on dark
        assert abs(icon_lightness - window.lightness()) > 100
    finally:
        app.setPalette(old_palette)
        app.setStyle(old_style)
        app.setProperty("segstudio_theme", None)


def test_theme_can_be_forced_for_screenshots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(theme.THEME_ENV, "dark")
    assert theme.system_theme() == "dark"
    monkeypatch.setenv(theme.THEME_ENV, "light")
    assert theme.system_theme() == "light"
