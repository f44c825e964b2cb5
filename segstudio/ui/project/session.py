"""The editing session: which image is open, its MaskDocument, undo/redo and loading.

Documents of recently visited images stay alive (core.navigation.DocumentCache) so an
image's undo history survives switching away and back; a dirty document is saved before
it is evicted. Saving and status moves belong to the MaskStore (persistence.py); reading
and salvaging masks to core.mask_loading. A big image loads on a pool thread (ui.jobs)
and is applied on the UI thread. The first open of a gigapixel file without a pyramid builds
one (minutes for a 50k strip TIFF): `load_progress` reports it and `cancel_loading()`, or
asking for another image, stops it (the levels finished so far are kept for next time).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QThreadPool, Signal

from segstudio.core import display, gigapixel_project, mask_loading, navigation
from segstudio.core.errors import SegstudioError
from segstudio.core.gigapixel import GigapixelImage, PyramidBuildCancelled
from segstudio.core.mask_document import MaskDocument
from segstudio.core.mask_loading import LoadedImage, LoadRequests
from segstudio.core.navigation import CACHE_SIZE, DocumentCache, OpenImage
from segstudio.core.project import Project
from segstudio.core.recovery import RecoveryJournal
from segstudio.core.region import Region
from segstudio.core.saving import SaveResult
from segstudio.core.tiled_mask import DirtyChunks
from segstudio.ui.annotate.class_edits import ClassEdits
from segstudio.ui.jobs import Job, JobCancelled, error_text, run_in_background
from segstudio.ui.project.mask_writer import MaskWriter
from segstudio.ui.project.persistence import MaskStore


class EditingSession(QObject):
    """Owns the open project's documents; the window and autosave talk to it."""

    image_opened = Signal(str)
    loading = Signal(str)
    load_progress = Signal(str, float)  # image id, fraction of its pyramid built (first open only)
    load_ended = Signal(str)  # image id: its background load arrived, failed or was cancelled
    edited = Signal(str)
    status_changed = Signal(str, str)
    saved = Signal(str)
    dirty_changed = Signal(bool)
    classes_changed = Signal()
    message = Signal(str)
    conflict = Signal(str, str)  # image id, message: its mask changed on disk (see MaskStore)

    def __init__(self, project: Project, journal: RecoveryJournal | None = None,
                 cache_size: int = CACHE_SIZE, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project = project
        self.journal = journal if journal is not None else RecoveryJournal(project.root)
        self._cache = DocumentCache(cache_size)
        self._requests = LoadRequests()
        self._load_job: Job[LoadedImage] | None = None  # the background load in flight, if any
        self._load_job_id: str | None = None
        self._load_serial = 0  # tells the load in flight from stopped ones still finishing
        self._was_dirty = False
        self.classes = ClassEdits(self)
        self._pool = QThreadPool(self)  # its own: other jobs in the global pool never delay a load
        self._pool.setMaxThreadCount(2)
        self.store = MaskStore(project, self.journal, self._cache, self)
        self.store.saved.connect(self.saved)
        self.store.saved.connect(self._on_store_saved)
        self.store.status_changed.connect(self.status_changed)
        self.store.message.connect(self.message)
        self.store.conflict.connect(self.conflict)

    # -- state -----------------------------------------------------------------------------------
    @property
    def cache_size(self) -> int:
        return self._cache.capacity

    @property
    def writer(self) -> MaskWriter:
        return self.store.writer

    @property
    def current_id(self) -> str | None:
        return self._cache.current

    @property
    def document(self) -> MaskDocument | None:
        entry = self._cache.current_entry
        return None if entry is None else entry.document

    @property
    def image(self) -> np.ndarray | GigapixelImage | None:
        entry = self._cache.current_entry
        return None if entry is None else entry.image

    def documents(self) -> list[tuple[str, MaskDocument]]:
        return [(entry.image_id, entry.document) for entry in self._cache]

    def open_ids(self) -> list[str]:
        return self._cache.ids()

    def has_unsaved(self) -> bool:
        return any(entry.document.dirty for entry in self._cache)

    # -- loading ---------------------------------------------------------------------------------
    def load(self, image_id: str) -> LoadedImage:
        """Read an image and its mask (thread-safe; see core.mask_loading.load_image)."""
        return mask_loading.load_image(self.project, image_id)

    def open_image(self, image_id: str, background: bool | None = None) -> bool:
        """Make `image_id` current, saving the image left behind; False if it cannot open.

        With background=None, images above BACKGROUND_PIXELS load on the thread pool and the
        switch happens when they arrive (True is returned then, `loading` is emitted).
        """
        if image_id == self._cache.current:
            self._stop_load(keep=None)  # back to the open image: a load of another is unwanted
            return True
        if image_id in self._cache:
            self._requests.forget()  # a slower background load must not take over later
            self._stop_load(keep=None)
            self._switch_to(image_id)
            return True
        try:
            record = self.project.image(image_id)
        except SegstudioError as exc:
            self.message.emit(str(exc))
            return False
        if background is None:
            background = mask_loading.loads_in_background(record)
        self._requests.want(image_id)
        self._stop_load(keep=image_id if background else None)  # a pyramid nobody waits for stops
        if background:
            if self._load_job is not None:  # already on its way
                return True
            self.loading.emit(image_id)
            self._load_serial += 1
            serial = self._load_serial
            self._load_job_id = image_id
            self._load_job = run_in_background(
                partial(_load_on_worker, self.project, image_id), partial(self._on_load_done, serial),
                partial(self._on_load_failed, image_id, serial),
                on_progress=partial(self._on_load_progress, image_id, serial), pool=self._pool, owner=self)
            return True
        try:
            loaded = self.load(image_id)
        except (SegstudioError, OSError, ValueError, MemoryError) as exc:
            self._requests.forget()
            self.message.emit(f"cannot open '{image_id}': {exc}")
            return False
        self.activate(loaded)
        return True

    @property
    def loading_id(self) -> str | None:
        """The image whose background load is in flight (None when none is)."""
        return self._load_job_id

    def cancel_loading(self) -> bool:
        """Stop the background load in flight (a pyramid being built stops between bands;
        what is finished is kept and the next open continues it). False if none was."""
        image_id = self._load_job_id
        if image_id is None:
            return False
        self._requests.forget()
        self._stop_load(keep=None)
        self.message.emit(f"stopped opening '{image_id}'; open it again to continue building its "
                          "overview pyramid")
        return True

    def _stop_load(self, keep: str | None) -> None:
        """Cancel the load in flight unless it is of `keep`; its result is then dropped."""
        job, image_id = self._load_job, self._load_job_id
        if job is None or image_id == keep:
            return
        job.cancel()
        self._load_job = self._load_job_id = None
        self.load_ended.emit(image_id)

    def _finished(self, serial: int) -> bool:
        """A background load ended: True if it is the one in flight (not a stopped one)."""
        if serial != self._load_serial or self._load_job is None:
            return False
        image_id = self._load_job_id
        self._load_job = self._load_job_id = None
        self.load_ended.emit(image_id)
        return True

    def _on_load_progress(self, image_id: str, serial: int, fraction: float) -> None:
        if serial == self._load_serial and self._load_job is not None:
            self.load_progress.emit(image_id, float(fraction))

    def _on_load_done(self, serial: int, loaded: LoadedImage) -> None:
        # A later request wins over a slow load: a stopped one is dropped.
        if self._finished(serial) and self._requests.arrived(loaded.image_id):
            self.activate(loaded)
        elif isinstance(loaded.image, GigapixelImage):  # nobody wants it now: give its file back
            loaded.image.close()

    def _on_load_failed(self, image_id: str, serial: int, exc: BaseException) -> None:
        if not self._finished(serial) or not self._requests.arrived(image_id):
            return
        if isinstance(exc, (JobCancelled, PyramidBuildCancelled)):
            self.message.emit(f"stopped opening '{image_id}'; open it again to continue")
        else:
            self.message.emit(f"cannot open '{image_id}': {error_text(exc)}")

    def activate(self, loaded: LoadedImage) -> None:
        """Turn a loaded image into an open document and make it current (UI thread)."""
        self._requests.forget()
        document = MaskDocument(loaded.mask, self.project.classes)
        entry = OpenImage(loaded.image_id, document, loaded.image, mask_rejected=loaded.mask_rejected)
        entry.listener = partial(self._on_document_changed, loaded.image_id)
        document.add_listener(entry.listener)
        if isinstance(loaded.image, GigapixelImage):
            entry.chunks = DirtyChunks()  # saved by chunk: only what changed is written
            document.add_listener(entry.chunks)
        self._cache.add(entry)
        self._switch_to(loaded.image_id)
        if loaded.note:
            self.message.emit(loaded.note)

    def _switch_to(self, image_id: str) -> None:
        previous = self._cache.current
        if previous is not None and previous != image_id:
            self.store.save(previous, background=True)  # failures are reported by the store
        entry = self._cache.make_current(image_id)
        if entry.image is None:
            try:
                entry.image = self._read_pixels(entry)
            except SegstudioError as exc:
                self.message.emit(f"cannot read '{image_id}': {exc}")
                entry.image = np.zeros((*entry.document.shape, 3), np.uint8)
        held = [e.image for e in self._cache if isinstance(e.image, GigapixelImage)]
        self._cache.drop_old_pixels()
        for evicted in self._cache.evict(lambda old: self.store.save(old.image_id).saved):
            evicted.document.remove_listener(evicted.listener)
        kept = {id(e.image) for e in self._cache}
        for image in held:  # a gigapixel image no longer held gives its file back
            if id(image) not in kept:
                image.close()
        self.image_opened.emit(image_id)

    def _read_pixels(self, entry: OpenImage) -> np.ndarray | GigapixelImage:
        if entry.chunks is not None:
            return gigapixel_project.open_image(self.project, entry.image_id)
        return self.project.read_image(entry.image_id)

    def redisplay(self, current: np.ndarray | None = None) -> None:
        """The display mapping changed: the current image's pixels become `current` (or are
        re-read); the other open images are re-read when next shown. A gigapixel image
        keeps its file open and takes the new mapping for the tiles it reads next."""
        mapping = display.mapping_of(self.project.settings)
        for entry in self._cache:
            if isinstance(entry.image, GigapixelImage):
                entry.image.mapping = mapping
            elif entry.image_id != self._cache.current:
                entry.image = None
            elif entry.image is not None:
                entry.image = current if current is not None else self.project.read_image(entry.image_id)

    def close_all(self) -> SaveResult:
        """Save everything and forget all documents; nothing is forgotten unless all saved."""
        self._requests.forget()
        self._stop_load(keep=None)  # a pyramid being built for this session stops
        result = self.store.save_all()
        self.store.wait()
        if result.saved:
            for entry in self._cache.clear():
                entry.document.remove_listener(entry.listener)
                if isinstance(entry.image, GigapixelImage):
                    entry.image.close()
        return result

    # -- edits -------------------------------------------------------------------------------------
    def _on_document_changed(self, image_id: str, _region: Region) -> None:
        self.store.note_edit(image_id)
        self.edited.emit(image_id)
        self._emit_dirty()

    def _on_store_saved(self, _image_id: str) -> None:
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

    # -- saving and status (the MaskStore does the work) -----------------------------------------
    def save(self, image_id: str | None = None, background: bool = False) -> SaveResult:
        """Save one document (default: the current one); see MaskStore.save."""
        return self.store.save(image_id or self._cache.current, background)

    def save_all(self, background: bool = False) -> SaveResult:
        return self.store.save_all(background)

    def write_journal(self) -> int:
        return self.store.write_journal(self._cache)

    def journal_pending(self) -> bool:
        """Whether some unsaved edit is not in the recovery journal yet (a write failed)."""
        return any(entry.document.dirty and entry.document.revision != entry.journaled_revision
                   for entry in self._cache)

    @property
    def read_only(self) -> bool:
        return self.store.read_only

    def set_read_only(self, on: bool) -> None:
        self.store.read_only = on

    def keep_mine(self, image_id: str) -> SaveResult:
        """Answer a mask conflict: save the open mask, theirs kept in .conflicts/."""
        return self.store.keep_mine(image_id)

    def load_theirs(self, image_id: str) -> bool:
        """Answer a mask conflict: show the mask on disk (undo brings mine back)."""
        return self.store.load_theirs(image_id)

    def reload_clean(self, image_id: str) -> bool:
        """A mask changed on disk while ours had no unsaved edits: follow it quietly."""
        entry = self._cache.get(image_id)
        return entry is not None and not entry.document.dirty and self.store.load_theirs(image_id)

    def set_status(self, status: str, image_id: str | None = None) -> bool:
        image_id = image_id or self._cache.current
        return image_id is not None and self.store.set_status(image_id, status)

    def mark_done(self, reviewed: bool = False) -> bool:
        """Save the current mask and mark it labeled (or reviewed)."""
        current = self._cache.current
        return current is not None and self.store.mark_done(current, reviewed)

    # -- navigation --------------------------------------------------------------------------------
    def _ids(self, order: list[str] | None) -> list[str]:
        return order if order is not None else [rec.id for rec in self.project.images]

    def neighbor_id(self, step: int, order: list[str] | None = None) -> str | None:
        """The image `step` places from the current one in `order` (default: the project's)."""
        return navigation.neighbor_id(self._ids(order), self._cache.current, step)

    def next_unlabeled_id(self, order: list[str] | None = None) -> str | None:
        """The next image after the current one (wrapping) whose status is unlabeled."""
        return navigation.next_unlabeled_id(self._ids(order), self._cache.current,
                                            lambda image_id: self.project.image(image_id).status)

    def image_path(self, image_id: str) -> Path:
        return self.project.image_path(image_id)


def _load_on_worker(project: Project, image_id: str, job: Job[LoadedImage]) -> LoadedImage:
    shown = -1

    def progress(fraction: float) -> None:  # whole percents only: the UI thread is not flooded
        nonlocal shown
        percent = int(fraction * 100)
        if percent != shown:
            shown = percent
            job.progress(fraction)

    return mask_loading.load_image(project, image_id, progress=progress, cancelled=lambda: job.cancelled)
