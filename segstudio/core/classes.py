"""Named, coloured classes and the class table of a project.

A mask pixel holds a class id (0-255). At most one class is the ignore/void class: it
marks unlabelled pixels, is left out of losses and metrics, and is what the eraser paints.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.errors import ClassTableError

Color = tuple[int, int, int]

DEFAULT_IGNORE_ID = 255
DEFAULT_IGNORE_NAME = "unlabeled"
DEFAULT_IGNORE_COLOR: Color = (0, 0, 0)


BACKGROUND_NAMES = ("background", "_background_", "bg", "void", "unlabeled", "unlabelled")
# Class 0 of the VOC map is black, which is also the unlabelled colour: a class of another
# name that would get it is drawn in this red instead, so it never looks unlabelled.
NOT_BLACK: Color = (230, 25, 75)


def default_color(class_id: int, name: str) -> Color:
    """The colour a new class gets: the VOC map's, but black only for a background class."""
    color = voc_color(class_id)
    if color == DEFAULT_IGNORE_COLOR and name.strip().lower() not in BACKGROUND_NAMES:
        return NOT_BLACK
    return color


def voc_color(index: int) -> Color:
    """The Pascal VOC colour map: bits of the index spread over R, G and B from the top."""
    r = g = b = 0
    value = index
    for shift in range(7, -1, -1):
        r |= ((value >> 0) & 1) << shift
        g |= ((value >> 1) & 1) << shift
        b |= ((value >> 2) & 1) << shift
        value >>= 3
    return (r, g, b)


@dataclass(frozen=True)
class ClassDef:
    """One class: its id in the masks, a display name, an RGB colour, and the ignore flag."""

    id: int
    name: str
    color: Color
    ignore: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "color": list(self.color), "ignore": self.ignore}


