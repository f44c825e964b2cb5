"""`voc` export: the Pascal VOC segmentation layout.

    OUT/JPEGImages/<id>.<ext>          the image bytes as they are (not re-encoded to JPEG)
    OUT/SegmentationClass/<id>.png     palette PNG, pixel = class id, palette = class colours
    OUT/ImageSets/Segmentation/train.txt, val.txt, trainval.txt, test.txt
    OUT/classes.json                   the class table, so `import --format voc` is exact
"""

from __future__ import annotations

from segstudio.core.atomic import atomic_write_text
from segstudio.core.exporters.common import (
    ExportRun,
    write_classes,
    write_image_mask_pairs,
    write_split_lists,
)


def export_voc(run: ExportRun) -> None:
    write_image_mask_pairs(run, "JPEGImages", "SegmentationClass")
    sets = run.out / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True, exist_ok=True)
    write_split_lists(sets, run.done)
    trainval = sorted(r.id for r in run.done if r.split in ("train", "val"))
    if any(r.split == "train" for r in run.done) and any(r.split == "val" for r in run.done):
        atomic_write_text(sets / "trainval.txt", "\n".join(trainval) + "\n")
    write_classes(run.out, run.project.classes)
