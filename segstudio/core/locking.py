"""The project's write lock: one writer at a time changes project.json, across processes.

An OS file lock (the `filelock` library: fcntl/flock on POSIX, LockFileEx on Windows) is
held only while a writer reads, merges and replaces the manifest, so it is never held for
long and the kernel frees it when its holder dies. Beside it a small holder file names who
holds it (host, pid, since, tool) so a waiting writer can say who is in the way. On a file
system without OS locks (some network shares) a marker-file lock is used instead; a marker
left by a dead process (pid gone on this host, or older than REMOTE_STALE_S from another
host) is taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock

from segstudio.core.errors import ProjectLockedError

LOCK_NAME = ".project.lock"
SOFT_LOCK_NAME = ".project.softlock"
HOLDER_NAME = ".project.lock.json"
DEFAULT_TIMEOUT_S = 5.0
# A marker lock from another host older than this is stale: manifest writes take milliseconds.
REMOTE_STALE_S = 120.0
# SEGSTUDIO_LOCK=soft forces marker locks (a share whose OS locks are known to lie).
LOCK_MODE_ENV = "SEGSTUDIO_LOCK"


@dataclass(frozen=True)
class LockInfo:
    """Who holds (or last held) a project's write lock."""

    host: str
    pid: int
    since: float
    tool: str = "segstudio"

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"{self.tool} (process {self.pid}) on {self.host} since {when}"

    def is_current_process(self) -> bool:
        return self.host == host_name() and self.pid == os.getpid()

    def is_alive(self, now: float | None = None) -> bool:
        """On this host: is the process still running; elsewhere: is the claim recent."""
        if self.host == host_name():
            return pid_alive(self.pid)
        return ((now or time.time()) - self.since) < REMOTE_STALE_S

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "since": self.since, "tool": self.tool}

    @classmethod
    def from_dict(cls, data: Any) -> LockInfo | None:
        try:
            return cls(str(data["host"]), int(data["pid"]), float(data["since"]), str(data.get("tool", "segstudio")))
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def host_name() -> str:
    return socket.gethostname() or "localhost"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (never signals it)."""
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill would terminate the process on Windows
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    except OSError:
        return False
    return True


def _windows_pid_alive(pid: int) -> bool:  # pragma: no cover - Windows only
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def read_holder(root: Path) -> LockInfo | None:
    try:
        return LockInfo.from_dict(json.loads((root / HOLDER_NAME).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


class _Entry:
    """One lock path in this process: threads queue on `guard`; the OS lock is taken once."""

    def __init__(self) -> None:
        self.guard = threading.RLock()
        self.depth = 0
        self.os_lock: filelock.BaseFileLock | None = None


_ENTRIES: dict[str, _Entry] = {}
_ENTRIES_GUARD = threading.Lock()


def _entry(root: Path) -> _Entry:
    key = os.path.abspath(root)
    with _ENTRIES_GUARD:
        return _ENTRIES.setdefault(key, _Entry())


class ProjectLock:
    """Context manager holding the write lock of the project at `root` (re-entrant in one
    process). Waits up to `timeout` seconds, then raises ProjectLockedError naming the holder."""

    def __init__(self, root: str | os.PathLike[str], timeout: float = DEFAULT_TIMEOUT_S,
                 soft: bool | None = None, tool: str | None = None) -> None:
        self.root = Path(root)
        self.timeout = timeout
        self.soft = os.environ.get(LOCK_MODE_ENV, "").lower() == "soft" if soft is None else soft
        self.tool = tool or _tool_name()
        self._entry = _entry(self.root)

    def __enter__(self) -> ProjectLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        entry = self._entry
        if not entry.guard.acquire(timeout=max(self.timeout, 0.0)):
            raise self._locked_error()
        try:
            if entry.depth == 0:
                entry.os_lock = self._take_os_lock()
                self._write_holder()
            entry.depth += 1
        except BaseException:
            entry.guard.release()
            raise

    def release(self) -> None:
        entry = self._entry
        try:
            entry.depth -= 1
            if entry.depth == 0 and entry.os_lock is not None:
                holder = read_holder(self.root)
                if holder is not None and holder.is_current_process():
                    with contextlib.suppress(OSError):
                        (self.root / HOLDER_NAME).unlink()
                with contextlib.suppress(OSError):
                    entry.os_lock.release()
                entry.os_lock = None
        finally:
            entry.guard.release()

    # -- internals ----------------------------------------------------------------------------
    def _take_os_lock(self) -> filelock.BaseFileLock:
        if not self.soft:
            lock: filelock.BaseFileLock = filelock.FileLock(str(self.root / LOCK_NAME), timeout=self.timeout)
            try:
                lock.acquire()
                return lock
            except filelock.Timeout:
                raise self._locked_error() from None
            except NotImplementedError:
                self.soft = True  # no OS locks on this file system: fall back to a marker
        return self._take_soft_lock()

    def _take_soft_lock(self) -> filelock.BaseFileLock:
        deadline = time.monotonic() + self.timeout
        marker = self.root / SOFT_LOCK_NAME
        while True:
            self._break_stale_marker(marker)
            lock = filelock.SoftFileLock(str(marker), timeout=0)
            try:
                lock.acquire()
                return lock
            except filelock.Timeout:
                if time.monotonic() >= deadline:
                    raise self._locked_error() from None
                time.sleep(0.05)

    def _break_stale_marker(self, marker: Path) -> None:
        """Take over a marker whose holder is dead: move it aside under a unique name (one
        contender wins the rename), then delete it."""
        if not marker.exists():
            return
        holder = read_holder(self.root)
        if holder is None:
            try:  # a marker without a holder file: stale once it is old
                if time.time() - marker.stat().st_mtime < REMOTE_STALE_S:
                    return
            except OSError:
                return
        elif holder.is_alive():
            return
        aside = marker.with_name(f"{marker.name}.stale-{uuid.uuid4().hex[:8]}")
        with contextlib.suppress(OSError):
            os.replace(marker, aside)
            os.unlink(aside)

    def _write_holder(self) -> None:
        info = LockInfo(host_name(), os.getpid(), time.time(), self.tool)
        # Written in place (not via atomic.py's replace): only the lock holder writes it,
        # and a reader that sees it torn just does not name the holder.
        with contextlib.suppress(OSError):
            (self.root / HOLDER_NAME).write_text(json.dumps(info.to_dict()), encoding="utf-8")

    def _locked_error(self) -> ProjectLockedError:
        holder = read_holder(self.root)
        who = holder.describe() if holder is not None else "another program"
        return ProjectLockedError(
            f"the project {self.root} is being written by {who}; waited {self.timeout:g} s. "
            "Try again in a moment; if that program hangs, close it"
        )


def lock_info(root: str | os.PathLike[str]) -> LockInfo | None:
    """Who holds the write lock of the project at `root` right now; None when nobody does
    (a holder file left by a dead process does not count)."""
    root = Path(root)
    holder = read_holder(root)
    if holder is None:
        return None
    if holder.is_current_process():
        return holder if _entry(root).depth > 0 else None
    if not holder.is_alive():
        return None
    return holder


@contextlib.contextmanager
def locked(root: str | os.PathLike[str], timeout: float = DEFAULT_TIMEOUT_S) -> Iterator[ProjectLock]:
    """`with locked(root): ...` holds the project's write lock for the block."""
    lock = ProjectLock(root, timeout)
    with lock:
        yield lock


def _tool_name() -> str:
    argv0 = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return f"segstudio {argv0}".strip() if argv0 and "segstudio" not in argv0 else (argv0 or "segstudio")
