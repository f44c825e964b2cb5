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
