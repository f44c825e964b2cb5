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


def run_gui(project_path: str | Path | None = None, welcome: bool = False, smoke: bool = False) -> int:
    """The `segstudio gui` entry point: launch, then run the event loop until quit.

    With `smoke`, quit once the first events are handled instead, reporting what opened: the
    packaging checks start a built app this way and need it to end by itself."""
    window = launch(project_path, welcome)
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    if smoke:
        return _smoke_report(app, window, expect_project=welcome is False)
    code = event_loop(app)
    del window
    return code


def _smoke_report(app: QApplication, window: MainWindow, expect_project: bool) -> int:
    app.processEvents()
    project = window.workspace.project
    if project is None:
        print("segstudio smoke: window shown, no project open", flush=True)
        return 1 if expect_project else 0
    print(f"segstudio smoke: {project.root.name} open, {len(project.images)} images, "
          f"{len(project.classes)} classes", flush=True)
    window.close()
    return 0
