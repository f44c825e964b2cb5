"""Atomic file writes: temp file in the same folder, flush + fsync, then os.replace.

A crash mid-save leaves the previous file intact, never a half-written one. A failed write
(disk full, I/O error, read-only folder, a folder that vanished) raises StorageError, a
typed OSError whose message says what failed and what to do; its temp file is removed, and
temp files a killed process left behind are never read and are cleaned by age.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from segstudio.core.errors import StorageError

TEMP_SUFFIX = ".tmp"
# A temp file younger than this may belong to a writer in another process right now.
STRAY_TEMP_AGE_S = 600.0
_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{6,}\.tmp$")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temp file beside `path`; on clean exit it replaces `path` atomically."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    except OSError as exc:
        raise storage_error(target, exc) from exc
    try:
        # mkstemp makes 0600 files; a saved project must stay readable as before (a shared
        # dataset on a server), so keep the old file's mode, else the umask's default.
        with contextlib.suppress(OSError):
            os.chmod(tmp_name, _mode_for(target))
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
        _fsync_dir(target.parent)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise storage_error(target, exc) from exc
        raise


def storage_error(target: Path, exc: OSError) -> StorageError:
    """The OS error of a failed write, in words: what failed and what to do."""
    code = exc.errno
    reason = exc.strerror or str(exc)
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        text = (f"the disk is full or your quota is used up ({reason}): {target.name} was not saved; "
                "free some space and save again")
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM):
        text = (f"{target.parent} is read-only or not writable by you ({reason}): {target.name} "
                "was not saved; make the folder writable, or save the project elsewhere")
    elif code == errno.EIO:
        text = (f"input/output error ({reason}) in {target.parent}: {target.name} was not saved (a "
                "failing disk, or a network drive that went away); check the drive and save again")
    elif code == errno.ENOENT:
        text = (f"{target.parent} no longer exists ({reason}; deleted, or a network drive disconnected): "
                f"{target.name} was not saved; reconnect or restore the folder and save again")
    else:
        text = f"cannot write {target} ({reason}): {target.name} was not saved; check the folder and save again"
    error = StorageError(f"{text}. The previous {target.name} is unchanged.")
    error.errno = code  # not strerror/filename: OSError would then print those instead of the text
    error.path = target  # type: ignore[attr-defined]
    return error


def is_temp_name(name: str) -> bool:
    """True for the temp files atomic_open writes (never to be read as data)."""
    return bool(_TEMP_NAME.match(name))


def clean_stray_temps(folder: str | os.PathLike[str], max_age_s: float = STRAY_TEMP_AGE_S) -> list[Path]:
    """Remove temp files a killed or failed writer left in `folder` (older than `max_age_s`,
    so a write in progress in another process keeps its temp file); returns those removed."""
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not is_temp_name(entry.name):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) and now - entry.stat(follow_symlinks=False).st_mtime >= max_age_s:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _read_umask() -> int:
    # Read once at import: os.umask can only be read by setting it, which would race with
    # files being created on other threads (autosave) later on.
    umask = os.umask(0)
    os.umask(umask)
    return umask


_UMASK = _read_umask()


def _mode_for(target: Path) -> int:
    try:
        return target.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_UMASK


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable on POSIX; directories cannot be opened on Windows.
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def atomic_write_with(path: str | os.PathLike[str], writer: Callable[[IO[bytes]], None]) -> None:
    """Let `writer` fill a binary handle (e.g. PIL's Image.save), then commit atomically."""
    with atomic_open(path, "wb") as handle:
        writer(handle)
