"""Class-table edits of the editing session: add, rename, recolour, reorder, delete + remap.

Deleting a class rewrites every saved mask (its pixels become another class) and remaps
the open documents as one undoable step each. Undoing that step in a document brings the
class back, so the restored pixels stay valid; redoing it deletes the class again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from segstudio.core.classes import ClassDef, ClassTable, Color, voc_color
from segstudio.core.errors import ClassTableError
from segstudio.core.mask_document import MaskDocument

if TYPE_CHECKING:
    from segstudio.ui.project.session import EditingSession


@dataclass(frozen=True)
class DeletedClass:
    """A deletion this session made: enough to put the class back where it was."""

    cls: ClassDef
    position: int
    into: int


class ClassEdits:
    """The session's class operations; each one saves the manifest and updates documents."""

    def __init__(self, session: EditingSession) -> None:
        self._session = session
        self._deleted: dict[str, DeletedClass] = {}

    @property
    def table(self) -> ClassTable:
        return self._session.project.classes

    def _apply(self, table: ClassTable) -> None:
        project = self._session.project
        project.set_classes(table)
        project.save()
        for _, document in self._session.documents():
            document.set_classes(table)
        self._session.classes_changed.emit()

    # -- simple edits --------------------------------------------------------------------------
    def add(self, name: str, color: Color | None = None) -> ClassDef:
        class_id = self.table.next_free_id()
        name = name.strip()
        cls = ClassDef(class_id, name, color or voc_color(class_id))
        table = self.table.with_class(cls)
        if table.ignore_class is not None:
            # keep the ignore class last, where people expect "unlabelled" to sit
            others = [c.id for c in table if not c.ignore]
            table = table.reordered([*others, table.ignore_class.id])
        self._apply(table)
        return cls

    def rename(self, class_id: int, name: str) -> None:
        self._apply(self.table.replaced(class_id, name=name.strip()))

    def recolor(self, class_id: int, color: Color) -> None:
        self._apply(self.table.replaced(class_id, color=tuple(int(c) for c in color)))

    def reorder(self, ids: list[int]) -> None:
        self._apply(self.table.reordered(ids))

    def move(self, class_id: int, offset: int) -> None:
        ids = list(self.table.ids)
        index = ids.index(class_id)
        target = max(0, min(len(ids) - 1, index + offset))
        ids.insert(target, ids.pop(index))
        self.reorder(ids)

    # -- delete with remap ---------------------------------------------------------------------
    def delete(self, class_id: int, into: int) -> list[str]:
        """Delete `class_id`, turning its pixels into `into` everywhere; returns changed ids."""
        table = self.table
        cls = table.by_id(class_id)
        if class_id == into:
            raise ClassTableError("a class cannot be merged into itself; pick another class")
        if into not in table.ids:
            raise ClassTableError(f"class id {into} does not exist; pick one of {list(table.ids)}")
        if cls.ignore:
            raise ClassTableError(
                f"'{cls.name}' is the ignore (unlabelled) class the eraser paints; it cannot be deleted"
            )
        if not self._session.save_all().saved:
            raise ClassTableError("open masks could not be saved; fix that before deleting a class")
        label = f"Delete class '{cls.name}' into '{table.by_id(into).name}'"
        self._deleted[label] = DeletedClass(cls, list(table.ids).index(class_id), into)
        return self._remove(label, class_id, into)

    def _remove(self, label: str, class_id: int, into: int) -> list[str]:
        project = self._session.project
        changed = set(project.remap_class(class_id, into))
        lut = np.arange(256, dtype=np.uint8)
        lut[class_id] = into
        for image_id, document in self._session.documents():
            if np.any(document.mask == class_id) and document.remap(label, lut):
                changed.add(image_id)
                if project.has_mask(image_id):
                    document.mark_saved()  # the saved mask was remapped identically
        self._apply(self.table.without(class_id))
        return sorted(changed)

    def after_step(self, document: MaskDocument, label: str | None, undo: bool) -> None:
        """Called after an undo/redo in `document`: bring a deleted class back, or re-delete."""
        deleted = self._deleted.get(label or "")
        if deleted is None:
            return
        present = deleted.cls.id in self.table.ids
        if undo and not present:
            ids = list(self.table.ids)
            ids.insert(min(deleted.position, len(ids)), deleted.cls.id)
            self._apply(self.table.with_class(deleted.cls).reordered(ids))
        elif not undo and present and deleted.into in self.table.ids:
            self._session.save_all()
            self._remove(label or "", deleted.cls.id, deleted.into)
