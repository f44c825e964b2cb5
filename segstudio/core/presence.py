"""Who has a project open: one small marker file per running app under PROJECT/.segstudio/open/.

A second window (here or on another machine sharing the drive) reads the markers to say who
holds the project and since when, and offers read-only or writing alongside (safe because
Project.save merges). A marker is removed on close; one left by a crash is ignored: its pid
is gone on this host, or, from another host, its heartbeat is older than REMOTE_STALE_S.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from segstudio.core.atomic import atomic_write_json
from segstudio.core.locking import host_name, pid_alive

PRESENCE_DIR = Path(".segstudio") / "open"
# The app rewrites its marker every HEARTBEAT_S; a remote one not rewritten for this long is
# left by a machine that crashed or lost the drive.
HEARTBEAT_S = 60.0
REMOTE_STALE_S = 15 * 60.0


@dataclass(frozen=True)
class Presence:
    """One running app with the project open."""

    host: str
    pid: int
    user: str
    since: float
    seen: float  # the last heartbeat
    read_only: bool = False

    @property
    def file_name(self) -> str:
        safe_host = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in self.host)
        return f"{safe_host}-{self.pid}.json"

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.since))
        mode = ", read-only" if self.read_only else ""
        return f"{self.user} on {self.host} (process {self.pid}{mode}) since {when}"

    def is_current_process(self) -> bool:
        return self.host == host_name() and self.pid == os.getpid()

    def is_stale(self, now: float | None = None) -> bool:
        if self.host == host_name():
            return not pid_alive(self.pid)
        return ((now if now is not None else time.time()) - self.seen) > REMOTE_STALE_S

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "user": self.user, "since": self.since,
                "seen": self.seen, "read_only": self.read_only}

    @classmethod
    def from_dict(cls, data: Any) -> Presence | None:
        try:
            since = float(data["since"])
            return cls(str(data["host"]), int(data["pid"]), str(data.get("user", "?")), since,
                       float(data.get("seen", since)), bool(data.get("read_only", False)))
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def user_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return "someone"


def presence_folder(root: str | os.PathLike[str]) -> Path:
    return Path(root) / PRESENCE_DIR


def others(root: str | os.PathLike[str], now: float | None = None) -> list[Presence]:
    """The other live apps that have the project at `root` open, oldest first. Unreadable
    and stale markers are skipped (a crashed app's marker never blocks anyone)."""
    found = []
    folder = presence_folder(root)
    try:
        paths = sorted(folder.glob("*.json"))
    except OSError:
        return []
    for path in paths:
        try:
            info = Presence.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
        if info is None or info.is_current_process() or info.is_stale(now):
            continue
        found.append(info)
    found.sort(key=lambda item: item.since)
    return found


class PresenceMarker:
    """This process's marker for one project: announce on open, beat now and then, withdraw
    on close. Failing to write it (a read-only drive) only means others are not told."""

    def __init__(self, root: str | os.PathLike[str], read_only: bool = False) -> None:
        now = time.time()
        self.info = Presence(host_name(), os.getpid(), user_name(), now, now, read_only)
        self.path = presence_folder(root) / self.info.file_name
        self.written = False

    def announce(self) -> bool:
        return self._write()

    def beat(self) -> bool:
        self.info = replace(self.info, seen=time.time())
        return self._write()

    def set_read_only(self, read_only: bool) -> bool:
        self.info = replace(self.info, read_only=read_only)
        return self._write()

    def withdraw(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
        self.written = False

    def _write(self) -> bool:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, self.info.to_dict())
        except OSError:
            self.written = False
            return False
        self.written = True
        return True
