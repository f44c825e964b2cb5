"""QApplication setup and the GUI entry point used by `segstudio gui`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QApplication

from segstudio import __version__
from segstudio.ui.resources import app_icon, style_sheet
from segstudio.ui.settings import APPLICATION, ORGANIZATION
from segstudio.ui.theme import apply_theme, follow_system_theme

if TYPE_CHECKING:
    from segstudio.ui.main_window import MainWindow


def create_app(argv: list[str] | None = None) -> QApplication:
    """The QApplication (reused if one exists), named so QSettings and data paths agree."""
    app = QApplication.instance()
    if app is None:
        QApplication.setOrganizationName(ORGANIZATION)
        QApplication.setApplicationName(APPLICATION)
        QApplication.setApplicationVersion(__version__)
        QApplication.setDesktopFileName("segstudio")
        app = QApplication(argv if argv is not None else sys.argv[:1])
        apply_theme(app)
        follow_system_theme(app)
        app.setWindowIcon(app_icon())
        sheet = style_sheet()
        if sheet:
            app.setStyleSheet(sheet)
    assert isinstance(app, QApplication)
    return app


def launch(project_path: str | Path | None = None, welcome: bool = False) -> MainWindow:
    """Show the window on `project_path`, or on the sample project (or the welcome screen)."""
    from segstudio.ui.main_window import MainWindow

    create_app()
    window = MainWindow()
    window.show()
    if project_path is not None:
        window.workspace.open_project(Path(project_path))
    elif not welcome:
        window.workspace.open_sample()
    return window


def event_loop(app: QApplication) -> int:
    return int(app.exec())


def run_gui(project_path: str | Path | None = None, welcome: bool = False) -> int:
    """The `segstudio gui` entry point: launch, then run the event loop until quit."""
    window = launch(project_path, welcome)
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    code = event_loop(app)
    del window
    return code
