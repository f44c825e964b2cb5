"""Values shared by every importer: what an importer yields, and what an import reports.

An importer turns a dataset on disk into a stream of `ImportItem`s (or `Skip`s for files it
could not use). Masks are produced lazily, one item at a time, so a 5000-image import never
holds more than one mask in memory. The driver (driver.py) owns the rest: classes, files,
the transaction and the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segstudio.core.classes import ClassTable
from segstudio.core.imageio import ImageInfo


@dataclass(frozen=True)
class SourceMask:
    """A mask as the dataset stores it: uint8 ids that refer to `classes` (the dataset's own
    table; the driver maps them onto the project's classes by name)."""

    ids: np.ndarray
    classes: ClassTable


# Called with the image header; returns the mask, or None when the image has none.
# Raises a SegstudioError (MaskError, ImageReadError, DatasetImportError) to skip the item.
MaskLoader = Callable[[ImageInfo], "SourceMask | None"]


@dataclass(frozen=True)
class ImportItem:
    """One image to import: a file on disk, or embedded bytes (LabelMe imageData)."""

    source: Path  # the file named in messages (the image, or the JSON that describes it)
    name: str  # the stem the image id is derived from
    image: Path | None = None
    image_bytes: bytes | None = None
    image_suffix: str = ".png"
    split: str = "unassigned"
    load_mask: MaskLoader | None = None


@dataclass(frozen=True)
class Skip:
    """A file the importer could not use, with the reason in words."""

    path: Path
    reason: str


@dataclass(frozen=True)
class DatasetSource:
    """What an importer found: its class table (None when it is inferred mask by mask)
    and the stream of items."""

    format: str
    classes: ClassTable | None
    items: Iterable[ImportItem | Skip]
    parallel: bool = True  # loaders may run ahead on threads (False: they share mutable state)


@dataclass(frozen=True)
class ImportOptions:
    """Everything the `import` command (or the GUI's import dialog) can say."""

    sources: tuple[Path, ...] = ()
    images: tuple[Path, ...] = ()  # folders importer: image folders, paired with `masks`
    masks: tuple[Path, ...] = ()
    splits: tuple[str, ...] = ()  # one per images/masks pair (or one for all)
    split: str | None = None
    classes_file: Path | None = None
    copy: bool = False
    strict: bool = False

    def split_for(self, index: int, default: str = "unassigned") -> str:
        if index < len(self.splits):
            return self.splits[index]
        if len(self.splits) == 1:
            return self.splits[0]
        return self.split or default


@dataclass(frozen=True)
class ImportReport:
    """What came in and what did not: counts, and every skipped file with its reason."""

    project: Path
    format: str
    images: int
    masks: int
    splits: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    new_classes: tuple[str, ...] = ()
    created_project: bool = False
    classes: int = 0  # classes the project has after the import
    warnings: tuple[str, ...] = ()  # imported, but worth knowing (a GeoTIFF without CRS, ...)

    def lines(self) -> list[str]:
        """The report in words, as the CLI prints it."""
        per_split = ", ".join(f"{name} {count}" for name, count in self.splits.items() if count)
        head = f"imported {self.images} images and {self.masks} masks ({self.format}) into {self.project}"
        out = [head + (f" [{per_split}]" if per_split else "")]
        if self.created_project:
            out.append(f"created the project with {self.classes} classes")
        if self.new_classes:
            out.append("new classes: " + ", ".join(self.new_classes))
        out.extend(f"warning: {note}" for note in self.warnings)
        if self.skipped:
            out.append(f"skipped {len(self.skipped)} file(s):")
            out.extend(f"  {path}: {reason}" for path, reason in self.skipped)
        return out

