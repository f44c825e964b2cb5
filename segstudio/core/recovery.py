"""Crash-recovery journal: unsaved masks copied to PROJECT/.recovery every few seconds.

The editor writes a dirty mask here (atomically, with a small JSON journal naming it)
long before the user saves; a clean save removes the entry. Each app process has its own
journal, .recovery/<host>-<pid>/ (owner.json says whose), so two windows writing one project
never drop each other's entries. If an app is killed, the next start collects the journals
of processes that are gone (core/recovery_offer.py) and offers back the entries that still
differ from the saved masks. Qt-free, so it is tested without a window.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core import imageio
from segstudio.core.atomic import atomic_write_bytes, atomic_write_json, clean_stray_temps
from segstudio.core.errors import MaskError, ProjectError, SegstudioError
from segstudio.core.locking import host_name
from segstudio.core.project import Project
from segstudio.core.vocabulary import UNEDITED_STATUSES

RECOVERY_DIR = ".recovery"
JOURNAL_NAME = "journal.json"
OWNER_NAME = "owner.json"
JOURNAL_VERSION = 1


@dataclass(frozen=True)
class JournalOwner:
    """The app process a journal belongs to (its folder is named after it)."""

    host: str
    pid: int

    @classmethod
    def current(cls) -> JournalOwner:
        return cls(host_name(), os.getpid())

    @property
    def folder_name(self) -> str:
        safe_host = re.sub(r"[^A-Za-z0-9._-]+", "_", self.host)[:80] or "host"
        return f"{safe_host}-{self.pid}"

    def is_current_process(self) -> bool:
        return self == JournalOwner.current()

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid}

    @classmethod
    def from_dict(cls, data: Any) -> JournalOwner | None:
        try:
            return cls(str(data["host"]), int(data["pid"]))
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    @classmethod
    def read(cls, folder: Path) -> JournalOwner | None:
        """The owner recorded in a journal folder; None when missing or unreadable."""
        try:
            return cls.from_dict(json.loads((folder / OWNER_NAME).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None


@dataclass(frozen=True)
class JournalEntry:
    """One unsaved mask in the journal: which image, which file, when, and its status."""

    image_id: str
    file: str
    revision: int
    status: str
    saved_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_id": self.image_id,
            "file": self.file,
            "revision": self.revision,
            "status": self.status,
            "saved_at": self.saved_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JournalEntry:
        return cls(
            image_id=str(data["image_id"]),
            file=str(data["file"]),
            revision=int(data.get("revision", 0)),
            status=str(data.get("status", "in_progress")),
            saved_at=float(data.get("saved_at", 0.0)),
        )


@dataclass(frozen=True)
class RecoveredMask:
    """A journalled mask that differs from what is saved, ready to be offered back."""

    entry: JournalEntry
    mask: np.ndarray


@dataclass(frozen=True)
class RecoveryReport:
    """What `RecoveryJournal.restore` did: restored image ids and entries it had to skip."""

    restored: tuple[str, ...]
    skipped: tuple[str, ...]


def _file_name(image_id: str) -> str:
    # Image ids come from file stems and may hold characters a file system refuses; the
    # hash keeps two ids that sanitise alike apart.
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", image_id)[:80]
    digest = hashlib.sha1(image_id.encode("utf-8")).hexdigest()[:8]
    return f"{safe}.{digest}.png"


class RecoveryJournal:
    """One process's journal in a project folder (this process's unless `owner` is given).
    Writes are serialised by a lock, because the editor journals big masks from a worker
    thread while small ones go from the UI thread. `legacy` opens the single journal that
    older versions kept directly in .recovery/ (read, restored and cleared; never written)."""

    def __init__(self, project_root: str | Path, owner: JournalOwner | None = None,
                 legacy: bool = False) -> None:
        self.root = Path(project_root) / RECOVERY_DIR
        self.owner = None if legacy else (owner or JournalOwner.current())
        self.folder = self.root if self.owner is None else self.root / self.owner.folder_name
        self._lock = threading.RLock()
        self._entries: dict[str, JournalEntry] = self._read_entries()
        self._owner_written = False
        clean_stray_temps(self.folder)  # half-written journal files of a killed app; never read

    @property
    def journal_path(self) -> Path:
        return self.folder / JOURNAL_NAME

    def _read_entries(self) -> dict[str, JournalEntry]:
        try:
            data = json.loads(self.journal_path.read_text(encoding="utf-8"))
            items = data.get("entries", [])
            entries = (JournalEntry.from_dict(item) for item in items)
            return {entry.image_id: entry for entry in entries}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            # A journal torn by a crash can only be ignored; the masks it names stay on disk.
            return {}

    def _write_journal(self) -> None:
        if not self._entries:
            with contextlib.suppress(FileNotFoundError):
                self.journal_path.unlink()
            self._remove_folder()
            return
        atomic_write_json(
            self.journal_path,
            {"version": JOURNAL_VERSION, "entries": [e.to_dict() for e in self._entries.values()]},
        )

    # -- writing -------------------------------------------------------------------------------
    @property
    def entries(self) -> dict[str, JournalEntry]:
        with self._lock:
            return dict(self._entries)

    def revision_of(self, image_id: str) -> int | None:
        with self._lock:
            entry = self._entries.get(image_id)
        return None if entry is None else entry.revision

    def record(self, image_id: str, mask: np.ndarray, revision: int, status: str,
               project: Project) -> JournalEntry:
        """Journal an unsaved mask: the owner first, the PNG next, then the journal naming it."""
        if self.owner is None:
            raise ProjectError("the old single recovery journal is only read back, never written")
        entry = JournalEntry(image_id, _file_name(image_id), revision, status, time.time())
        data = imageio.encode_mask_png(mask, project.classes)
        try:
            with self._lock:
                if not self._owner_written or not (self.folder / OWNER_NAME).is_file():
                    atomic_write_json(self.folder / OWNER_NAME, self.owner.to_dict())
                    self._owner_written = True
                atomic_write_bytes(self.folder / entry.file, data)
                previous = self._entries.get(image_id)
                self._entries[image_id] = entry
                try:
                    self._write_journal()
                except OSError:
                    if previous is None:
                        self._entries.pop(image_id, None)
                    else:
                        self._entries[image_id] = previous
                    raise
        except OSError as exc:
            # The entry and the journal stay as they were; the caller keeps the mask and retries.
            raise ProjectError(
                f"cannot write the recovery journal in {self.folder}: {exc}; "
                "is the project folder writable?"
            ) from exc
        return entry

    def discard(self, image_id: str) -> None:
        """Forget one image's entry (after its mask was saved cleanly)."""
        with self._lock:
            entry = self._entries.pop(image_id, None)
            if entry is None:
                return
            with contextlib.suppress(OSError):
                self._write_journal()
                (self.folder / entry.file).unlink()
            if not self._entries:
                self._remove_folder()  # the PNG was still there when the journal went

    def clear(self) -> None:
        """Remove every entry and the journal folder's files."""
        with self._lock:
            for image_id in list(self._entries):
                self.discard(image_id)
            with contextlib.suppress(OSError):
                self.journal_path.unlink()
            self._remove_folder()

    def _remove_folder(self) -> None:
        """Once empty: the owner file, this journal's folder and .recovery itself (each only if
        nothing else is in it: another process's journal, or an entry being written)."""
        if self.owner is not None:
            with contextlib.suppress(OSError):
                (self.folder / OWNER_NAME).unlink()
            self._owner_written = False
        for folder in (self.folder, self.root):
            with contextlib.suppress(OSError):
                folder.rmdir()

    # -- reading back -------------------------------------------------------------------------
    def pending(self, project: Project) -> list[RecoveredMask]:
        """Entries whose mask is readable, fits its image and differs from the saved mask."""
        found = []
        for entry in self.entries.values():
            recovered = self._load(entry, project)
            if recovered is not None:
                found.append(recovered)
        found.sort(key=lambda item: item.entry.saved_at)
        return found

    def _load(self, entry: JournalEntry, project: Project) -> RecoveredMask | None:
        if entry.image_id not in project:
            return None
        record = project.image(entry.image_id)
        try:
            mask = imageio.read_mask(self.folder / entry.file, project.classes)
        except SegstudioError:
            return None
        if mask.shape != (record.height, record.width):
            return None
        try:
            saved = project.read_mask(record)
        except SegstudioError:
            saved = None
        if saved is not None and np.array_equal(saved, mask):
            return None
        return RecoveredMask(entry, mask)

    def restore(self, project: Project, image_ids: list[str] | None = None) -> RecoveryReport:
        """Write the recovered masks into the project (atomically) and clear the journal."""
        report = restore_masks(project, self.pending(project), image_ids)
        self.clear()
        return report


def restore_masks(project: Project, found: list[RecoveredMask],
                  image_ids: list[str] | None = None) -> RecoveryReport:
    """Write recovered masks (those of `image_ids`, or all) into the project atomically."""
    restored, skipped = [], []
    wanted = None if image_ids is None else set(image_ids)
    for item in found:
        if wanted is not None and item.entry.image_id not in wanted:
            continue
        record = project.image(item.entry.image_id)
        # A recovered mask was being edited, so an unedited status becomes work in progress.
        status = item.entry.status if item.entry.status not in UNEDITED_STATUSES else "in_progress"
        try:
            project.write_mask(record, item.mask, status=status, save_manifest=False)
            restored.append(record.id)
        except (MaskError, ProjectError, OSError):
            skipped.append(record.id)
    if restored:
        project.save()
    return RecoveryReport(tuple(restored), tuple(skipped))
