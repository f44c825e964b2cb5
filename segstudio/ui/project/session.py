"""The editing session: which image is open, its MaskDocument, saving and image status.

Documents of recently visited images stay alive (a bounded LRU) so an image's undo
history survives switching away and back; a dirty document is saved before it is
evicted. Painting moves an image to in_progress; marking it done saves it as labeled or
reviewed. Loading a big image runs on the thread pool and is applied on the UI thread.
"""

from __future__ import annotations

import shutil
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from segstudio.core import imageio
from segstudio.core.errors import MaskError, SegstudioError
from segstudio.core.mask_document import MaskDocument
from segstudio.core.project import Project
from segstudio.core.recovery import RecoveryJournal
from segstudio.core.region import Region
from segstudio.core.vocabulary import UNEDITED_STATUSES
from segstudio.ui.annotate.class_edits import ClassEdits
from segstudio.ui.project.mask_writer import MaskWriter

CACHE_SIZE = 8
IMAGE_CACHE_SIZE = 3  # decoded images kept; others are re-read (images never change)
BACKGROUND_PIXELS = 12_000_000  # images above this size load on the thread pool
BACKGROUND_SAVE_PIXELS = 4_000_000  # masks above this size autosave on the writer thread


@dataclass(frozen=True)
class LoadedImage:
    """An image and its mask read from disk, plus what was wrong with the saved mask."""

    image_id: str
    image: np.ndarray
    mask: np.ndarray
    note: str = ""
    mask_rejected: bool = False


@dataclass
class OpenImage:
    """A visited image: its document, maybe its pixels, and what was journalled."""

    image_id: str
    document: MaskDocument
    image: np.ndarray | None
    journaled_revision: int = -1
    mask_rejected: bool = False
    listener: object = field(default=None, repr=False)


_RUNNING: set[_LoadJob] = set()


class _LoadSignals(QObject):
    done = Signal(object)
    failed = Signal(str, str)


class _LoadJob(QRunnable):
    def __init__(self, session: EditingSession, image_id: str) -> None:
        super().__init__()
        self.signals = _LoadSignals()
        self._session = session
        self.image_id = image_id

    def run(self) -> None:
        try:
            loaded = self._session.load(self.image_id)
        except SegstudioError as exc:
            self._emit(self.signals.failed, self.image_id, str(exc))
        except (OSError, MemoryError, ValueError) as exc:
            self._emit(self.signals.failed, self.image_id, f"{type(exc).__name__}: {exc}")
        else:
            self._emit(self.signals.done, loaded)

    @staticmethod
    def _emit(signal: object, *args: object) -> None:
        try:
            signal.emit(*args)  # type: ignore[attr-defined]
        except RuntimeError:
            pass  # the session closed while this image was loading; nobody wants it now


