"""Shared Qt fixtures for UI tests: an offscreen QApplication and isolated QSettings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

# Must be set before pytest-qt creates the QApplication: tests never open real windows.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import QCoreApplication, QSettings  # noqa: E402

CAMVID = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "camvid"


@pytest.fixture(scope="session")
def qapp_args() -> list[str]:
    return ["segstudio-tests", "-platform", "offscreen"]


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, qapp) -> Iterator[Path]:  # noqa: ANN001
    """Every test gets its own QSettings folder, so no test reads or writes the user's."""
    folder = tmp_path / "qsettings"
    folder.mkdir()
    QCoreApplication.setOrganizationName("segstudio-tests")
    QCoreApplication.setApplicationName("segstudio-tests")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
        QSettings.setPath(QSettings.Format.IniFormat, scope, str(folder))
    yield folder


@pytest.fixture
def camvid_root() -> Path:
    """The CamVid copy under ../shared/data (skip when this checkout has none)."""
    if not (CAMVID / "classes.json").is_file():
        pytest.skip(f"CamVid data not found at {CAMVID}; tests using real data need ../shared/data/camvid")
    return CAMVID


@pytest.fixture
def canvas(qtbot):  # noqa: ANN001, ANN201
    """A bare Canvas, 420 x 420, shown offscreen."""
    from segstudio.ui.annotate.canvas import Canvas

    widget = Canvas()
    widget.resize(420, 420)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


# -- main window / session fixtures (segstudio/ui outside the canvas) -------------------------
@pytest.fixture
def make_project(tmp_path: Path):  # noqa: ANN201
    """A factory for small generated projects: textured images, some with saved masks."""
    import numpy as np
    from PIL import Image

    from segstudio.core.classes import ClassDef, ClassTable
    from segstudio.core.project import Project

    def make(count: int = 5, labeled: int = 2, size: tuple[int, int] = (64, 48),
             name: str = "proj") -> Project:
        classes = ClassTable((
            ClassDef(0, "road", (128, 64, 128)),
            ClassDef(1, "car", (64, 0, 128)),
            ClassDef(2, "sky", (70, 130, 180)),
            ClassDef(255, "unlabeled", (0, 0, 0), ignore=True),
        ))
        project = Project.create(tmp_path / name, classes)
        rng = np.random.default_rng(11)
        width, height = size
        for index in range(count):
            image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            path = project.root / "images" / f"img{index:02d}.png"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(image).save(path)
            record = project.add_image(path, split="train" if index % 3 else "val")
            if index < labeled:
                mask = np.zeros((height, width), np.uint8)
                mask[: height // 3] = 2
                mask[height // 2:, width // 4: width // 2] = 1
                project.write_mask(record, mask, status="labeled", save_manifest=False)
        project.save()
        return project

    return make


@pytest.fixture
def main_window(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN001, ANN201
    """The real main window, shown offscreen, with its own user data folder; an error box
    the app would show fails the test with its text instead of waiting for a click."""
    import segstudio.ui.resources as resources
    from segstudio.ui import dialogs
    from segstudio.ui.main_window import MainWindow

    monkeypatch.setattr(resources, "user_data_dir", lambda: tmp_path / "appdata")
    monkeypatch.setattr(dialogs, "show_error", lambda _p, title, text: pytest.fail(f"{title}: {text}"))
    window = MainWindow()
    qtbot.addWidget(window)
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    return window

