"""`cityscapes`: leftImg8bit/<split>/<city>/*_leftImg8bit.png with gtFine/.../*_gtFine_labelIds.png.

Label ids (0-33) map to the 19 train classes (ids 0-18, Cityscapes colours); every other
label becomes 255, the ignore class. Splits come from the folder names (train, val, test).
Masks that are ignore everywhere (the public test split's placeholders) count as no mask.
A classes.json in the dataset folder (segstudio's own cityscapes export of a project with
other classes) means the PNGs hold that table's ids as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from segstudio.core import imageio
from segstudio.core.classes import ClassDef, ClassTable
from segstudio.core.errors import DatasetImportError, MaskError
from segstudio.core.imageio import ImageInfo
from segstudio.core.importers.base import DatasetSource, ImportItem, ImportOptions, Skip, SourceMask
from segstudio.core.importers.common import class_file, list_folder, read_ids_mask
from segstudio.core.project import SPLITS

# (label id, train id, name, colour) of the 19 classes Cityscapes evaluates.
TRAIN_CLASSES: tuple[tuple[int, int, str, tuple[int, int, int]], ...] = (
    (7, 0, "road", (128, 64, 128)),
    (8, 1, "sidewalk", (244, 35, 232)),
    (11, 2, "building", (70, 70, 70)),
    (12, 3, "wall", (102, 102, 156)),
    (13, 4, "fence", (190, 153, 153)),
    (17, 5, "pole", (153, 153, 153)),
    (19, 6, "traffic light", (250, 170, 30)),
    (20, 7, "traffic sign", (220, 220, 0)),
    (21, 8, "vegetation", (107, 142, 35)),
    (22, 9, "terrain", (152, 251, 152)),
    (23, 10, "sky", (70, 130, 180)),
    (24, 11, "person", (220, 20, 60)),
    (25, 12, "rider", (255, 0, 0)),
    (26, 13, "car", (0, 0, 142)),
    (27, 14, "truck", (0, 0, 70)),
    (28, 15, "bus", (0, 60, 100)),
    (31, 16, "train", (0, 80, 100)),
    (32, 17, "motorcycle", (0, 0, 230)),
    (33, 18, "bicycle", (119, 11, 32)),
)
MAX_LABEL_ID = 33
IMAGE_TAG = "_leftImg8bit"
LABEL_TAGS = ("_gtFine_labelIds", "_gtCoarse_labelIds")


def cityscapes_classes() -> ClassTable:
    defs = tuple(ClassDef(train_id, name, color) for _, train_id, name, color in TRAIN_CLASSES)
    return ClassTable(defs + (ClassDef(255, "unlabeled", (0, 0, 0), ignore=True),))


def label_to_train_lut() -> np.ndarray:
    lut = np.full(256, 255, dtype=np.uint8)
    for label_id, train_id, _, _ in TRAIN_CLASSES:
        lut[label_id] = train_id
    return lut


def scan(options: ImportOptions, project_classes: ClassTable | None) -> DatasetSource:
    if len(options.sources) != 1:
        raise DatasetImportError("the cityscapes format needs exactly one dataset folder (with leftImg8bit/)")
    root = options.sources[0]
    if not (root / "leftImg8bit").is_dir():
        raise DatasetImportError(f"{root} is not a Cityscapes folder: it needs leftImg8bit/ (and gtFine/ for masks)")
    own = class_file(options.classes_file, root / "classes.json")
    classes = own or cityscapes_classes()
    return DatasetSource("cityscapes", classes, _items(root, classes, own is None))


def _items(root: Path, classes: ClassTable, map_label_ids: bool) -> Iterator[ImportItem | Skip]:
    splits, problem = list_folder(root / "leftImg8bit")
    if problem is not None:
        yield problem
        return
    lut = label_to_train_lut() if map_label_ids else None
    for split_dir in splits:
        if not split_dir.is_dir():
            continue
        if split_dir.name not in SPLITS:
            yield Skip(split_dir, f"'{split_dir.name}' is not a split ({', '.join(SPLITS)}); not imported")
            continue
        cities, problem = list_folder(split_dir)
        if problem is not None:
            yield problem
            continue
        for city in cities:
            files, problem = list_folder(city) if city.is_dir() else ([city], None)
            if problem is not None:
                yield problem
                continue
            for image in files:
                yield _item(root, split_dir.name, city, image, classes, lut)


def _item(root: Path, split: str, city: Path, image: Path, classes: ClassTable,
          lut: np.ndarray | None) -> ImportItem | Skip:
    if not imageio.is_image_file(image) or IMAGE_TAG not in image.stem:
        return Skip(image, f"not a Cityscapes image (*{IMAGE_TAG}.png)")
    base = image.stem[: image.stem.rindex(IMAGE_TAG)]
    label_dir = root / "gtFine" / split / city.name
    label = next((label_dir / f"{base}{tag}.png" for tag in LABEL_TAGS if (label_dir / f"{base}{tag}.png").is_file()), None)
    if label is None:
        coarse = root / "gtCoarse" / split / city.name / f"{base}_gtCoarse_labelIds.png"
        label = coarse if coarse.is_file() else None
    if label is None:
        return ImportItem(source=image, name=base, image=image, split=split)
    return ImportItem(source=label, name=base, image=image, split=split,
                      load_mask=lambda info: _load(label, classes, lut, info))


def _load(path: Path, classes: ClassTable, lut: np.ndarray | None, _info: ImageInfo) -> SourceMask | None:
    if lut is None:
        mask = read_ids_mask(path, classes)
    else:
        data, mode = imageio.read_mask_array(path)
        if mode == "RGB":
            raise MaskError("is a colour image; use the *_gtFine_labelIds.png files")
        if data.size and int(data.max()) > MAX_LABEL_ID:
            raise MaskError(f"holds value {int(data.max())}; Cityscapes label ids are 0-{MAX_LABEL_ID}")
        mask = SourceMask(lut[data], classes)
    ignore = classes.ignore_index
    if ignore is not None and bool(np.all(mask.ids == ignore)):
        return None  # a placeholder (test split): the image is unlabelled
    return mask
