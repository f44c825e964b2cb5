"""COCO annotations kept per image in a compact binary form while the file streams past.

`json.load` turns one polygon annotation of 20 points into ~0.74 kB of Python objects; a
packed record here is ~0.2 kB: polygon coordinates as int32 hundredths (or whatever decimal
scale gives back every double exactly; float64 otherwise), compressed RLE as its bytes,
uncompressed RLE counts as uint32, and id, category and crowd flag in a fixed header. Only
what rasterising reads is kept (bbox and area are not). Anything unusual (a string
category id, a bool in a polygon, a count of 2**32) is stored as its JSON text instead and
parsed back when its image is rasterised, so validation and its messages stay exactly as
they were with `json.load`.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np

# kind, flags, decimal scale, annotation id, category id, n (polygons / bytes / counts)
_HEADER = struct.Struct("<BBBqqI")
_SIZE = struct.Struct("<qq")
_POLYGONS, _RLE_TEXT, _RLE_COUNTS, _JSON = 1, 2, 3, 4
_CROWD, _HAS_ID, _HAS_CROWD = 1, 2, 4
_FLOAT64 = 255
_INT64 = (-(1 << 63), (1 << 63) - 1)
_NUMBERS = {int, float}


class AnnotationStore:
    """Annotations grouped by image id, each image's records in one growing bytearray."""

    def __init__(self) -> None:
        self._by_image: dict[Any, bytearray] = {}
        self.count = 0

    def add(self, image_id: Any, ann: dict[str, Any]) -> None:
        buffer = self._by_image.get(image_id)
        if buffer is None:
            buffer = self._by_image[image_id] = bytearray()
        record = _pack(ann)
        buffer += record if record is not None else _pack_json(ann)
        self.count += 1

    def records(self, image_id: Any) -> bytes | bytearray:
        """The packed records of one image (empty when it has none)."""
        return self._by_image.get(image_id, b"")

    def nbytes(self) -> int:
        return sum(len(buffer) for buffer in self._by_image.values())


def unpack(buffer: bytes | bytearray) -> Iterator[dict[str, Any]]:
    """The records of one image in file order, as annotation dicts with the keys rasterising
    reads (polygons come as float64 arrays holding the file's exact doubles)."""
    view = memoryview(buffer)
    position = 0
    while position < len(view):
        kind, flags, scale, ann_id, category, n = _HEADER.unpack_from(view, position)
        position += _HEADER.size
        if kind == _JSON:
            yield json.loads(bytes(view[position:position + n]))
            position += n
            continue
        ann: dict[str, Any] = {"category_id": category}
        if flags & _HAS_ID:
            ann["id"] = ann_id
        if flags & _HAS_CROWD:
            ann["iscrowd"] = 1 if flags & _CROWD else 0
        if kind == _POLYGONS:
            lengths = np.frombuffer(view, np.uint32, n, position)
            position += 4 * n
            polygons = []
            for length in lengths.tolist():
                if scale == _FLOAT64:
                    polygons.append(np.frombuffer(view, np.float64, length, position).copy())
                    position += 8 * length
                else:
                    ints = np.frombuffer(view, np.int32, length, position)
                    polygons.append(ints.astype(np.float64) / 10.0 ** scale)
                    position += 4 * length
            ann["segmentation"] = polygons
        else:
            h, w = _SIZE.unpack_from(view, position)
            position += _SIZE.size
            if kind == _RLE_TEXT:
                counts: Any = bytes(view[position:position + n])
                position += n
            else:
                counts = np.frombuffer(view, np.uint32, n, position).tolist()
                position += 4 * n
            ann["segmentation"] = {"size": [h, w], "counts": counts}
        yield ann


def _pack(ann: dict[str, Any]) -> bytes | None:
    """The packed record, or None where the annotation needs its JSON text kept."""
    flags = 0
    ann_id = ann.get("id", 0)
    if "id" in ann:
        if not _is_int64(ann_id):
            return None
        flags |= _HAS_ID
    if "iscrowd" in ann:
        crowd = ann["iscrowd"]
        if type(crowd) not in (int, bool) or crowd not in (0, 1):
            return None
        flags |= _HAS_CROWD | (_CROWD if crowd else 0)
    category = ann.get("category_id")
    if not _is_int64(category):
        return None
    segm = ann.get("segmentation")
    if type(segm) is list:
        return _pack_polygons(flags, ann_id, category, segm)
    if type(segm) is dict and set(segm) == {"size", "counts"}:
        return _pack_rle(flags, ann_id, category, segm)
    return None


def _pack_polygons(flags: int, ann_id: int, category: int, segm: list[Any]) -> bytes | None:
    if not all(type(p) is list and set(map(type, p)) <= _NUMBERS for p in segm):
        return None
    try:
        if len(segm) == 1:  # the usual case: one outline
            flat = np.array(segm[0], dtype=np.float64)
        else:
            flat = np.array([v for p in segm for v in p], dtype=np.float64)
    except (OverflowError, ValueError):
        return None
    scale, payload = _exact_ints(flat)
    lengths = np.array([len(p) for p in segm], np.uint32).tobytes()
    return _HEADER.pack(_POLYGONS, flags, scale, ann_id, category, len(segm)) + lengths + payload


def _exact_ints(values: np.ndarray) -> tuple[int, bytes]:
    """int32 multiples of 10**-scale that divide back to exactly these doubles (COCO writes
    two decimals), else the doubles themselves."""
    if values.size == 0:
        return _FLOAT64, values.tobytes()
    for scale in (2, 4):  # inf and nan fail the range check and stay float64
        factor = 10.0 ** scale
        ints = np.rint(values * factor)
        if np.abs(ints).max() < 2**31 and (ints / factor == values).all():
            return scale, ints.astype(np.int32).tobytes()
    return _FLOAT64, values.tobytes()


def _pack_rle(flags: int, ann_id: int, category: int, segm: dict[str, Any]) -> bytes | None:
    size, counts = segm["size"], segm["counts"]
    if not (type(size) is list and len(size) == 2 and all(_is_int64(v) for v in size)):
        return None
    if type(counts) is str:
        raw = counts.encode("ascii", "replace")
        return _HEADER.pack(_RLE_TEXT, flags, 0, ann_id, category, len(raw)) + _SIZE.pack(*size) + raw
    if type(counts) is list and all(type(c) is int and 0 <= c < 2**32 for c in counts):
        packed = np.array(counts, np.uint32).tobytes()
        return _HEADER.pack(_RLE_COUNTS, flags, 0, ann_id, category, len(counts)) + _SIZE.pack(*size) + packed
    return None


def _pack_json(ann: dict[str, Any]) -> bytes:
    text = json.dumps(ann, separators=(",", ":")).encode("utf-8")
    return _HEADER.pack(_JSON, 0, 0, 0, 0, len(text)) + text


def _is_int64(value: Any) -> bool:
    return type(value) is int and _INT64[0] <= value <= _INT64[1]
