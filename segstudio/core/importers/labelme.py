"""`labelme`: LabelMe JSON files, rasterised the way LabelMe's own converter does.

Shapes are drawn in file order (later on top) with Pillow, with LabelMe's conventions:
polygon filled with its outline; rectangle from two corners; circle from its centre and a
point on the edge; line and linestrip 10 px wide; point a disc of radius 5; mask a
base64 PNG placed with its top-left at the first point. Unlabelled pixels are class 0
"background" (`_background_` names it); `__ignore__` is the ignore class. The image is the
file beside the JSON (imagePath), else the embedded imageData, which is written into the
project's images/ folder.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from segstudio.core import imageio
from segstudio.core.classes import (
    DEFAULT_IGNORE_COLOR,
    DEFAULT_IGNORE_ID,
    ClassDef,
    ClassTable,
    default_color,
)
from segstudio.core.errors import DatasetImportError, MaskError
from segstudio.core.imageio import ImageInfo
from segstudio.core.importers.base import DatasetSource, ImportItem, ImportOptions, Skip, SourceMask
from segstudio.core.importers.common import class_file, is_number, load_json, outside, source_files

LINE_WIDTH = 10
POINT_RADIUS = 5
BACKGROUND_LABEL = "_background_"
IGNORE_LABEL = "__ignore__"
SHAPE_POINTS = {"rectangle": 2, "circle": 2, "line": 2, "point": 1, "mask": 2}
SHAPE_TYPES = ("polygon", "rectangle", "circle", "line", "linestrip", "point", "mask")
# Coordinates further than this many image sizes outside the image are a broken file, not a
# drawing (and Pillow's ellipse takes minutes for a radius near 1e6).
COORD_MARGIN = 4


class LabelRegistry:
    """Label names -> class ids: from a labels file, or grown in first-seen order."""

    def __init__(self, fixed: ClassTable | None) -> None:
        self.fixed = fixed
        background = ClassDef(0, "background", (0, 0, 0))
        self.table = fixed if fixed is not None else ClassTable((background,))

    def class_id(self, label: str) -> int:
        name = "background" if label == BACKGROUND_LABEL else label
        if label == IGNORE_LABEL:
            ignore = self.table.ignore_class
            if ignore is not None:
                return ignore.id
            if self.fixed is not None:
                raise MaskError(f"label '{IGNORE_LABEL}' but the class file has no ignore class")
            self.table = self.table.with_class(ClassDef(DEFAULT_IGNORE_ID, "unlabeled", DEFAULT_IGNORE_COLOR, True))
            return DEFAULT_IGNORE_ID
        try:
            return self.table.by_name(name).id
        except KeyError:
            if self.fixed is not None:
                raise MaskError(f"label '{name}' is not in the class file; add it or fix the label") from None
        new_id = next(i for i in range(1, 256) if i not in self.table.ids)
        if new_id == DEFAULT_IGNORE_ID:
            raise MaskError("more than 254 labels; a project holds at most 256 classes")
        self.table = self.table.with_class(ClassDef(new_id, name, default_color(new_id, name)))
        return new_id

    def background_id(self) -> int:
        try:
            return self.table.by_name("background").id
        except KeyError:
            return self.table.unlabeled_id


def scan(options: ImportOptions, project_classes: ClassTable | None) -> DatasetSource:
    if not options.sources:
        raise DatasetImportError("the labelme format needs LabelMe JSON files or folders holding them")
    fixed = class_file(options.classes_file)
    registry = LabelRegistry(fixed)
    # Loaders grow the label registry in file order, so they must not run ahead on threads.
    items = _items(options.sources, registry, options.split or "unassigned")
    return DatasetSource("labelme", fixed, items, parallel=False)


def _items(sources: tuple[Path, ...], registry: LabelRegistry, split: str) -> Iterator[ImportItem | Skip]:
    # An imagePath may lead up from the JSON (LabelMe's --output folders write ../images/x.jpg)
    # but never out of the folders the user gave, or their parent for a JSON given alone.
    roots = tuple(source if source.is_dir() else source.parent for source in sources)
    roots += tuple(root.parent for root in roots)
    for entry in source_files(sources):
        if isinstance(entry, Skip):
            yield entry
        elif entry.suffix.lower() == ".json":
            yield _item(entry, registry, split, roots)


def _item(path: Path, registry: LabelRegistry, split: str, roots: tuple[Path, ...] = ()) -> ImportItem | Skip:
    try:
        data = load_json(path)
    except DatasetImportError as exc:
        return Skip(path, str(exc))
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        return Skip(path, "not a LabelMe file: needs an object with a 'shapes' list")
    image_path = data.get("imagePath")
    image = None
    if isinstance(image_path, str) and image_path.strip():
        if Path(image_path.replace("\\", "/")).is_absolute() or Path(image_path).is_absolute():
            return Skip(path, f"imagePath {image_path!r} is an absolute path; LabelMe writes it relative to the JSON")
        candidate = path.parent / image_path.replace("\\", "/")
        image = candidate if candidate.is_file() else None
        escape = outside(candidate, *(roots or (path.parent,))) if image is not None else None
        if escape is not None:
            return Skip(path, f"imagePath {image_path!r} {escape.reason}")
    embedded = data.get("imageData")
    loader = lambda info: rasterise(data, registry, info, path)  # noqa: E731
    if image is not None:
        return ImportItem(source=path, name=path.stem, image=image, split=split, load_mask=loader)
    if isinstance(embedded, str) and embedded:
        try:
            raw = base64.b64decode(embedded, validate=True)
        except (binascii.Error, ValueError):
            return Skip(path, "imageData is not valid base64")
        try:
            suffix = _suffix_of(raw)
        except MaskError as exc:
            return Skip(path, str(exc))
        if suffix is None:
            return Skip(path, "imageData is not an image LabelMe could have embedded")
        return ImportItem(source=path, name=path.stem, image_bytes=raw, image_suffix=suffix, split=split,
                          load_mask=loader)
    return Skip(path, f"image {image_path!r} not found beside the JSON and no imageData embedded")


def _suffix_of(raw: bytes) -> str | None:
    try:
        with Image.open(io.BytesIO(raw)) as im:
            fmt = (im.format or "").lower()
            width, height = im.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    if width * height > imageio.MAX_PIXELS or (width * height > imageio.VERIFY_MAX_PIXELS
                                               and width * height > imageio.BOMB_RATIO * len(raw)):
        raise MaskError(f"imageData claims {width}x{height} pixels in {len(raw)} bytes; this looks like a "
                        "decompression bomb, so it is not imported")
    suffix = {"jpeg": ".jpg", "tiff": ".tif"}.get(fmt, f".{fmt}")
    return suffix if suffix in imageio.IMAGE_SUFFIXES else None


def rasterise(data: dict[str, Any], registry: LabelRegistry, info: ImageInfo, path: Path) -> SourceMask:
    """All shapes of a LabelMe file as one class-id mask."""
    h, w = info.height, info.width
    for key, actual in (("imageWidth", w), ("imageHeight", h)):
        stated = data.get(key)
        if stated is not None and stated != actual:
            raise MaskError(f"{key} is {stated!r} but the image is {w}x{h}")
    mask = np.full((h, w), registry.background_id(), dtype=np.uint8)
    for index, shape in enumerate(data["shapes"]):
        if not isinstance(shape, dict) or not isinstance(shape.get("label"), str):
            raise MaskError(f"shape {index} needs a 'label' text")
        class_id = registry.class_id(shape["label"])
        mask[shape_to_mask(shape, h, w, f"shape {index} ('{shape['label']}')")] = class_id
    return SourceMask(mask, registry.table)


def shape_to_mask(shape: dict[str, Any], h: int, w: int, label: str = "shape") -> np.ndarray:
    """One LabelMe shape as an HxW bool array (LabelMe's own semantics)."""
    kind = shape.get("shape_type") or "polygon"
    if kind not in SHAPE_TYPES:
        raise MaskError(f"{label}: unknown shape_type {kind!r}; LabelMe has {', '.join(SHAPE_TYPES)}")
    points = _points(shape.get("points"), label, COORD_MARGIN * max(h, w, 64))
    need = SHAPE_POINTS.get(kind)
    if need is not None and len(points) != need:
        raise MaskError(f"{label}: a {kind} needs {need} point(s), has {len(points)}")
    if kind == "polygon" and len(points) < 3:
        raise MaskError(f"{label}: a polygon needs at least 3 points")
    if kind == "linestrip" and len(points) < 2:
        raise MaskError(f"{label}: a linestrip needs at least 2 points")
    if kind == "mask":
        return _mask_shape(shape.get("mask"), points, h, w, label)
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    if kind == "circle":
        (cx, cy), (px, py) = points
        r = math.hypot(cx - px, cy - py)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=1, fill=1)
    elif kind == "rectangle":
        (x0, y0), (x1, y1) = points
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=1, fill=1)
    elif kind in ("line", "linestrip"):
        draw.line(points, fill=1, width=LINE_WIDTH)
    elif kind == "point":
        (cx, cy), = points
        draw.ellipse([cx - POINT_RADIUS, cy - POINT_RADIUS, cx + POINT_RADIUS, cy + POINT_RADIUS], outline=1, fill=1)
    else:
        draw.polygon(points, outline=1, fill=1)
    return np.asarray(canvas, dtype=bool)


