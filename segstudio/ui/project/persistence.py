"""MaskStore: every way an open mask reaches the disk, and every image status move.

Three roads: a synchronous atomic write (explicit save, mark done, switching images),
a queued write of a big mask on the writer's single ordered thread (autosave), and the
recovery journal. Each save answers with a SaveResult (saved / queued / deferred / failed)
so callers know what actually happened. Status moves (unlabeled -> in_progress on the
first edit, labeled / reviewed / predicted when set) happen here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PySide6.QtCore import QObject, Signal

from segstudio.core import gigapixel_project, saving
from segstudio.core.errors import MaskConflictError, SegstudioError
from segstudio.core.mask_loading import keep_rejected
from segstudio.core.navigation import DocumentCache, OpenImage
from segstudio.core.project import Project
from segstudio.core.recovery import RecoveryJournal
from segstudio.core.saving import SaveAction, SaveResult
from segstudio.ui.jobs import error_text
from segstudio.ui.project.mask_writer import MaskWriter

# Read at call time (tests shrink it so every mask counts as big).
BACKGROUND_SAVE_PIXELS = saving.BACKGROUND_SAVE_PIXELS


class MaskStore(QObject):
    """Saves the documents of a DocumentCache; its signals are re-emitted by the session."""

    saved = Signal(str)  # image id: its mask (some revision of it) is on disk
    status_changed = Signal(str, str)
    message = Signal(str)
    # image id, message: its mask changed on disk under us; answer with keep_mine/load_theirs
    conflict = Signal(str, str)

    def __init__(self, project: Project, journal: RecoveryJournal, cache: DocumentCache,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project = project
        self.journal = journal
        self.cache = cache
        self.writer = MaskWriter(project, journal, self)
        # Read-only (another window holds the project and the user chose to only look):
        # nothing is written, not even the journal.
        self.read_only = False

    # -- saving --------------------------------------------------------------------------------
    def save(self, image_id: str | None, background: bool = False) -> SaveResult:
        """Save one open document if it has unsaved changes.

        With `background`, a big mask is copied and queued on the writer thread (`saved`
        follows), and a document mid-stroke is deferred rather than cut in two.
        """
        entry = self.cache.get(image_id)
        if entry is None:
            return saving.SAVED
        document = entry.document
        if self.read_only and document.dirty:
            return SaveResult.failed("the project is open read-only; nothing is saved")
        if entry.chunks is not None:
            # A gigapixel mask saves its changed chunks now (milliseconds), never a copy of
            # the whole mask on the writer thread; mid-stroke in the background it waits.
            if not document.dirty:
                return saving.SAVED
            if background and document.in_stroke:
                return saving.DEFERRED
            return self.write(entry, None)
        action = saving.plan_save(
            dirty=document.dirty, in_stroke=document.in_stroke,
            pixels=document.shape[0] * document.shape[1], background=background,
            rejected=entry.mask_rejected, in_flight=self.writer.saving(entry.image_id),
            threshold=BACKGROUND_SAVE_PIXELS)
        if action is SaveAction.NOTHING:
            return saving.SAVED
        if action is SaveAction.DEFER:
            return saving.DEFERRED
        if action is SaveAction.QUEUE:
            self.writer.save(entry.image_id, np.array(document.mask), document.revision,
                             self._on_writer_saved, self._on_writer_failed)
            return saving.QUEUED
        return self.write(entry, None)

    def save_all(self, background: bool = False) -> SaveResult:
        return SaveResult.combine([self.save(entry.image_id, background) for entry in self.cache])

    def write(self, entry: OpenImage, status: str | None) -> SaveResult:
        """Write `entry`'s mask now (after any queued write of it), optionally with a status."""
        image_id, document = entry.image_id, entry.document
        self.writer.wait()  # a queued background save must not land after this one
        document.end_stroke()
        try:
            if entry.chunks is not None:
                self._write_chunks(entry)
            else:
                if entry.mask_rejected:
                    keep_rejected(self.project.mask_path(image_id))
                    entry.mask_rejected = False
                self.project.write_mask(image_id, np.array(document.mask), save_manifest=False)
            if status is not None:
                self.project.update_image(image_id, status=status)
            self.project.save()
        except (SegstudioError, OSError) as exc:
            return self._failed(image_id, exc)
        document.mark_saved()
        self.journal.discard(image_id)
        entry.journaled_revision = -1
        self.saved.emit(image_id)
        if status is not None:
            self.status_changed.emit(image_id, status)
        return saving.SAVED

    def _write_chunks(self, entry: OpenImage) -> None:
        """The chunks changed since the last save; on failure they stay due for the next."""
        assert entry.chunks is not None
        keys = entry.chunks.take()
        try:
            gigapixel_project.save_chunks(self.project, entry.image_id, entry.document.mask, keys)
        except BaseException:
            entry.chunks.keys |= keys
            raise

    def write_closed(self, image_id: str, mask: np.ndarray, status: str) -> SaveResult:
        """Write a mask for an image that is not open (a pre-label) together with its status."""
        try:
            self.project.write_mask(image_id, mask, status=status)
        except (SegstudioError, OSError) as exc:
            return self._failed(image_id, exc)
        self.status_changed.emit(image_id, status)
        return saving.SAVED

    def _failed(self, image_id: str, exc: BaseException) -> SaveResult:
        text = error_text(exc)
        self.message.emit(f"could not save '{image_id}': {text}")
        if isinstance(exc, MaskConflictError):
            self.conflict.emit(image_id, text)  # the user decides whose mask wins
        return SaveResult.failed(text)

    def _on_writer_saved(self, image_id: str, revision: int) -> None:
        entry = self.cache.get(image_id)
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

    def _on_writer_failed(self, image_id: str, _revision: int, exc: BaseException) -> None:
        self._failed(image_id, exc)

    def _on_writer_journal_failed(self, image_id: str, _revision: int, exc: BaseException) -> None:
        entry = self.cache.get(image_id)
        if entry is not None:
            entry.journaled_revision = -1  # not in the journal after all: the next tick retries
        self.message.emit(error_text(exc))

    # -- answering a mask conflict -------------------------------------------------------------
    def keep_mine(self, image_id: str) -> SaveResult:
        """Write the open document over theirs; theirs is copied to .conflicts/ first."""
        entry = self.cache.get(image_id)
        if entry is None:
            return saving.SAVED
        self.writer.wait()
        entry.document.end_stroke()
        try:
            kept = self.project.keep_mine(image_id, np.array(entry.document.mask), save_manifest=False)
            self.project.save()
        except (SegstudioError, OSError) as exc:
            return self._failed(image_id, exc)
        entry.document.mark_saved()
        self.journal.discard(image_id)
        entry.journaled_revision = -1
        where = f"; theirs is kept as {kept.relative_to(self.project.root)}" if kept else ""
        self.message.emit(f"kept your mask of '{image_id}'{where}")
        self.saved.emit(image_id)
        return saving.SAVED

    def load_theirs(self, image_id: str) -> bool:
        """Show the mask on disk now in the open document, as one undoable step (undo brings
        mine back, unsaved)."""
        entry = self.cache.get(image_id)
        if entry is None:
            return False
        self.writer.wait()
        document = entry.document
        document.end_stroke()
        try:
            theirs = self.project.load_theirs(image_id)
            if theirs is None:  # they deleted it
                theirs = self.project.blank_mask(image_id)
            document.replace_all("load their mask", theirs)
        except (SegstudioError, OSError) as exc:
            self.message.emit(f"cannot load the other mask of '{image_id}': {error_text(exc)}")
            return False
        document.mark_saved()  # equal to the file on disk now
        self.journal.discard(image_id)
        entry.journaled_revision = -1
        self.message.emit(f"loaded the mask of '{image_id}' as saved by the other program")
        self.saved.emit(image_id)
        return True

    # -- the recovery journal ------------------------------------------------------------------
    def write_journal(self, entries: Iterable[OpenImage]) -> int:
        """Journal each dirty document changed since it was last journalled; returns how many."""
        written = 0
        if self.read_only:
            return written
        for entry in entries:
            document = entry.document
            if not document.dirty or document.revision == entry.journaled_revision:
                continue
            if entry.chunks is not None:
                # Not journalled (a whole-mask copy would be gigabytes): its saves are by
                # chunk and fast, so autosave writes it to the project instead.
                if not document.in_stroke:
                    self.save(entry.image_id)
                continue
            status = self.project.image(entry.image_id).status
            mask = np.array(document.mask)
            if mask.size >= BACKGROUND_SAVE_PIXELS:
                self.writer.record(entry.image_id, mask, document.revision, status,
                                   self._on_writer_journal_failed)
            else:
                try:
                    self.journal.record(entry.image_id, mask, document.revision, status, self.project)
                except SegstudioError as exc:
                    self.message.emit(str(exc))
                    return written
            entry.journaled_revision = document.revision
            written += 1
        return written

    # -- image status --------------------------------------------------------------------------
    def note_edit(self, image_id: str) -> None:
        """An image's mask was edited: move it to in_progress if the rule says so (the
        manifest is written with the next save)."""
        moved = saving.status_after_edit(self.project.image(image_id).status)
        if moved is not None:
            self.project.update_image(image_id, status=moved)
            self.status_changed.emit(image_id, moved)

    def set_status(self, image_id: str, status: str) -> bool:
        """Save an open image first, then set and save its status; False if either failed."""
        if image_id in self.cache and not self.save(image_id).saved:
            return False
        try:
            self.project.update_image(image_id, status=status)
            self.project.save()
        except SegstudioError as exc:
            self.message.emit(str(exc))
            return False
        self.status_changed.emit(image_id, status)
        return True

    def mark_done(self, image_id: str, reviewed: bool) -> bool:
        """Save the mask and mark the image labeled (or reviewed); a done image with nothing
        painted still gets its (unlabelled) mask written."""
        status = saving.done_status(reviewed)
        entry = self.cache.get(image_id)
        if entry is not None and not self.project.has_mask(image_id):
            return self.write(entry, status).saved
        return self.set_status(image_id, status)

    def wait(self, msecs: int = -1) -> bool:
        return self.writer.wait(msecs)
