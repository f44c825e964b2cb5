"""`voc`: the Pascal VOC segmentation layout.

    VOC2012/JPEGImages/<stem>.jpg
    VOC2012/SegmentationClass/<stem>.png       palette PNG, index = class id, 255 = void border
    VOC2012/ImageSets/Segmentation/train.txt   stems per split (val.txt, test.txt; trainval.txt
                                               only when train.txt and val.txt are absent)

Classes are VOC's 21 (background + 20 objects, VOC colours) and 255 "void" as ignore, unless
--classes or a classes.json in the dataset folder (segstudio's own voc export) says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from segstudio.core.classes import ClassDef, ClassTable, voc_color
from segstudio.core.errors import DatasetImportError
from segstudio.core.importers.base import DatasetSource, ImportItem, ImportOptions, Skip
from segstudio.core.importers.common import class_file, find_by_stem, list_folder, read_ids_mask

VOC_CLASS_NAMES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
VOC_VOID = ClassDef(255, "void", (224, 224, 192), ignore=True)
LIST_SPLITS = ("train", "val", "test")


def voc_classes() -> ClassTable:
    return ClassTable(tuple(ClassDef(i, n, voc_color(i)) for i, n in enumerate(VOC_CLASS_NAMES)) + (VOC_VOID,))


def find_root(source: Path) -> Path:
    """The folder holding JPEGImages/: the source itself, or VOCdevkit/VOC20xx below it."""
    candidates = [source, *sorted(source.glob("VOC*")), *sorted(source.glob("VOCdevkit/VOC*"))]
    for candidate in candidates:
        if (candidate / "JPEGImages").is_dir():
            return candidate
    raise DatasetImportError(
        f"{source} is not a Pascal VOC folder: it needs JPEGImages/ and SegmentationClass/ "
        "(or VOCdevkit/VOC2012/ holding them)"
    )


def scan(options: ImportOptions, project_classes: ClassTable | None) -> DatasetSource:
    if len(options.sources) != 1:
        raise DatasetImportError("the voc format needs exactly one dataset folder (VOC2012 or VOCdevkit)")
    root = find_root(options.sources[0])
    classes = class_file(options.classes_file, root / "classes.json") or voc_classes()
    return DatasetSource("voc", classes, _items(root, classes, options.split or "unassigned"))


def _split_lists(root: Path) -> tuple[dict[str, str], list[Skip]]:
    folder = root / "ImageSets" / "Segmentation"
    result: dict[str, str] = {}
    notes: list[Skip] = []
    if not folder.is_dir():
        return result, notes
    files, problem = list_folder(folder)
    if problem is not None:
        return result, [problem]
    names = {path.stem: path for path in files if path.suffix == ".txt"}
    use_trainval = "trainval" in names and "train" not in names and "val" not in names
    for name, path in sorted(names.items()):
        if name in LIST_SPLITS:
            split = name
        elif name == "trainval":
            if not use_trainval:
                continue  # the union of train.txt and val.txt
            split = "train"
        else:
            notes.append(Skip(path, f"split list '{name}' is not train, val or test; its images count as unassigned"))
            continue
        try:
            lines = path.read_text(encoding="utf-8").split()
        except (OSError, UnicodeDecodeError) as exc:
            notes.append(Skip(path, f"cannot be read ({exc})"))
            continue
        for stem in lines:
            result.setdefault(stem, split)
    return result, notes


def _items(root: Path, classes: ClassTable, default_split: str) -> Iterator[ImportItem | Skip]:
    splits, notes = _split_lists(root)
    yield from notes
    mask_dir = root / "SegmentationClass"
    masks: dict[str, Path] = {}
    if mask_dir.exists():
        files, problem = list_folder(mask_dir)
        if problem is not None:
            yield problem
        masks = {p.stem: p for p in files if p.suffix.lower() == ".png"}
    stems = sorted(set(splits) | set(masks))
    if not stems:
        yield Skip(mask_dir, "no segmentation masks and no ImageSets/Segmentation lists")
        return
    images = root / "JPEGImages"
    for stem in stems:
        image = find_by_stem(images, stem)
        mask = masks.get(stem)
        if image is None:
            yield Skip(mask or images / f"{stem}.jpg", f"image '{stem}' not found in {images}")
            continue
        loader = None if mask is None else (lambda _info, m=mask: read_ids_mask(m, classes))
        yield ImportItem(source=mask or image, name=stem, image=image,
                         split=splits.get(stem, default_split), load_mask=loader)
