"""`images`: folders (searched recursively) or files of unlabelled images.

Any bit depth and channel layout imageio reads (png, jpg, tif, bmp, webp; 8/16-bit; gray,
RGB, RGBA); sizes come from the header after EXIF rotation, so portrait photos stay upright.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from segstudio.core import imageio
from segstudio.core.classes import ClassTable
from segstudio.core.errors import DatasetImportError
from segstudio.core.importers.base import DatasetSource, ImportItem, ImportOptions, Skip
from segstudio.core.importers.common import class_file, source_files


def scan(options: ImportOptions, project_classes: ClassTable | None) -> DatasetSource:
    sources = options.sources or options.images
    if not sources:
        raise DatasetImportError("the images format needs one or more image folders or files")
    # unlabelled images carry no classes of their own: a class file given with them sets the table
    return DatasetSource("images", class_file(options.classes_file), _items(sources, options.split or "unassigned"))


def _items(sources: tuple[Path, ...], split: str) -> Iterator[ImportItem | Skip]:
    for entry in source_files(sources):
        if isinstance(entry, Skip):
            yield entry
        elif imageio.is_image_file(entry):
            yield ImportItem(source=entry, name=entry.stem, image=entry, split=split)
        else:
            suffixes = ", ".join(sorted(imageio.IMAGE_SUFFIXES))
            yield Skip(entry, f"not an image (suffix '{entry.suffix}'); images are {suffixes}")