class EditingSession(QObject):
    """Owns the open project's documents; the window and autosave talk to it."""

    image_opened = Signal(str)
    loading = Signal(str)
    edited = Signal(str)
    status_changed = Signal(str, str)
    saved = Signal(str)
    dirty_changed = Signal(bool)
    classes_changed = Signal()
    message = Signal(str)

    def __init__(self, project: Project, journal: RecoveryJournal | None = None,
                 cache_size: int = CACHE_SIZE, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project = project
        self.journal = journal if journal is not None else RecoveryJournal(project.root)
        self.cache_size = max(1, cache_size)
        self._open: OrderedDict[str, OpenImage] = OrderedDict()
        self._current: str | None = None
        self._pending_load: str | None = None
        self._jobs: set[_LoadJob] = set()
        self._was_dirty = False
        self.classes = ClassEdits(self)
        self._pool = QThreadPool(self)  # its own: other jobs in the global pool never delay a load
        self._pool.setMaxThreadCount(2)
        self.writer = MaskWriter(project, self.journal, self)
        self.writer.saved.connect(self._on_writer_saved)
        self.writer.journaled.connect(self._on_writer_journaled)

    # -- state -----------------------------------------------------------------------------------
    @property
    def current_id(self) -> str | None:
        return self._current

    @property
    def document(self) -> MaskDocument | None:
        entry = self._open.get(self._current or "")
        return None if entry is None else entry.document

    @property
    def image(self) -> np.ndarray | None:
        entry = self._open.get(self._current or "")
        return None if entry is None else entry.image

    def documents(self) -> list[tuple[str, MaskDocument]]:
        return [(key, entry.document) for key, entry in self._open.items()]

    def open_ids(self) -> list[str]:
        return list(self._open)

    def has_unsaved(self) -> bool:
        return any(entry.document.dirty for entry in self._open.values())

    # -- loading ---------------------------------------------------------------------------------
    def load(self, image_id: str) -> LoadedImage:
        """Read an image and its mask (thread-safe: touches no session state).

        A saved mask that is unreadable, of the wrong size or with unknown class ids is not
        fatal: the image opens with what can be kept, and the note says what happened.
        """
        record = self.project.image(image_id)
        image = self.project.read_image(record)
        height, width = image.shape[:2]
        if record.width and (width, height) != (record.width, record.height):
            raise MaskError(
                f"{self.project.image_path(record)} is now {width}x{height} but the project "
                f"recorded {record.width}x{record.height}; the file was replaced. Re-add the image"
            )
        classes = self.project.classes
        try:
            mask = self.project.read_mask(record)
            if mask is None:
                mask = self.project.blank_mask(record)
            return LoadedImage(image_id, image, mask)
        except SegstudioError as exc:
            mask, note = self._salvage_mask(record.id, (height, width), classes.valid_lut(),
                                            classes.unlabeled_id, str(exc))
            return LoadedImage(image_id, image, mask, note, mask_rejected=True)

    def _salvage_mask(self, image_id: str, shape: tuple[int, int], valid: np.ndarray,
                      unlabeled: int, problem: str) -> tuple[np.ndarray, str]:
        kept = f"; the file is kept as {image_id}.png.rejected when you save"
        try:
            data, mode = imageio.read_mask_array(self.project.mask_path(image_id))
        except SegstudioError:
            return np.full(shape, unlabeled, np.uint8), f"{problem}. Opened a blank mask{kept}"
        if mode == "RGB" or data.shape != shape:
            return np.full(shape, unlabeled, np.uint8), f"{problem}. Opened a blank mask{kept}"
        bad = ~valid[data]
        salvaged = np.where(bad, np.uint8(unlabeled), data).astype(np.uint8)
        return salvaged, f"{problem}. {int(bad.sum())} pixels are shown as unlabelled{kept}"

    def open_image(self, image_id: str, background: bool | None = None) -> bool:
        """Make `image_id` current, saving the image left behind; False if it cannot open.

        With background=None, images above BACKGROUND_PIXELS load on the thread pool and the
        switch happens when they arrive (True is returned then, `loading` is emitted).
        """
        if image_id == self._current:
            return True
        if image_id in self._open:
            self._pending_load = None  # a slower background load must not take over later
            self._switch_to(image_id)
            return True
        try:
            record = self.project.image(image_id)
        except SegstudioError as exc:
            self.message.emit(str(exc))
            return False
        if background is None:
            background = record.width * record.height > BACKGROUND_PIXELS
        self._pending_load = image_id
        if background:
            job = _LoadJob(self, image_id)
            job.setAutoDelete(False)
            job.signals.done.connect(self._on_job_done)
            job.signals.failed.connect(self._on_job_failed)
            self._jobs.add(job)
            _RUNNING.add(job)  # outlives a session closed mid-load, until the thread is done
            self.loading.emit(image_id)
            self._pool.start(job)
            return True
        try:
            loaded = self.load(image_id)
        except (SegstudioError, OSError, ValueError, MemoryError) as exc:
            self._pending_load = None
            self.message.emit(f"cannot open '{image_id}': {exc}")
            return False
        self.activate(loaded)
        return True

    def _forget_job(self, image_id: str) -> None:
        done = {job for job in self._jobs if job.image_id == image_id}
        self._jobs -= done
        _RUNNING.difference_update(done)

    def _on_job_done(self, loaded: LoadedImage) -> None:
        self._forget_job(loaded.image_id)
        if loaded.image_id == self._pending_load:  # a later request wins over a slow load
            self.activate(loaded)

    def _on_job_failed(self, image_id: str, text: str) -> None:
        self._forget_job(image_id)
        if image_id == self._pending_load:
            self._pending_load = None
            self.message.emit(f"cannot open '{image_id}': {text}")

    def activate(self, loaded: LoadedImage) -> None:
        """Turn a loaded image into an open document and make it current (UI thread)."""
        self._pending_load = None
        document = MaskDocument(loaded.mask, self.project.classes)
        entry = OpenImage(loaded.image_id, document, loaded.image, mask_rejected=loaded.mask_rejected)
        entry.listener = lambda region, image_id=loaded.image_id: self._on_document_changed(image_id, region)
        document.add_listener(entry.listener)
        self._open[loaded.image_id] = entry
        self._switch_to(loaded.image_id)
        if loaded.note:
            self.message.emit(loaded.note)

    def _switch_to(self, image_id: str) -> None:
        previous = self._current
        if previous is not None and previous != image_id:
            self.save(previous, background=True)
        self._current = image_id
        self._open.move_to_end(image_id)
        entry = self._open[image_id]
        if entry.image is None:
            try:
                entry.image = self.project.read_image(image_id)
            except SegstudioError as exc:
                self.message.emit(f"cannot read '{image_id}': {exc}")
                entry.image = np.zeros((*entry.document.shape, 3), np.uint8)
        self._trim()
        self.image_opened.emit(image_id)

    def _trim(self) -> None:
        for position, entry in enumerate(reversed(self._open.values())):
            if position >= IMAGE_CACHE_SIZE and entry.image_id != self._current:
                entry.image = None
        for key in list(self._open):
            if len(self._open) <= self.cache_size:
                break
            if key == self._current or not self.save(key):
                continue  # a document that cannot be saved is kept, not dropped
            entry = self._open.pop(key)
            entry.document.remove_listener(entry.listener)

    def close_all(self) -> bool:
        """Save everything and forget all documents; False if something could not be saved."""
        ok = self.save_all()
        self.writer.wait()
        if ok:
            for entry in self._open.values():
                entry.document.remove_listener(entry.listener)
            self._open.clear()
            self._current = None
        return ok

    # -- edits and status ----------------------------------------------------------------------
    def _on_document_changed(self, image_id: str, region: Region) -> None:
        record = self.project.image(image_id)
        if record.status in UNEDITED_STATUSES:  # a first edit makes it work in progress
            self.project.update_image(image_id, status="in_progress")
            self.status_changed.emit(image_id, "in_progress")
        self.edited.emit(image_id)
        self._emit_dirty()

    def _emit_dirty(self) -> None:
        dirty = self.has_unsaved()
        if dirty != self._was_dirty:
            self._was_dirty = dirty
            self.dirty_changed.emit(dirty)

    def undo(self) -> bool:
        return self._step(undo=True)

    def redo(self) -> bool:
        return self._step(undo=False)

    def _step(self, undo: bool) -> bool:
        """One undo or redo on the open image; class-table edits follow their mask step."""
        document = self.document
        if document is None or not (document.can_undo if undo else document.can_redo):
            return False
        label = document.undo_label if undo else document.redo_label
        (document.undo if undo else document.redo)()
        self.classes.after_step(document, label, undo=undo)
        self._emit_dirty()
        return True

    def set_status(self, status: str, image_id: str | None = None) -> bool:
        image_id = image_id or self._current
        if image_id is None:
            return False
        if image_id in self._open and not self.save(image_id):
            return False
        try:
            self.project.update_image(image_id, status=status)
            self.project.save()
        except SegstudioError as exc:
            self.message.emit(str(exc))
            return False
        self.status_changed.emit(image_id, status)
        return True

    def mark_done(self, reviewed: bool = False) -> bool:
        """Save the current mask and mark it labeled (or reviewed)."""
        if self._current is None:
            return False
        if self._current in self._open and not self.project.has_mask(self._current):
            # nothing painted yet: a done image still gets its (unlabelled) mask written
            return self._write(self._current, "reviewed" if reviewed else "labeled")
        return self.set_status("reviewed" if reviewed else "labeled")

    # -- saving ------------------------------------------------------------------------------------
    def save(self, image_id: str | None = None, background: bool = False) -> bool:
        """Write one document if it has unsaved changes (atomically); False on failure.

        With `background`, a big mask is copied and written on the writer thread (the
        result arrives as `saved`), and a document in the middle of a stroke is left for
        the next try rather than having the user's stroke cut in two.
        """
        image_id = image_id or self._current
        entry = self._open.get(image_id or "")
        if entry is None or not entry.document.dirty:
            return True
        document = entry.document
        if background and document.in_stroke:
            return True
        big = document.shape[0] * document.shape[1] >= BACKGROUND_SAVE_PIXELS
        if background and big and not entry.mask_rejected:
            if not self.writer.saving(entry.image_id):
                self.writer.save(entry.image_id, np.array(document.mask), document.revision)
            return True
        return self._write(entry.image_id, None)

    def _on_writer_saved(self, image_id: str, revision: int, error: str) -> None:
        if error:
            self.message.emit(f"could not save '{image_id}': {error}")
            return
        entry = self._open.get(image_id)
        if entry is None:
            return
        document = entry.document
        if document.revision == revision and not document.in_stroke:
            document.mark_saved()  # nothing changed while it was being written
            entry.journaled_revision = -1
        try:
            self.project.save()  # the status may have moved to in_progress
        except SegstudioError as exc:
            self.message.emit(str(exc))
        self.saved.emit(image_id)
        self._emit_dirty()

    def _on_writer_journaled(self, image_id: str, _revision: int, error: str) -> None:
        if error:
            self.message.emit(error)

    def _write(self, image_id: str, status: str | None) -> bool:
        entry = self._open[image_id]
        document = entry.document
        self.writer.wait()  # a queued background save must not land after this one
        document.end_stroke()
        try:
            if entry.mask_rejected:
                self._keep_rejected(image_id)
                entry.mask_rejected = False
            self.project.write_mask(image_id, np.array(document.mask), save_manifest=False)
            if status is not None:
                self.project.update_image(image_id, status=status)
            self.project.save()
        except (SegstudioError, OSError) as exc:
            self.message.emit(f"could not save '{image_id}': {exc}")
            return False
        document.mark_saved()
        self.journal.discard(image_id)
        entry.journaled_revision = -1
        self.saved.emit(image_id)
        if status is not None:
            self.status_changed.emit(image_id, status)
        self._emit_dirty()
        return True

    def _keep_rejected(self, image_id: str) -> None:
        path = self.project.mask_path(image_id)
        if path.is_file():
            target = path.with_name(path.name + ".rejected")
            if target.exists():
                target = path.with_name(f"{path.name}.{int(time.time())}.rejected")
            shutil.copy2(path, target)

    def save_all(self, background: bool = False) -> bool:
        results = [self.save(key, background) for key in list(self._open)]
        return all(results)

    def write_journal(self) -> int:
        """Journal each dirty document changed since it was last journalled; returns how many."""
        written = 0
        for entry in self._open.values():
            document = entry.document
            if not document.dirty or document.revision == entry.journaled_revision:
                continue
            status = self.project.image(entry.image_id).status
            mask = np.array(document.mask)
            if mask.size >= BACKGROUND_SAVE_PIXELS:
                self.writer.record(entry.image_id, mask, document.revision, status)
            else:
                try:
                    self.journal.record(entry.image_id, mask, document.revision, status, self.project)
                except SegstudioError as exc:
                    self.message.emit(str(exc))
                    return written
            entry.journaled_revision = document.revision
            written += 1
        return written

    # -- navigation --------------------------------------------------------------------------------
    def neighbor_id(self, step: int, order: list[str] | None = None) -> str | None:
        """The image `step` places from the current one in `order` (default: the project's)."""
        ids = order if order is not None else [rec.id for rec in self.project.images]
        if not ids:
            return None
        if self._current not in ids:
            return ids[0] if step > 0 else ids[-1]
        index = ids.index(self._current) + step
        return ids[index] if 0 <= index < len(ids) else None

    def next_unlabeled_id(self, order: list[str] | None = None) -> str | None:
        """The next image after the current one (wrapping) whose status is unlabeled."""
        ids = order if order is not None else [rec.id for rec in self.project.images]
        start = ids.index(self._current) + 1 if self._current in ids else 0
        for image_id in ids[start:] + ids[:start]:
            if image_id != self._current and self.project.image(image_id).status == "unlabeled":
                return image_id
        return None

    def image_path(self, image_id: str) -> Path:
        return self.project.image_path(image_id)
