"""Three-way merge of manifest states, so no writer's changes are lost to another's save.

`base` is the manifest as this process last read or wrote it, `mine` its in-memory state,
`theirs` the file on disk now. What this process changed since `base` is replayed onto
`theirs`: last writer wins per field (an image's split or status, a setting, a class), every
writer's added images are kept, and a removal wins over a concurrent change of that image.
Callers never record operations by hand: whatever they did to the Project (add_image,
update_image, settings[...] = ..., classes = ...) shows up as a difference from `base`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from segstudio.core.classes import ClassDef, ClassTable
from segstudio.core.errors import ClassTableError

if TYPE_CHECKING:
    from segstudio.core.project import ImageRecord

_MISSING: Any = object()


@dataclass(frozen=True)
class ManifestState:
    """The parts of a manifest writers change. Treat the containers as read-only."""

    name: str
    classes: ClassTable
    images: dict[str, ImageRecord]
    settings: dict[str, Any]

    @classmethod
    def snapshot(cls, name: str, classes: ClassTable, images: dict[str, ImageRecord],
                 settings: dict[str, Any]) -> ManifestState:
        """A copy that later in-place edits of the live objects cannot reach."""
        return cls(name, classes, dict(images), copy.deepcopy(settings))


@dataclass(frozen=True)
class MergeResult:
    """The merged state, and ids of my added images renamed because another writer added
    a different image under the same id meanwhile (old id -> new id)."""

    state: ManifestState
    renamed: dict[str, str] = field(default_factory=dict)


def merge(base: ManifestState, mine: ManifestState, theirs: ManifestState) -> MergeResult:
    """`theirs` with every change `mine` made since `base` replayed onto it."""
    name = mine.name if mine.name != base.name else theirs.name
    settings = _merge_keys(base.settings, mine.settings, theirs.settings)
    classes = _merge_classes(base.classes, mine.classes, theirs.classes)
    images, renamed = _merge_images(base.images, mine.images, theirs.images)
    return MergeResult(ManifestState(name, classes, images, settings), renamed)


def _merge_keys(base: dict[str, Any], mine: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(theirs)
    for key in {*base, *mine}:
        value = mine.get(key, _MISSING)
        if value != base.get(key, _MISSING):
            if value is _MISSING:
                result.pop(key, None)
            else:
                result[key] = copy.deepcopy(value)
    return result


def _merge_classes(base: ClassTable, mine: ClassTable, theirs: ClassTable) -> ClassTable:
    if mine == base:
        return theirs
    if theirs == base:
        return mine
    old = {c.id: c for c in base}
    new = {c.id: c for c in mine}
    result: dict[int, ClassDef] = {c.id: c for c in theirs}
    for class_id in {*old, *new}:
        cls = new.get(class_id)
        if cls != old.get(class_id):
            if cls is None:
                result.pop(class_id, None)
            else:
                result[class_id] = cls
    # Order: mine where I reordered or added, then classes only they have, in their order.
    order = [c.id for c in mine if c.id in result]
    order += [c.id for c in theirs if c.id in result and c.id not in new]
    try:
        return ClassTable(tuple(result[i] for i in order))
    except ClassTableError:
        # Both sides made the table inconsistent together (one name on two ids, two ignore
        # classes): the last writer's whole table wins, as it would have before merging.
        return mine


def _merge_images(base: dict[str, ImageRecord], mine: dict[str, ImageRecord],
                  theirs: dict[str, ImageRecord]) -> tuple[dict[str, ImageRecord], dict[str, str]]:
    result = dict(theirs)
    renamed: dict[str, str] = {}
    for image_id in base:
        if image_id not in mine:
            result.pop(image_id, None)  # my removal wins over their change
    for image_id, record in mine.items():
        before = base.get(image_id)
        if before is not None:
            current = result.get(image_id)
            if record == before or current is None:
                continue  # unchanged by me, or removed by them (their removal wins)
            changes = {f.name: getattr(record, f.name) for f in fields(record)
                       if getattr(record, f.name) != getattr(before, f.name)}
            result[image_id] = replace(current, **changes)
            continue
        current = result.get(image_id)
        if current is None or current.path == record.path:
            result[image_id] = record
        else:  # both added an image under one id: keep both, mine under a new id
            new_id = _free_id(image_id, result, mine)
            renamed[image_id] = new_id
            result[new_id] = replace(record, id=new_id)
    return result, renamed


def _free_id(stem: str, *taken: dict[str, Any]) -> str:
    n = 2
    while any(f"{stem}~{n}" in ids for ids in taken):
        n += 1
    return f"{stem}~{n}"
