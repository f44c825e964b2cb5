"""`cityscapes` export: leftImg8bit/<split>/segstudio/ + gtFine/<split>/segstudio/.

Masks are written as `<id>_gtFine_labelIds.png` (8-bit grayscale). A project whose classes
are Cityscapes' 19 train classes (as `import --format cityscapes` makes them) gets the real
Cityscapes label ids (ignore -> 0 "unlabeled"); any other project gets its own class ids
and a classes.json beside, which `import --format cityscapes` reads back exactly.
"""

from __future__ import annotations

import contextlib

import numpy as np

from segstudio.core.classes import ClassTable
from segstudio.core.exporters.common import (
    CLASSES_FILE,
    ExportRun,
    copy_image,
    write_classes,
    write_gray_png,
    write_split_lists,
)
from segstudio.core.importers.cityscapes import TRAIN_CLASSES

CITY = "segstudio"


def train_to_label_lut(classes: ClassTable) -> np.ndarray | None:
    """trainId -> labelId if the project's classes are Cityscapes' own, else None."""
    lut = np.zeros(256, dtype=np.uint8)
    by_train_id = {train_id: (name, label_id) for label_id, train_id, name, _ in TRAIN_CLASSES}
    for cls in classes:
        if cls.ignore:
            if cls.id != 255:
                return None
            continue
        entry = by_train_id.get(cls.id)
        if entry is None or entry[0] != cls.name:
            return None
        lut[cls.id] = entry[1]
    return lut


def export_cityscapes(run: ExportRun) -> None:
    classes = run.project.classes
    lut = train_to_label_lut(classes)
    for record, mask in run.masks():
        suffix = run.project.image_path(record).suffix.lower()
        image_dir = run.out / "leftImg8bit" / record.split / CITY
        label_dir = run.out / "gtFine" / record.split / CITY
        copy_image(run.project, record, image_dir / f"{record.id}_leftImg8bit{suffix}")
        write_gray_png(label_dir / f"{record.id}_gtFine_labelIds.png", mask if lut is None else lut[mask])
    if lut is None:
        write_classes(run.out, classes)
    else:
        with contextlib.suppress(FileNotFoundError):
            (run.out / CLASSES_FILE).unlink()
    write_split_lists(run.out, run.done)
