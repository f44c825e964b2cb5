"""The hosts registry: which SSH hosts the user trains on, with their per-host settings.

Kept as JSON in the user's config folder ($SEGSTUDIO_CONFIG_DIR, else $XDG_CONFIG_HOME or
~/.config, then segstudio/hosts.json). A host's name is what `ssh NAME` connects to: an
alias of ~/.ssh/config or user@address; connection details stay in the SSH configuration.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from segstudio.core.atomic import atomic_write_json
from segstudio.remote.ssh import RemoteError

CONFIG_DIR_ENV = "SEGSTUDIO_CONFIG_DIR"
HOSTS_FILE = "hosts.json"
DEFAULT_ROOT = "~/.segstudio"


def config_dir() -> Path:
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override)
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "segstudio"


@dataclass(frozen=True)
class HostConfig:
    """One training host. Paths are the host's own; a leading ~/ is its home folder.

    `python`: the host's interpreter with segstudio (default: the venv `remote setup` makes).
    `root`: the folder for mirrors and the venv. `path_map`: (prefix here, prefix there)
    pairs for images the host already has (a shared drive), which are used in place.
    `min_free_gb`: a run is refused when the host has less free disk than this.
    """

    name: str
    python: str = ""
    root: str = DEFAULT_ROOT
    path_map: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    min_free_gb: float = 2.0

    @property
    def venv(self) -> str:
        return f"{self.root.rstrip('/')}/venv"

    @property
    def interpreter(self) -> str:
        return self.python or f"{self.venv}/bin/python"

    def mirror(self, project_key: str) -> str:
        return f"{self.root.rstrip('/')}/mirrors/{project_key}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path_map"] = [list(pair) for pair in self.path_map]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostConfig:
        pairs = tuple((str(a), str(b)) for a, b in data.get("path_map") or ())
        return cls(name=str(data["name"]), python=str(data.get("python") or ""),
                   root=str(data.get("root") or DEFAULT_ROOT), path_map=pairs,
                   min_free_gb=float(data.get("min_free_gb", 2.0)))

    def host_path(self, local: Path) -> str | None:
        """Where the host sees the local file `local` through the path mapping (None: not mapped)."""
        text = Path(os.path.abspath(local)).as_posix()
        for here, there in self.path_map:
            prefix = here.rstrip("/")
            if text == prefix or text.startswith(prefix + "/"):
                return there.rstrip("/") + text[len(prefix):]
        return None


class HostRegistry:
    """The hosts file: read on every call, written atomically, so two processes agree."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / HOSTS_FILE

    def hosts(self) -> list[HostConfig]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise RemoteError(f"cannot read the hosts file {self.path} ({exc}); fix or delete it") from exc
        return [HostConfig.from_dict(item) for item in data.get("hosts", [])]

    def get(self, name: str) -> HostConfig:
        for host in self.hosts():
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts()) or "none yet"
        raise RemoteError(f"no host '{name}' in {self.path} (known: {known}); add it with "
                          f"'segstudio remote add {name}'")

    def find(self, name: str) -> HostConfig | None:
        return next((h for h in self.hosts() if h.name == name), None)

    def put(self, host: HostConfig) -> None:
        hosts = [h for h in self.hosts() if h.name != host.name] + [host]
        self._write(hosts)

    def update(self, name: str, **changes: Any) -> HostConfig:
        host = replace(self.get(name), **changes)
        self.put(host)
        return host

    def remove(self, name: str) -> None:
        self.get(name)
        self._write([h for h in self.hosts() if h.name != name])

    def _write(self, hosts: list[HostConfig]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, {"hosts": [h.to_dict() for h in sorted(hosts, key=lambda h: h.name)]})