def _points(raw: Any, label: str, limit: float) -> list[tuple[float, float]]:
    if not isinstance(raw, list):
        raise MaskError(f"{label}: 'points' must be a list of [x, y]")
    points = []
    for point in raw:
        if not (isinstance(point, list) and len(point) == 2 and all(is_number(v) for v in point)):
            raise MaskError(f"{label}: each point must be [x, y] with finite numbers")
        if not all(abs(v) <= limit for v in point):
            raise MaskError(f"{label}: a coordinate is far outside any image")
        points.append((float(point[0]), float(point[1])))
    return points


def _mask_shape(encoded: Any, points: list[tuple[float, float]], h: int, w: int, label: str) -> np.ndarray:
    if not isinstance(encoded, str):
        raise MaskError(f"{label}: a mask shape needs its 'mask' as base64 PNG")
    x0, y0 = (int(v) for v in points[0])
    x1, y1 = (int(v) for v in points[1])
    try:
        with Image.open(io.BytesIO(base64.b64decode(encoded, validate=True))) as im:
            if im.size != (x1 - x0 + 1, y1 - y0 + 1):  # checked on the header: never decode a bomb
                raise MaskError(
                    f"{label}: mask is {im.size[0]}x{im.size[1]} but its points span "
                    f"{x1 - x0 + 1}x{y1 - y0 + 1}"
                )
            patch = np.asarray(im.convert("L")) > 0
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as exc:
        raise MaskError(f"{label}: 'mask' is not a base64 PNG ({exc})") from exc
    if patch.shape != (y1 - y0 + 1, x1 - x0 + 1):
        raise MaskError(
            f"{label}: mask is {patch.shape[1]}x{patch.shape[0]} but its points span "
            f"{x1 - x0 + 1}x{y1 - y0 + 1}"
        )
    result = np.zeros((h, w), dtype=bool)
    # Place the patch, clipped to the image.
    ys, xs = slice(max(y0, 0), min(y1 + 1, h)), slice(max(x0, 0), min(x1 + 1, w))
    if ys.start < ys.stop and xs.start < xs.stop:
        result[ys, xs] = patch[ys.start - y0: ys.stop - y0, xs.start - x0: xs.stop - x0]
    return result
