"""Crash-recovery journal: unsaved masks copied to PROJECT/.recovery every few seconds.

The editor writes a dirty mask here (atomically, with a small JSON journal naming it)
long before the user saves; a clean save removes the entry. If the app is killed, the
next start finds the entries that still differ from the saved masks and offers them back.
Qt-free, so the journal is tested without a window and a crash test can read it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
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
from segstudio.core.project import Project
from segstudio.core.vocabulary import UNEDITED_STATUSES

RECOVERY_DIR = ".recovery"
JOURNAL_NAME = "journal.json"
JOURNAL_VERSION = 1


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
    """The journal of one project folder. Writes are serialised by a lock, because the
    editor journals big masks from a worker thread while small ones go from the UI thread."""

    def __init__(self, project_root: str | Path) -> None:
        self.folder = Path(project_root) / RECOVERY_DIR
        self._lock = threading.RLock()
        self._entries: dict[str, JournalEntry] = self._read_entries()
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
        """Journal an unsaved mask: the PNG first, then the journal that names it."""
        entry = JournalEntry(image_id, _file_name(image_id), revision, status, time.time())
        data = imageio.encode_mask_png(mask, project.classes)
        try:
            with self._lock:
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

    def clear(self) -> None:
        """Remove every entry and the journal folder's files."""
        with self._lock:
            for image_id in list(self._entries):
                self.discard(image_id)
            with contextlib.suppress(OSError):
                self.journal_path.unlink()
            with contextlib.suppress(OSError):
                self.folder.rmdir()

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
        restored, skipped = [], []
        wanted = None if image_ids is None else set(image_ids)
        for item in self.pending(project):
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
        self.clear()
        return RecoveryReport(tuple(restored), tuple(skipped))
