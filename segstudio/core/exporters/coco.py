"""`coco` export: one instances JSON per split with one RLE annotation per class and image.

    OUT/images/<id>.<ext>                   the image bytes as they are
    OUT/annotations/instances_<split>.json  COCO: images, categories, annotations (RLE)

Categories are the project's classes without the ignore class, with COCO-style ids 1..N.
Ignore pixels are left out (COCO readers see them as unannotated). A `segstudio` key records
the class table and the category -> class map, so `import --format coco` gives back the
exact masks; other COCO readers ignore the extra key.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from segstudio import __version__
from segstudio.core.atomic import atomic_write_json
from segstudio.core.exporters.common import ExportRun, copy_image
from segstudio.core.project import SPLITS, ImageRecord


def encode_rle(binary: np.ndarray) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(binary.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def export_coco(run: ExportRun) -> None:
    classes = run.project.classes
    categories = [cls for cls in classes if not cls.ignore]
    category_of = {cls.id: index + 1 for index, cls in enumerate(categories)}
    by_split: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    next_annotation = 1
    for number, (record, mask) in enumerate(run.masks(), start=1):
        suffix = run.project.image_path(record).suffix.lower()
        file_name = f"{record.id}{suffix}"
        copy_image(run.project, record, run.out / "images" / file_name)
        images, annotations = by_split.setdefault(record.split, ([], []))
        images.append(_image_entry(number, record, file_name))
        counts = np.bincount(mask.ravel(), minlength=256)
        for class_id in np.flatnonzero(counts):
            category = category_of.get(int(class_id))
            if category is None:  # the ignore class: left out
                continue
            binary = mask == class_id
            rle = encode_rle(binary)
            bbox = mask_utils.toBbox({"size": rle["size"], "counts": rle["counts"].encode("ascii")})
            annotations.append({
                "id": next_annotation,
                "image_id": number,
                "category_id": category,
                "segmentation": rle,
                "area": int(counts[class_id]),
                "bbox": [float(v) for v in bbox],
                "iscrowd": 0,
            })
            next_annotation += 1
    extension = {
        "version": __version__,
        "classes": classes.to_list(),
        "category_to_class": {str(v): k for k, v in category_of.items()},
        "unannotated_class": classes.unlabeled_id,
    }
    for split in SPLITS:
        if split not in by_split:
            continue
        images, annotations = by_split[split]
        atomic_write_json(run.out / "annotations" / f"instances_{split}.json", {
            "info": {"description": f"{run.project.name} ({split}), exported by segstudio {__version__}"},
            "images": images,
            "annotations": annotations,
            "categories": [
                {"id": category_of[cls.id], "name": cls.name, "supercategory": ""} for cls in categories
            ],
            "segstudio": extension,
        })


def _image_entry(number: int, record: ImageRecord, file_name: str) -> dict[str, Any]:
    return {"id": number, "file_name": file_name, "width": record.width, "height": record.height}
