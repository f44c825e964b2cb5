"""The user's assist models: a folder in the user's data directory (never in a project)
with one subfolder per downloaded model and models.json listing every registered pair."""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from segstudio.assist.errors import AssistError
from segstudio.core.atomic import atomic_write_json

REGISTRY = "models.json"


def user_data_dir() -> Path:
    """segstudio's data folder, as the app's QStandardPaths would give it, without Qt;
    SEGSTUDIO_DATA_DIR overrides it (tests, portable installs)."""
    override = os.environ.get("SEGSTUDIO_DATA_DIR")
    if override:
        return Path(override)
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "segstudio"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "segstudio"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "segstudio"


def models_dir() -> Path:
    return user_data_dir() / "assist-models"


def downloads_dir() -> Path:
    """Partial downloads live here, beside (not inside) the models folder."""
    return user_data_dir() / "assist-downloads"


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    family: str
    encoder: str
    decoder: str
    licence: str = "unknown"
    source: str = "added"  # 'catalogue' (downloaded into the models folder) or 'added'
    commercial_use: bool = True


class ModelStore:
    """Read and change the registry; every write is atomic."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or models_dir()

    def models(self) -> dict[str, RegisteredModel]:
        path = self.folder / REGISTRY
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return {name: RegisteredModel(**fields) for name, fields in data.get("models", {}).items()}
        except (OSError, ValueError, TypeError) as exc:
            raise AssistError(f"{path} is unreadable ({exc}); fix or delete it and register the models again") from exc

    def get(self, name: str) -> RegisteredModel:
        models = self.models()
        if name not in models:
            known = ", ".join(sorted(models)) or "none yet"
            raise AssistError(
                f"no assist model named {name!r} (registered: {known}); "
                "use `segstudio assist-models download NAME` or `assist-models add`"
            )
        return models[name]

    def _write(self, models: dict[str, RegisteredModel]) -> None:
        atomic_write_json(self.folder / REGISTRY,
                          {"schema": 1, "models": {n: asdict(m) for n, m in sorted(models.items())}})

    def register(self, model: RegisteredModel) -> None:
        models = self.models()
        models[model.name] = model
        self._write(models)

    def remove(self, name: str) -> RegisteredModel:
        """Unregister; files of a downloaded model (inside the models folder) are deleted,
        files the user added from elsewhere are left where they are."""
        model = self.get(name)
        models = self.models()
        del models[name]
        self._write(models)
        own = self.folder / name
        if model.source == "catalogue" and own.is_dir() and own.resolve().parent == self.folder.resolve():
            shutil.rmtree(own, ignore_errors=True)
        return model
