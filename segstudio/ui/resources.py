"""Where the app's resources (icons, style, the sample project) are, installed or frozen."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from PySide6.QtCore import QStandardPaths
from PySide6.QtGui import QIcon

from segstudio.core.errors import ProjectError

SAMPLE_FOLDER = "sample-project"


def resources_dir() -> Path:
    """$SEGSTUDIO_RESOURCES, a PyInstaller bundle's resources/, or the package's own
    (segstudio/resources, package data in a wheel and in the source tree alike)."""
    override = os.environ.get("SEGSTUDIO_RESOURCES")
    if override:
        return Path(override)
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parents[1] / "resources"


def app_icon() -> QIcon:
    path = resources_dir() / "icons" / "segstudio.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


def style_sheet() -> str:
    path = resources_dir() / "style.qss"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def user_data_dir() -> Path:
    location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(location) if location else Path.home() / ".local" / "share" / "segstudio"


def sample_project_path(target: Path | None = None) -> Path:
    """The user's own copy of the sample project, copied from the packaged one on first use,
    so the packaged copy is never modified."""
    target = target or user_data_dir() / SAMPLE_FOLDER
    if (target / "project.json").is_file():
        return target
    source = resources_dir() / "sample"
    if not (source / "project.json").is_file():
        raise ProjectError(f"the sample project is missing from {source}; reinstall segstudio")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        staging = target.with_name(target.name + ".partial")
        if staging.exists():
            shutil.rmtree(staging)
        shutil.copytree(source, staging)
        for sub in ("runs", "models", "masks"):
            (staging / sub).mkdir(exist_ok=True)
        staging.rename(target)  # a half-finished copy is never taken for the sample
    except OSError as exc:
        raise ProjectError(f"cannot copy the sample project to {target}: {exc.strerror or exc}") from exc
    return target
