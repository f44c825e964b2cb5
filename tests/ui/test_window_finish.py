"""The window as a demanding user meets it day to day: each project opens as it was left
(class, tool, brush, opacity), feature docks stay off the welcome screen, and a saved window
that no longer fits the screen (a crash, a smaller monitor) comes back fitted to it."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QRect

import segstudio.ui.resources as resources
from segstudio.ui import dialogs
from segstudio.ui.main_window import MainWindow
from segstudio.ui.settings import AppSettings


@pytest.fixture
def new_window(qtbot, tmp_path: Path, monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.setattr(resources, "user_data_dir", lambda: tmp_path / "appdata")
    monkeypatch.setattr(dialogs, "show_error", lambda _p, title, text: None)

    def make() -> MainWindow:
        window = MainWindow(AppSettings())
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        return window

    return make


def test_a_project_reopens_with_the_class_tool_brush_and_opacity_left(new_window, make_project) -> None:  # noqa: ANN001
    project = make_project()
    window = new_window()
    assert window.open_project(project.root)
    assert window.canvas.active_class == 0  # a first visit: the first class
    window.classes_dock.set_active_class(2)
    window.canvas.set_tool("fill")
    window.tool_bar.brush_size.setValue(23)
    window.tool_bar.opacity.setValue(71)
    window.close()
    other = make_project(name="other")
    again = new_window()
    assert again.open_project(other.root)
    assert again.open_project(project.root)
    assert again.canvas.active_class == 2
    assert again.canvas.tool == "fill" and again.commands["tool_fill"].isChecked()
    assert again.canvas.brush_size == 23 and again.tool_bar.brush_size.value() == 23
    assert again.tool_bar.opacity.value() == 71


def test_feature_docks_hide_on_the_welcome_screen_and_come_back_with_a_project(new_window, make_project) -> None:  # noqa: ANN001
    window = new_window()
    dock = window.training.dock
    assert not dock.isVisible()  # nothing to train on the welcome screen
    project = make_project()
    assert window.open_project(project.root)
    dock.show()
    assert dock.isVisible()
    window.workspace.close_project()
    assert window.stack.currentWidget() is window.welcome
    assert not dock.isVisible()
    assert window.open_project(project.root)
    assert dock.isVisible()


@pytest.mark.parametrize("saved", [QRect(10, 10, 300, 200), QRect(5000, 4000, 900, 700)])
def test_a_saved_window_that_does_not_fit_the_screen_comes_back_on_it(new_window, saved: QRect) -> None:  # noqa: ANN001
    first = new_window()
    first.setGeometry(saved)
    AppSettings().save_window(first.saveGeometry(), first.saveState())
    first.hide()
    window = new_window()
    available = window.screen().availableGeometry()
    assert available.contains(window.frameGeometry().center())
    assert window.width() >= available.width() * 0.6 and window.height() >= available.height() * 0.6
    if saved.width() < available.width() * 0.6:  # shrunk to a corner: the first layout again
        assert window.width() >= available.width() * 0.9 - 1 and window.height() >= available.height() * 0.9 - 1


def test_a_saved_window_that_fits_is_kept(new_window) -> None:  # noqa: ANN001
    first = new_window()
    available = first.screen().availableGeometry()
    first.setGeometry(QRect(available.left() + 20, available.top() + 30, int(available.width() * 0.7),
                            int(available.height() * 0.7)))
    AppSettings().save_window(first.saveGeometry(), first.saveState())
    width, height = first.width(), first.height()
    window = new_window()
    assert (window.width(), window.height()) == (width, height)


def test_showing_training_shares_the_model_docks_tab_stack(new_window, make_project) -> None:  # noqa: ANN001
    window = new_window()
    assert window.open_project(make_project().root)
    model_dock = window.model.dock
    assert model_dock.isVisible()
    window.training.dock.show()  # what Ctrl+T and the Training menu do first
    assert window.training.dock in window.tabifiedDockWidgets(model_dock)
    # the class list keeps its rows: the right column did not gain a third dock
    assert window.classes_dock.height() >= window.classes_dock.height_for_rows(8) - 2


def test_right_drag_erasing_is_a_remembered_choice_in_the_edit_menu(new_window) -> None:  # noqa: ANN001
    window = new_window()
    action = window.commands["right_erases"]
    assert action.isChecked() and window.canvas.right_button_erases  # the common convention by default
    action.setChecked(False)
    assert not window.canvas.right_button_erases
    window.close()
    again = new_window()
    assert not again.commands["right_erases"].isChecked() and not again.canvas.right_button_erases
