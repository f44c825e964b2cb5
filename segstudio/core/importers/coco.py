"""`coco`: COCO instances JSON (polygons, uncompressed and compressed RLE) rasterised by
pycocotools into semantic masks.

Categories become classes 1..N in category-id order; unannotated pixels are class 0
"background"; crowd regions (iscrowd=1) become the ignore class (255). Where objects
overlap, larger ones are drawn first, so smaller objects stay on top (ties: file order,
later on top). A `segstudio` key (written by segstudio's coco export) carries the exact
class table instead. Images are looked up by `file_name` under --images, or beside the
JSON, ../images/ or ../<name>/ (COCO's annotations/instances_train2017.json + train2017/).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from segstudio.core.classes import ClassDef, ClassTable, default_color
from segstudio.core.errors import DatasetImportError, MaskError
from segstudio.core.imageio import ImageInfo
from segstudio.core.importers import jsonstream
from segstudio.core.importers.base import DatasetSource, ImportItem, ImportOptions, Skip, SourceMask
from segstudio.core.importers.coco_store import AnnotationStore, unpack
from segstudio.core.importers.common import is_number, outside
from segstudio.core.project import SPLITS

BACKGROUND = ClassDef(0, "background", (0, 0, 0))
CROWD = ClassDef(255, "unlabeled", (224, 224, 192), ignore=True)
# Coordinates further than this many image sizes outside the image are a broken file, and
# would make the polygon rasteriser allocate without bound.
COORD_MARGIN = 4
# Memory the import needs per byte of JSON, kept on the safe side: the compact store takes
# about 0.4 bytes per byte of COCO-like polygon text (benchmarks/coco_import_memory.py),
# annotations kept as JSON text (unusual ones) about 1, image entries a little more.
MEMORY_PER_FILE_BYTE = 1.0




class CocoFile:
    """One instances JSON, validated: classes, category map, images and their annotations.

    The file is streamed (ijson) in a few passes: the images, the class table, then the
    annotations one at a time into a compact per-image store (coco_store), so memory follows
    what rasterising needs, not the Python objects of the whole document."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.images = [_compact_image(entry) for entry in jsonstream.stream_items(path, "images.item")]
        if jsonstream.top_level_kind(path) != "start_map":
            raise DatasetImportError("a COCO file must hold a JSON object with images, annotations, categories")
        # segstudio's own exports carry the key; for other files a byte search spares a pass
        own = jsonstream.value_at(path, "segstudio") if jsonstream.mentions(path, b'"segstudio"') else None
        categories = None if _has_own_classes(own) else jsonstream.value_at(path, "categories")
        self.classes, self.category_to_class, self.fill = _class_table({"segstudio": own, "categories": categories})
        if len(self.images) <= 1:  # nothing (or one) at images.item: check it really is a list
            self.images = [_compact_image(entry) for entry in _list(_top(path, "images"), "images", required=True)]
        self.store = AnnotationStore()
        self.skips: list[Skip] = []
        known = {entry.get("id") for entry in self.images if isinstance(entry, dict) and _hashable(entry.get("id"))}
        for index, ann in enumerate(jsonstream.stream_items(path, "annotations.item")):
            self._add(index, ann, known)
        if self.store.count == 0 and not self.skips:
            _list(_top(path, "annotations"), "annotations", required=False)
        self.has_annotations = self.store.count > 0 or bool(self.skips)

    def _add(self, index: int, ann: Any, known: set[Any]) -> None:
        if not isinstance(ann, dict) or "image_id" not in ann:
            self.skips.append(Skip(self.path, f"annotations[{index}] is not an object with an image_id"))
        elif not _hashable(ann["image_id"]) or ann["image_id"] not in known:
            self.skips.append(Skip(self.path, f"annotation {ann.get('id', index)}: image_id {ann['image_id']!r} is not among the images"))
        else:
            self.store.add(ann["image_id"], ann)


def _top(path: Path, key: str) -> dict[str, Any]:
    return {key: jsonstream.value_at(path, key)}


def _has_own_classes(own: Any) -> bool:
    return isinstance(own, dict) and "classes" in own


def _compact_image(entry: Any) -> Any:
    """An images[] entry with only the keys the import reads (COCO's carry URLs, dates,
    licences); anything that is not an object is kept as it is, to be reported."""
    if not isinstance(entry, dict):
        return entry
    return {key: entry[key] for key in ("id", "file_name", "width", "height") if key in entry}


