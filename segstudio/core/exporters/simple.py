"""`masks`, `color` and `overlay` exports: one PNG per image plus split lists.

    masks/   OUT/images/<id>.<ext> (copied), OUT/masks/<id>.png (palette PNG, pixel = class
             id), OUT/classes.json, OUT/train.txt ... -> `segstudio import --format folders OUT`;
             a gigapixel image's mask is OUT/masks/<id>.tif instead, a tiled palette TIFF
             written tile by tile (core/exporters/tiled.py)
    color/   OUT/color/<id>.png, RGB class colours (for viewing; ids are not recoverable
             where two classes share a colour), OUT/classes.json and split lists
    overlay/ OUT/overlay/<id>.png, the image blended with its mask colours
color and overlay leave gigapixel images out (a PNG of that size opens nowhere), each with
a reason in the report naming --format geotiff.
"""

from __future__ import annotations

from segstudio.core import imageio
from segstudio.core.exporters.common import (
    ExportRun,
    write_classes,
    write_image_mask_pairs,
    write_split_lists,
)


def export_masks(run: ExportRun) -> None:
    write_image_mask_pairs(run, "images", "masks", tiled_masks=True)
    write_classes(run.out, run.project.classes)
    write_split_lists(run.out, run.done)


def export_color(run: ExportRun) -> None:
    classes = run.project.classes
    for record, mask in run.masks(need_image=False):
        imageio.write_rgb_png(run.out / "color" / f"{record.id}.png", imageio.colorize(mask, classes))
    write_classes(run.out, classes)
    write_split_lists(run.out, run.done)


def export_overlay(run: ExportRun, alpha: float = 0.5) -> None:
    classes = run.project.classes
    for record, mask in run.masks():
        image = run.project.read_image(record)
        imageio.write_rgb_png(run.out / "overlay" / f"{record.id}.png", imageio.overlay(image, mask, classes, alpha))
    write_split_lists(run.out, run.done)