@dataclass(frozen=True)
class ClassTable:
    """An ordered, validated list of classes with at most one ignore class."""

    classes: tuple[ClassDef, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        ids: set[int] = set()
        names: set[str] = set()
        for cls in self.classes:
            if not 0 <= cls.id <= 255:
                raise ClassTableError(
                    f"class '{cls.name}' has id {cls.id}; ids must be 0-255 (masks are 8-bit)"
                )
            if not cls.name.strip():
                raise ClassTableError(f"class id {cls.id} has an empty name; give it a name")
            if cls.id in ids:
                raise ClassTableError(f"class id {cls.id} is used twice; ids must be unique")
            if cls.name in names:
                raise ClassTableError(f"class name '{cls.name}' is used twice; names must be unique")
            if len(cls.color) != 3 or not all(0 <= int(c) <= 255 for c in cls.color):
                raise ClassTableError(f"class '{cls.name}' has colour {cls.color}; use [R, G, B] 0-255")
            ids.add(cls.id)
            names.add(cls.name)
        if sum(cls.ignore for cls in self.classes) > 1:
            raise ClassTableError("more than one class is marked as ignore; mark at most one")

    # -- lookups ---------------------------------------------------------------------------
    def __iter__(self) -> Iterator[ClassDef]:
        return iter(self.classes)

    def __len__(self) -> int:
        return len(self.classes)

    def by_id(self, class_id: int) -> ClassDef:
        for cls in self.classes:
            if cls.id == class_id:
                return cls
        raise KeyError(class_id)

    def by_name(self, name: str) -> ClassDef:
        for cls in self.classes:
            if cls.name == name:
                return cls
        raise KeyError(name)

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(cls.id for cls in self.classes)

    @property
    def ignore_class(self) -> ClassDef | None:
        return next((cls for cls in self.classes if cls.ignore), None)

    @property
    def ignore_index(self) -> int | None:
        ignore = self.ignore_class
        return None if ignore is None else ignore.id

    @property
    def unlabeled_id(self) -> int:
        """The value the eraser paints and a fresh mask is filled with."""
        ignore = self.ignore_index
        return DEFAULT_IGNORE_ID if ignore is None else ignore

    @property
    def trainable(self) -> tuple[ClassDef, ...]:
        """Classes a model predicts: all but the ignore class."""
        return tuple(cls for cls in self.classes if not cls.ignore)

    def valid_lut(self) -> np.ndarray:
        """A 256-entry bool table: True where a pixel value names a class."""
        lut = np.zeros(256, dtype=bool)
        lut[list(self.ids)] = True
        return lut

    def palette(self) -> list[int]:
        """A flat 768-entry PIL palette: class colours at their ids, grey elsewhere."""
        flat = [0] * 768
        for cls in self.classes:
            flat[cls.id * 3 : cls.id * 3 + 3] = list(cls.color)
        return flat

    def color_lut(self) -> np.ndarray:
        """A (256, 3) uint8 table mapping class id to RGB colour."""
        return np.asarray(self.palette(), dtype=np.uint8).reshape(256, 3)

    def color_to_id(self) -> dict[Color, int]:
        return {tuple(int(c) for c in cls.color): cls.id for cls in self.classes}  # type: ignore[misc]

    # -- edits (return new tables; the table is a value) ---------------------------------
    def with_class(self, cls: ClassDef) -> ClassTable:
        return ClassTable(self.classes + (cls,))

    def replaced(self, class_id: int, **changes: Any) -> ClassTable:
        return ClassTable(tuple(replace(c, **changes) if c.id == class_id else c for c in self.classes))

    def without(self, class_id: int) -> ClassTable:
        return ClassTable(tuple(c for c in self.classes if c.id != class_id))

    def reordered(self, ids: Sequence[int]) -> ClassTable:
        if sorted(ids) != sorted(self.ids):
            raise ClassTableError("a reorder must name every class id exactly once")
        return ClassTable(tuple(self.by_id(i) for i in ids))

    def next_free_id(self) -> int:
        used = set(self.ids)
        for candidate in range(256):
            if candidate not in used:
                return candidate
        raise ClassTableError("all 256 class ids are in use; delete a class first")

    def ensure_ignore(self) -> ClassTable:
        """This table, with a default 'unlabeled' ignore class added if it has none."""
        if self.ignore_class is not None:
            return self
        if DEFAULT_IGNORE_ID in self.ids:
            raise ClassTableError(
                "no ignore class is marked and id 255 is taken; mark one class as ignore"
            )
        return self.with_class(
            ClassDef(DEFAULT_IGNORE_ID, DEFAULT_IGNORE_NAME, DEFAULT_IGNORE_COLOR, ignore=True)
        )

    # -- (de)serialisation ---------------------------------------------------------------
    def to_list(self) -> list[dict[str, Any]]:
        return [cls.to_dict() for cls in self.classes]

    @classmethod
    def from_list(cls, items: Iterable[Any], ignore_index: int | None = None) -> ClassTable:
        defs = []
        for position, item in enumerate(items):
            if not isinstance(item, dict):
                raise ClassTableError(f"class entry {position} is not an object: {item!r}")
            try:
                class_id = int(item["id"]) if "id" in item else position
                name = str(item["name"])
                color_raw = item.get("color") or default_color(class_id, str(name))
                color = tuple(int(c) for c in color_raw)
            except (KeyError, TypeError, ValueError) as exc:
                raise ClassTableError(
                    f"class entry {position} ({item!r}) needs 'name', and 'id'/'color' must be numbers"
                ) from exc
            ignore = bool(item.get("ignore", False)) or (ignore_index is not None and class_id == ignore_index)
            defs.append(ClassDef(class_id, name, color, ignore))  # type: ignore[arg-type]
        return cls(tuple(defs))

    @classmethod
    def from_names(cls, names: Sequence[str], ignore: str | None = None) -> ClassTable:
        """Classes 0..n-1 in VOC colours; a name equal to `ignore` becomes the ignore class."""
        return cls(
            tuple(ClassDef(i, name, default_color(i, name), ignore=(name == ignore)) for i, name in enumerate(names))
        )

    @classmethod
    def from_ids(cls, ids: Iterable[int]) -> ClassTable:
        """Classes inferred from the ids found in masks; 255 is taken as void, as in VOC."""
        defs = []
        for class_id in sorted(set(int(i) for i in ids)):
            if class_id == DEFAULT_IGNORE_ID:
                defs.append(ClassDef(class_id, DEFAULT_IGNORE_NAME, DEFAULT_IGNORE_COLOR, ignore=True))
            else:
                defs.append(ClassDef(class_id, f"class_{class_id}", voc_color(class_id)))
        return cls(tuple(defs))


def load_class_file(path: str | Path) -> ClassTable:
    """Read classes.json (`{"ignore_index": n, "classes": [...]}` or a bare list) or labels.txt.

    labels.txt holds one name per line, id = line number; `__ignore__` or `_background_`
    lines follow LabelMe's convention (ignore, and background = 0).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ClassTableError(f"cannot read class file {path}: {exc.strerror or exc}") from exc
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ClassTableError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from exc
        if isinstance(data, dict):
            items = data.get("classes")
            ignore = data.get("ignore_index")
            if not isinstance(items, list):
                raise ClassTableError(f"{path} needs a 'classes' list of {{id, name, color}} objects")
            if ignore is not None and not isinstance(ignore, int):
                raise ClassTableError(f"{path}: 'ignore_index' must be a whole number")
            return ClassTable.from_list(items, ignore_index=ignore)
        if isinstance(data, list):
            return ClassTable.from_list(data)
        raise ClassTableError(f"{path} must hold a list of classes or an object with 'classes'")
    return parse_labels(text.splitlines(), source=str(path))


def parse_labels(lines: Iterable[str], source: str = "labels") -> ClassTable:
    """Names one per line (labels.txt, or a comma list split by the caller)."""
    names = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not names:
        raise ClassTableError(f"{source} names no classes; write one class name per line")
    defs: list[ClassDef] = []
    next_id = 0
    for name in names:
        if name == "__ignore__":
            defs.append(ClassDef(DEFAULT_IGNORE_ID, DEFAULT_IGNORE_NAME, DEFAULT_IGNORE_COLOR, True))
            continue
        if name == "_background_":
            name = "background"
        defs.append(ClassDef(next_id, name, default_color(next_id, name)))
        next_id += 1
    return ClassTable(tuple(defs))