def _hashable(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _list(data: dict[str, Any], key: str, required: bool) -> list[Any]:
    value = data.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise DatasetImportError(f"'{key}' must be a list")
    return value


def _class_table(data: dict[str, Any]) -> tuple[ClassTable, dict[int, int], int]:
    own = data.get("segstudio")
    if _has_own_classes(own):
        try:
            classes = ClassTable.from_list(own["classes"])
            mapping = {int(k): int(v) for k, v in dict(own.get("category_to_class", {})).items()}
            fill = int(own.get("unannotated_class", classes.unlabeled_id))
        except (TypeError, ValueError, AttributeError) as exc:
            raise DatasetImportError(f"the 'segstudio' block is malformed ({exc})") from exc
        return classes.ensure_ignore(), mapping, fill
    categories = _list(data, "categories", required=True)
    entries = []
    for index, cat in enumerate(categories):
        if not isinstance(cat, dict) or not _hashable(cat.get("id")) or not isinstance(cat.get("id"), int):
            raise DatasetImportError(f"categories[{index}] needs a whole-number 'id'")
        if not isinstance(cat.get("name"), str) or not cat["name"].strip():
            raise DatasetImportError(f"category {cat['id']} needs a 'name'")
        entries.append((cat["id"], cat["name"].strip()))
    entries.sort()
    if len({cid for cid, _ in entries}) != len(entries):
        raise DatasetImportError("two categories share an id")
    defs = [BACKGROUND]
    mapping: dict[int, int] = {}
    names = {BACKGROUND.name}
    for cid, name in entries:
        if name == BACKGROUND.name:
            mapping[cid] = BACKGROUND.id
            continue
        class_id = len(defs)
        if class_id >= CROWD.id:
            raise DatasetImportError(f"{len(entries)} categories; a project holds at most 254 besides background and ignore")
        if name in names:
            name = f"{name} ({cid})"
        names.add(name)
        defs.append(ClassDef(class_id, name, default_color(class_id, name)))
        mapping[cid] = class_id
    return ClassTable((*defs, CROWD)), mapping, BACKGROUND.id


def scan(options: ImportOptions, project_classes: ClassTable | None) -> DatasetSource:
    if not options.sources:
        raise DatasetImportError("the coco format needs one or more instances JSON files")
    files = list(options.sources)
    # The first file's classes become a new project's table; later files merge by name.
    first = _open(files[0])
    image_root = options.images[0] if options.images else None
    return DatasetSource("coco", first.classes, _items(files, first, image_root, options.split))


def _check_memory(path: Path) -> None:
    """Refuse, before reading, a file whose compact form would not fit in the memory the
    system has free (where it says: skipped where unknown)."""
    try:
        size = path.stat().st_size
    except OSError:
        return  # the read that follows says what is wrong with it
    available = jsonstream.available_memory()
    needed = size * MEMORY_PER_FILE_BYTE
    if available is not None and needed > available:
        raise DatasetImportError(
            f"the file is {size / 1e6:,.0f} MB and importing it needs about {needed / 1e6:,.0f} MB of memory, "
            f"but only {available / 1e6:,.0f} MB is free; split it into smaller instances files (one per "
            "split, or a few thousand images each) and import them one after another, or free memory")


def _open(path: Path) -> CocoFile:
    try:
        _check_memory(path)
        return CocoFile(path)
    except DatasetImportError as exc:
        raise DatasetImportError(f"{path}: {exc}") from exc


def _items(files: list[Path], first: CocoFile, image_root: Path | None,
           split: str | None) -> Iterator[ImportItem | Skip]:
    for path in files:
        try:
            coco = first if path is first.path else _open(path)
        except DatasetImportError as exc:
            yield Skip(path, str(exc).removeprefix(f"{path}: "))
            continue
        yield from coco.skips
        file_split = split or _split_from_name(path.stem)
        roots = [image_root] if image_root is not None else _image_roots(path)
        for index, entry in enumerate(coco.images):
            yield _item(coco, index, entry, roots, file_split)


def _item(coco: CocoFile, index: int, entry: Any, roots: list[Path], split: str) -> ImportItem | Skip:
    if not isinstance(entry, dict) or not _hashable(entry.get("id")) or not isinstance(entry.get("file_name"), str):
        return Skip(coco.path, f"images[{index}] needs an 'id' and a 'file_name'")
    file_name = entry["file_name"]
    if Path(file_name).is_absolute() or ".." in Path(file_name.replace("\\", "/")).parts:
        return Skip(coco.path, f"image '{file_name}' leads outside the image folder; a COCO file_name must be "
                               "relative to it, without '..'")
    image = next((root / file_name for root in roots if (root / file_name).is_file()), None)
    if image is not None:
        escape = outside(image, *roots)
        if escape is not None:
            return Skip(coco.path, f"image '{file_name}' {escape.reason}")
    if image is None:
        where = ", ".join(str(root) for root in roots)
        return Skip(coco.path, f"image '{file_name}' not found (looked in {where}); pass --images DIR")
    records = coco.store.records(entry["id"])
    loader = (lambda info: _rasterise(coco, entry, unpack(records), info)) if coco.has_annotations else None
    return ImportItem(source=image, name=Path(file_name).stem, image=image, split=split, load_mask=loader)


def _split_from_name(stem: str) -> str:
    lowered = stem.lower()
    return next((s for s in SPLITS if s in lowered), "unassigned")


def _image_roots(path: Path) -> list[Path]:
    parent = path.parent
    roots = [parent, parent.parent / "images", parent.parent]
    name = path.stem.removeprefix("instances_")
    if name != path.stem:
        roots.append(parent.parent / name)
    return roots


def _rasterise(coco: CocoFile, entry: dict[str, Any], anns: Iterable[dict[str, Any]], info: ImageInfo) -> SourceMask:
    h, w = info.height, info.width
    for key, actual in (("width", w), ("height", h)):
        stated = entry.get(key)
        if stated is not None and stated != actual:
            raise MaskError(f"{coco.path.name} gives {key} {stated!r} but the image's {key} is {actual}")
    ignore = coco.classes.unlabeled_id
    objects = []
    for order, ann in enumerate(anns):
        label = f"annotation {ann.get('id', order)} in {coco.path.name}"
        crowd = ann.get("iscrowd", 0)
        if crowd not in (0, 1, True, False):
            raise MaskError(f"{label}: iscrowd must be 0 or 1")
        category = ann.get("category_id")
        if not _hashable(category) or category not in coco.category_to_class:
            raise MaskError(f"{label}: category_id {category!r} is not among the categories")
        binary = segmentation_to_mask(ann.get("segmentation"), h, w, label)
        value = ignore if crowd else coco.category_to_class[category]
        objects.append((-int(np.count_nonzero(binary)), order, binary, value))
    mask = np.full((h, w), coco.fill, dtype=np.uint8)
    for _, _, binary, value in sorted(objects, key=lambda o: (o[0], o[1])):
        mask[binary] = value
    return SourceMask(mask, coco.classes)


def segmentation_to_mask(segm: Any, h: int, w: int, label: str = "annotation") -> np.ndarray:
    """A COCO segmentation (polygons, or RLE) as an HxW bool array; malformed ones raise MaskError."""
    if isinstance(segm, list):
        polygons = _check_polygons(segm, h, w, label)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, h, w))
    elif isinstance(segm, dict):
        size = segm.get("size")
        if not (isinstance(size, list) and len(size) == 2 and list(size) == [h, w]):
            raise MaskError(f"{label}: RLE size {size!r} is not the image's [{h}, {w}]")
        counts = segm.get("counts")
        if isinstance(counts, list):
            if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
                raise MaskError(f"{label}: RLE counts must be whole numbers >= 0")
            if sum(counts) != h * w:
                raise MaskError(f"{label}: RLE counts add up to {sum(counts)}, not {h}x{w} = {h * w}")
            rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
        elif isinstance(counts, (str, bytes)):
            raw = counts.encode("ascii", "replace") if isinstance(counts, str) else counts
            total = compressed_rle_total(raw, label)
            if total != h * w:
                raise MaskError(f"{label}: compressed RLE covers {total} pixels, not {h}x{w} = {h * w}")
            rle = {"size": [h, w], "counts": raw}
        else:
            raise MaskError(f"{label}: RLE 'counts' must be a list or a string")
    else:
        raise MaskError(f"{label}: 'segmentation' must be a polygon list or an RLE object")
    return mask_utils.decode(rle).astype(bool)


