"""Nothing clipped at 1280x800 or at 200% (issue 14): every visible label, button, check box
and group title of the real window fits the room it is drawn in, on the welcome screen, in the
first layout and with the Training and Model docks, and the window stays on the screen.

The scenes run in a child process (tests/ui/label_fit.py) because the screen's size and the
scale factor are fixed when a QApplication starts; this process's app has an 800x800 screen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from label_fit import clipped_texts  # tests/ui is on sys.path (rootdir-relative conftest)
from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QCheckBox, QGroupBox, QLabel, QPushButton, QVBoxLayout, QWidget

HERE = Path(__file__).resolve().parent
SCENES = ("welcome", "first_layout", "training_dock", "training_runs", "model_dock",
          "training_dock_full_screen", "model_dock_full_screen", "welcome_after_project")


def _run_scenes(tmp_path: Path, width: int, height: int, scale: float) -> dict:
    config = tmp_path / "screen.json"
    config.write_text(json.dumps({"windowFrameMargins": False, "screens": [
        {"name": "test", "x": 0, "y": 0, "width": width, "height": height, "logicalDpi": 96,
         "logicalBaseDpi": 96, "dpr": 1}]}))
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={config}", "QT_SCALE_FACTOR": str(scale),
           "SEGSTUDIO_THEME": "light", "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    result = subprocess.run([sys.executable, str(HERE / "label_fit.py")], capture_output=True, text=True,
                            env=env, timeout=600, cwd=HERE.parents[1])
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _assert_nothing_clipped(report: dict) -> None:
    assert report["errors"] == []
    assert set(report["scenes"]) == set(SCENES)
    clipped = {name: items for name, items in report["scenes"].items() if items}
    assert clipped == {}, json.dumps(clipped, indent=1)
    assert all(report["window_on_screen"].values()), report["window_geometry"]
    # the class list keeps eight rows, also with the Training dock beside the Model dock
    assert min(report["class_rows"].values()) >= 8, report["class_rows"]


def test_nothing_is_clipped_on_a_1280x800_screen(tmp_path: Path) -> None:
    report = _run_scenes(tmp_path, 1280, 800, 1.0)
    assert report["screen"] == [1280, 800] and report["device_pixel_ratio"] == 1.0
    _assert_nothing_clipped(report)


def test_nothing_is_clipped_at_200_percent_on_a_2560x1600_screen(tmp_path: Path) -> None:
    report = _run_scenes(tmp_path, 2560, 1600, 2.0)
    assert report["screen"] == [1280, 800] and report["device_pixel_ratio"] == 2.0  # logical pixels
    _assert_nothing_clipped(report)


# -- the rule itself, on widgets made to clip ------------------------------------------------------
def _shown(qtbot, widget: QWidget, width: int) -> QWidget:  # noqa: ANN001
    holder = QWidget()
    layout = QVBoxLayout(holder)
    layout.addWidget(widget)
    qtbot.addWidget(holder)
    holder.setFixedWidth(width)
    holder.show()
    qtbot.waitExposed(holder)
    return holder


def test_the_rule_finds_a_check_box_its_indicator_leaves_too_little_room(qtbot) -> None:  # noqa: ANN001
    text = "Use masks saved during the run from its next epoch"
    box = QCheckBox(text)
    box.setMinimumWidth(10)
    box.setSizePolicy(box.sizePolicy().horizontalPolicy().Ignored, box.sizePolicy().verticalPolicy())
    needed = box.fontMetrics().horizontalAdvance(text)
    holder = _shown(qtbot, box, needed + 30)  # the text alone would fit; not with the indicator
    found = clipped_texts(holder)
    assert [item.text for item in found] == [text]
    assert found[0].needed == needed and found[0].room < needed
    holder.setFixedWidth(needed + 80)
    qtbot.wait(20)
    assert clipped_texts(holder) == []


def test_the_rule_counts_a_buttons_icon_and_skips_hidden_and_elided_text(qtbot) -> None:  # noqa: ANN001
    text = "Predict every listed image"
    plain = QPushButton(text)
    pixmap = QPixmap(32, 32)
    pixmap.fill(Qt.GlobalColor.red)
    with_icon = QPushButton(QIcon(pixmap), text)
    with_icon.setIconSize(pixmap.size())
    width = plain.sizeHint().width()  # room for the text and the style's margins, not the icon
    for button in (plain, with_icon):
        button.setFixedWidth(width)
    elided = QLabel(plain.fontMetrics().elidedText(text * 3, Qt.TextElideMode.ElideMiddle, 150))
    hidden = QLabel(text * 5)
    row = QWidget()
    row_layout = QVBoxLayout(row)
    for widget in (plain, with_icon, elided, hidden):
        row_layout.addWidget(widget, 0, Qt.AlignmentFlag.AlignLeft)
    group = QGroupBox("Accept into the mask (one undo step each)")
    QVBoxLayout(group).addWidget(row)
    holder = _shown(qtbot, group, 600)
    hidden.hide()
    qtbot.wait(20)
    found = clipped_texts(holder)
    assert [item.widget.split(" <")[0] for item in found] == ["QPushButton"] and found[0].text == text
    assert found[0].room < found[0].needed
    holder.setFixedWidth(160)  # now the group's title runs past its frame
    qtbot.wait(20)
    assert "Accept into the mask (one undo step each)" in {item.text for item in clipped_texts(holder)}


@pytest.mark.parametrize("exempt", [True, False])
def test_an_exempt_widget_is_left_out(qtbot, monkeypatch, exempt: bool) -> None:  # noqa: ANN001
    import label_fit

    label = QLabel("a text much too long for the forty pixels it is given here")
    label.setObjectName("deliberately_cut")
    label.setMinimumWidth(10)
    label.setSizePolicy(label.sizePolicy().horizontalPolicy().Ignored, label.sizePolicy().verticalPolicy())
    if exempt:
        monkeypatch.setitem(label_fit.EXEMPT, "deliberately_cut", "a test of the exemption")
    holder = _shown(qtbot, label, 60)
    assert (clipped_texts(holder) == []) is exempt


def test_two_curves_go_side_by_side_when_too_short_to_stack(qtbot) -> None:  # noqa: ANN001
    from PySide6.QtCore import QSize

    from segstudio.ui.training.plots import PLOT_MIN_HEIGHT, CurvePair, make_plot

    pair = CurvePair(make_plot("Loss", "loss", log_y=True), make_plot("Validation", "score", (0.0, 1.0)))
    qtbot.addWidget(pair)
    assert pair.minimumSizeHint().height() == PLOT_MIN_HEIGHT  # one plot's height, not two
    pair.resize(QSize(480, 2 * PLOT_MIN_HEIGHT + 40))
    pair.show()
    qtbot.waitExposed(pair)
    assert pair.splitter.orientation() == Qt.Orientation.Vertical
    pair.resize(QSize(480, PLOT_MIN_HEIGHT + 10))
    qtbot.wait(20)
    assert pair.splitter.orientation() == Qt.Orientation.Horizontal
    assert all(plot.height() >= PLOT_MIN_HEIGHT for plot in (pair.splitter.widget(0), pair.splitter.widget(1)))
    pair.resize(QSize(480, 2 * PLOT_MIN_HEIGHT + 40))
    qtbot.wait(20)
    assert pair.splitter.orientation() == Qt.Orientation.Vertical
