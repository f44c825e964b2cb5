"""QApplication setup and the GUI entry point used by `segstudio gui`."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

from segstudio import __version__
from segstudio.ui.resources import app_icon, style_sheet
from segstudio.ui.settings import APPLICATION, ORGANIZATION


def create_app(argv: list[str] | None = None) -> QApplication:
    """The QApplication (reused if one exists), named so QSettings and data paths agree."""
    app = QApplication.instance()
    if app is None:
        QApplication.setOrganizationName(ORGANIZATION)
        QApplication.setApplicationName(APPLICATION)
        QApplication.setApplicationVersion(__version__)
        QApplication.setDesktopFileName("segstudio")
        app = QApplication(argv if argv is not None else sys.argv[:1])
        app.setWindowIcon(app_icon())
        sheet = style_sheet()
        if sheet:
            app.setStyleSheet(sheet)
    assert isinstance(app, QApplication)
    return app


def run_gui(project_path: str | Path | None = None, welcome: bool = False) -> int:
    """Open the window on `project_path`, or on the sample project (or the welcome screen)."""
    from segstudio.ui.main_window import MainWindow

    app = create_app()
    window = MainWindow()
    window.show()
    if project_path is not None:
        window.workspace.open_project(Path(project_path))
    elif not welcome:
        window.workspace.open_sample()
    return int(app.exec())