def _check_polygons(segm: list[Any], h: int, w: int, label: str) -> list[Any]:
    if not segm:
        raise MaskError(f"{label}: empty polygon list")
    limit = COORD_MARGIN * max(h, w, 1)
    polygons: list[Any] = []
    for polygon in segm:
        if isinstance(polygon, np.ndarray) and polygon.dtype == np.float64 and polygon.ndim == 1:
            # the compact store's form: already numbers; the same checks, vectorised
            if len(polygon) < 6 or len(polygon) % 2:
                raise MaskError(f"{label}: a polygon must be a flat list of at least 3 x, y pairs")
            if not np.all(np.isfinite(polygon) & (np.abs(polygon) <= limit)):
                raise MaskError(f"{label}: polygon coordinates must be finite numbers near the image")
            polygons.append(polygon)
            continue
        if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
            raise MaskError(f"{label}: a polygon must be a flat list of at least 3 x, y pairs")
        if not all(is_number(v) and -limit <= v <= limit for v in polygon):
            raise MaskError(f"{label}: polygon coordinates must be finite numbers near the image")
        polygons.append([float(v) for v in polygon])
    return polygons


def compressed_rle_total(counts: bytes, label: str = "annotation") -> int:
    """Sum of the run lengths in COCO's compressed RLE string (LEB128-like, 5 bits per
    character from '0', runs after the second stored as differences). Checked before
    pycocotools decodes it, since its decoder trusts the counts."""
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value = shift = 0
        more = True
        while more:
            if position >= len(counts):
                raise MaskError(f"{label}: compressed RLE string ends inside a number")
            code = counts[position] - 48
            if not 0 <= code < 64:
                raise MaskError(f"{label}: compressed RLE holds a character outside '0'-'o'")
            value |= (code & 0x1F) << (5 * shift)
            more = bool(code & 0x20)
            position += 1
            shift += 1
            if shift > 13:
                raise MaskError(f"{label}: compressed RLE holds a run too long to be real")
            if not more and code & 0x10:
                value -= 1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            raise MaskError(f"{label}: compressed RLE decodes to a negative run")
        runs.append(value)
    return sum(runs)
