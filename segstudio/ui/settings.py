"""What the app remembers between runs (QSettings): recent projects, window layout, and how
each project was last viewed (active class, tool, brush size, overlay opacity), and the
click-assist model the user chose.

Only these live in QSettings; everything about a project's data lives in its folder (the
view is the user's habit, not the team's data, so it stays out of project.json).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

ORGANIZATION = "segstudio"
APPLICATION = "segstudio"
MAX_RECENT = 8


class AppSettings:
    """A thin, typed view over QSettings("segstudio", "segstudio")."""

    def __init__(self, settings: QSettings | None = None) -> None:
        self._settings = settings or QSettings(
            QSettings.defaultFormat(), QSettings.Scope.UserScope, ORGANIZATION, APPLICATION
        )

    # -- recent projects ---------------------------------------------------------------------
    def recent_projects(self) -> list[Path]:
        value = self._settings.value("recent_projects", [])
        if isinstance(value, str):  # QSettings hands a one-item list back as a string
            value = [value]
        paths = [Path(str(item)) for item in (value or []) if str(item)]
        return [p for p in paths if (p / "project.json").is_file()]

    def add_recent_project(self, path: Path) -> None:
        resolved = Path(path).resolve()
        paths = [p for p in self.recent_projects() if p.resolve() != resolved]
        paths.insert(0, resolved)
        self._settings.setValue("recent_projects", [str(p) for p in paths[:MAX_RECENT]])

    def remove_recent_project(self, path: Path) -> None:
        resolved = Path(path).resolve()
        paths = [p for p in self.recent_projects() if p.resolve() != resolved]
        self._settings.setValue("recent_projects", [str(p) for p in paths])

    # -- window layout ---------------------------------------------------------------------------
    def window_geometry(self) -> QByteArray | None:
        value = self._settings.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def window_state(self) -> QByteArray | None:
        value = self._settings.value("window/state")
        return value if isinstance(value, QByteArray) else None

    def save_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self._settings.setValue("window/geometry", geometry)
        self._settings.setValue("window/state", state)

    # -- pointer habits ----------------------------------------------------------------------------
    def right_button_erases(self) -> bool:
        return str(self._settings.value("pointer/right_button_erases", "true")).lower() == "true"

    def set_right_button_erases(self, on: bool) -> None:
        self._settings.setValue("pointer/right_button_erases", "true" if on else "false")

    # -- per-project view ------------------------------------------------------------------------
    def project_view(self, root: Path) -> dict[str, Any]:
        value = self._settings.value(f"projects/{_project_key(root)}/view")
        try:
            view = json.loads(value) if isinstance(value, str) else {}
        except ValueError:
            return {}
        return view if isinstance(view, dict) else {}

    def save_project_view(self, root: Path, view: dict[str, Any]) -> None:
        self._settings.setValue(f"projects/{_project_key(root)}/view", json.dumps(view, sort_keys=True))

    # -- click assist ------------------------------------------------------------------------------
    def assist_model(self) -> str | None:
        """The registered assist model the user chose ("Use for assist"); None: not chosen."""
        value = self._settings.value("assist/model")
        return str(value) if value else None

    def set_assist_model(self, name: str | None) -> None:
        self._settings.setValue("assist/model", name or "")

    def sync(self) -> None:
        self._settings.sync()


def _project_key(root: Path) -> str:
    return hashlib.sha1(str(Path(root).resolve()).encode("utf-8")).hexdigest()[:16]
