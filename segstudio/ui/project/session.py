"""The editing session: which image is open, its MaskDocument, undo/redo and loading.

Documents of recently visited images stay alive (core.navigation.DocumentCache) so an
image's undo history survives switching away and back; a dirty document is saved before
it is evicted. Saving and status moves belong to the MaskStore (persistence.py); reading
and salvaging masks to core.mask_loading. A big image loads on a pool thread (ui.jobs)
and is applied on the UI thread.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QThreadPool, Signal

from segstudio.core import display, gigapixel_project, mask_loading, navigation
from segstudio.core.errors import SegstudioError
from segstudio.core.gigapixel import GigapixelImage
from segstudio.core.mask_document import MaskDocument
from segstudio.core.mask_loading import LoadedImage, LoadRequests
from segstudio.core.navigation import CACHE_SIZE, DocumentCache, OpenImage
from segstudio.core.project import Project
from segstudio.core.recovery import RecoveryJournal
from segstudio.core.region import Region
from segstudio.core.saving import SaveResult
from segstudio.core.tiled_mask import DirtyChunks
from segstudio.ui.annotate.class_edits import ClassEdits
from segstudio.ui.jobs import Job, error_text, run_in_background
from segstudio.ui.project.mask_writer import MaskWriter
from segstudio.ui.project.persistence import MaskStore


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
    conflict = Signal(str, str)  # image id, message: its mask changed on disk (see MaskStore)

    def __init__(self, project: Project, journal: RecoveryJournal | None = None,
                 cache_size: int = CACHE_SIZE, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project = project
        self.journal = journal if journal is not None else RecoveryJournal(project.root)
        self._cache = DocumentCache(cache_size)
        self._requests = LoadRequests()
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
            return True
        if image_id in self._cache:
            self._requests.forget()  # a slower background load must not take over later
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
        if background:
            self.loading.emit(image_id)
            run_in_background(partial(_load_on_worker, self.project, image_id), self._on_load_done,
                              partial(self._on_load_failed, image_id), pool=self._pool)
            return True
        try:
            loaded = self.load(image_id)
        except (SegstudioError, OSError, ValueError, MemoryError) as exc:
            self._requests.forget()
            self.message.emit(f"cannot open '{image_id}': {exc}")
            return False
        self.activate(loaded)
        return True

    def _on_load_done(self, loaded: LoadedImage) -> None:
        if self._requests.arrived(loaded.image_id):  # a later request wins over a slow load
            self.activate(loaded)

    def _on_load_failed(self, image_id: str, exc: BaseException) -> None:
        if self._requests.arrived(image_id):
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


def _load_on_worker(project: Project, image_id: str, _job: Job[LoadedImage]) -> LoadedImage:
    return mask_loading.load_image(project, image_id)
