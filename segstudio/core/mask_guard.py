"""Mask files changed under us: each mask's file stamp is remembered when this process reads
or writes it, and a write that finds a different file on disk is a conflict, not an overwrite.

The app turns a MaskConflictError into "keep mine (theirs kept as a copy) / load theirs";
Project.keep_mine and Project.load_theirs are the two answers.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from segstudio.core.errors import MaskConflictError

CONFLICTS_DIR = ".conflicts"

# (mtime in ns, size, inode): a replace by another writer always changes the inode, an
# in-place rewrite the time (and nearly always the size).
Stamp = tuple[int, int, int]


def file_stamp(path: Path) -> Stamp | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass(frozen=True)
class MaskConflict:
    """The mask of `image_id` on disk is not the one this process last read or wrote."""

    image_id: str
    path: Path
    deleted: bool  # theirs is "no mask": someone deleted the file

    def message(self) -> str:
        what = "deleted" if self.deleted else "changed"
        return (f"the mask of '{self.image_id}' was {what} on disk by another program since you "
                "opened it; keep yours (theirs is kept as a copy) or load theirs")


class MaskStamps:
    """What this process last saw of each mask file it read or wrote."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._stamps: dict[str, Stamp | None] = {}
        self._guard = threading.Lock()  # the app writes masks from a worker thread too

    def seen(self, image_id: str, stamp: Stamp | None) -> None:
        with self._guard:
            self._stamps[image_id] = stamp

    def forget(self, image_id: str) -> None:
        with self._guard:
            self._stamps.pop(image_id, None)

    def rename(self, old: str, new: str) -> None:
        with self._guard:
            if old in self._stamps:
                self._stamps[new] = self._stamps.pop(old)

    def conflict(self, image_id: str, path: Path) -> MaskConflict | None:
        """None when the file is as we last saw it (or we never looked at it)."""
        with self._guard:
            if image_id not in self._stamps:
                return None
            recorded = self._stamps[image_id]
        current = file_stamp(path)
        if current == recorded:
            return None
        return MaskConflict(image_id, path, deleted=current is None)

    def check(self, image_id: str, path: Path) -> None:
        found = self.conflict(image_id, path)
        if found is not None:
            raise MaskConflictError(found.message(), found)

    def keep_aside(self, image_id: str, path: Path) -> Path | None:
        """Copy the mask on disk (theirs) to .conflicts/ before mine replaces it."""
        if not path.is_file():
            return None
        folder = self.root / CONFLICTS_DIR
        folder.mkdir(exist_ok=True)
        target = folder / f"{path.stem}.{time.strftime('%Y%m%d-%H%M%S')}.{os.getpid()}.png"
        shutil.copy2(path, target)
        return target
