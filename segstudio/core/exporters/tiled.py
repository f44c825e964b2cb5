"""Gigapixel masks in exports: chunk stores (core/tiled_mask.py) streamed tile by tile.

A 50,000 x 50,000 mask is 2.5 GB as one array and a PNG of it opens nowhere, so exports
never read it whole. The formats that can hold it (`geotiff`, and `masks` as a tiled TIFF)
write it as 512 x 512 deflate tiles read one at a time from the store, plus reduced-resolution
overviews (nearest class id, GDAL's layout) so a GIS or viewer shows it at any zoom. The
formats made of whole-image PNGs or RLE (color, overlay, voc, cityscapes, coco) leave such
images out, each with a reason naming `--format geotiff`.

Which images: those the app itself opens by tiles (a TIFF over the gigapixel size) with a
saved chunk store; everything else keeps the whole-array path of core/exporters/common.py.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from segstudio.core import gigapixel_project, imageio, rasters
from segstudio.core.atomic import atomic_write_with
from segstudio.core.classes import ClassTable
from segstudio.core.errors import MaskError
from segstudio.core.project import ImageRecord, Project
from segstudio.core.region import Region
from segstudio.core.tiled_mask import TiledMaskStore

TILE = 512
ZLIB_LEVEL = 6  # zlib's default: class ids deflate to a few percent; the blank tile is encoded once
WAY = "--format geotiff"  # the export that takes any gigapixel mask

# Why a format leaves a gigapixel mask out, after "a WxH gigapixel mask ".
_WHY = {
    "color": "is not drawn as one colour PNG (gigabytes that no viewer opens)",
    "overlay": "is not blended into one overlay PNG (gigabytes that no viewer opens)",
    "voc": "does not fit VOC's one-PNG-per-image layout",
    "cityscapes": "does not fit Cityscapes' one-PNG-per-image layout",
    "coco": "is not encoded as whole-image COCO RLE (its binary masks would be decoded whole)",
}


def tiled_store(project: Project, record: ImageRecord) -> TiledMaskStore | None:
    """The saved chunk store of a gigapixel image (None: not one, or nothing saved);
    a store whose size is not the image's is an error, as when the app opens it."""
    if not (gigapixel_project.is_gigapixel_record(project, record)
            and gigapixel_project.has_tiled_mask(project, record)):
        return None
    store = gigapixel_project.mask_store(project, record)
    if store.shape != (record.height, record.width):
        raise MaskError(f"{store.path}: the tiled mask is {store.shape[1]}x{store.shape[0]} but its "
                        f"image is {record.width}x{record.height}; delete the folder")
    return store


def left_out_reason(fmt: str, record: ImageRecord) -> str:
    why = _WHY.get(fmt, f"is not written by the {fmt} format")
    return (f"a {record.width}x{record.height} gigapixel mask {why}; export it with {WAY} "
            "(a tiled GeoTIFF with the class colours, written chunk by chunk)")


def _pad(block: np.ndarray, fill: int) -> np.ndarray:
    if block.shape == (TILE, TILE):
        return block
    padded = np.full((TILE, TILE), fill, dtype=np.uint8)
    padded[:block.shape[0], :block.shape[1]] = block
    return padded


def _any_stored(stored: set[tuple[int, int]], chunk: int, box: Region) -> bool:
    return any((cy, cx) in stored for cy in range(box.y0 // chunk, -(-box.y1 // chunk))
               for cx in range(box.x0 // chunk, -(-box.x1 // chunk)))


def full_tiles(store: TiledMaskStore, classes: ClassTable) -> Iterator[np.ndarray | None]:
    """The mask's tiles, row-major, each read from the chunks under it and its class ids
    checked (an id the project does not know stops the export of this image); None for a
    tile over no stored chunk (all unlabelled: nothing to read)."""
    height, width = store.shape
    stored = set(store.stored_keys())
    for y in range(0, height, TILE):
        for x in range(0, width, TILE):
            box = Region(y, x, min(y + TILE, height), min(x + TILE, width))
            if not _any_stored(stored, store.chunk, box):
                yield None
                continue
            block = store.read_region(box)
            imageio.check_mask_values(block, classes, source=f"{store.path} at x {x}, y {y}")
            yield _pad(block, store.fill)


def overview_sizes(height: int, width: int) -> list[tuple[int, int, int]]:
    """(stride, height, width) of each overview: halving until the mask fits in one tile."""
    out, stride = [], 1
    while max(-(-height // stride), -(-width // stride)) > TILE:
        stride *= 2
        out.append((stride, -(-height // stride), -(-width // stride)))
    return out


def overview_tiles(store: TiledMaskStore, stride: int) -> Iterator[np.ndarray | None]:
    """Tiles of the mask at 1/stride: pixel (y, x) is the mask's (y*stride, x*stride), the
    nearest class id (never a blend of ids). Only stored chunks are read, each once per
    level; None for a tile over none."""
    height, width = store.shape
    h, w = -(-height // stride), -(-width // stride)
    c = store.chunk
    stored = set(store.stored_keys())
    span = TILE * stride  # mask pixels under one overview tile
    for ty in range(-(-h // TILE)):
        for tx in range(-(-w // TILE)):
            tile = None
            y0, x0 = ty * span, tx * span
            y1, x1 = min(y0 + span, height), min(x0 + span, width)
            for cy in range(y0 // c, -(-y1 // c)):
                for cx in range(x0 // c, -(-x1 // c)):
                    if (cy, cx) not in stored:
                        continue
                    box = Region(cy * c, cx * c, min((cy + 1) * c, y1), min((cx + 1) * c, x1))
                    # the first rows/columns of the box on the stride grid
                    fy, fx = -(-box.y0 // stride) * stride, -(-box.x0 // stride) * stride
                    if fy >= box.y1 or fx >= box.x1:
                        continue
                    part = store.read_region(box)[fy - box.y0::stride, fx - box.x0::stride]
                    ly, lx = fy // stride - ty * TILE, fx // stride - tx * TILE
                    if tile is None:
                        tile = np.full((TILE, TILE), store.fill, dtype=np.uint8)
                    tile[ly:ly + part.shape[0], lx:lx + part.shape[1]] = part
            yield tile


def _encoded(tiles: Iterator[np.ndarray | None], fill: int) -> Iterator[bytes]:
    """Each tile deflated as the TIFF stores it; the all-unlabelled tile (most of a big,
    sparsely painted mask) is encoded once and its bytes written again."""
    blank = zlib.compress(np.full((TILE, TILE), fill, dtype=np.uint8).tobytes(), ZLIB_LEVEL)
    for tile in tiles:
        yield blank if tile is None else zlib.compress(np.ascontiguousarray(tile).tobytes(), ZLIB_LEVEL)


def write_tiled_mask(path: Path, store: TiledMaskStore, classes: ClassTable,
                     extratags: list | None = None, overviews: bool = True) -> None:
    """The store as a tiled single-band class-id TIFF at `path` (atomically: a failure
    leaves no file), with the class colours as its colour map and `extratags` (geo tags)."""
    height, width = store.shape
    levels: list[rasters.TiledLevel] = [((height, width), _encoded(full_tiles(store, classes), store.fill))]
    if overviews:
        levels += [((h, w), _encoded(overview_tiles(store, stride), store.fill))
                   for stride, h, w in overview_sizes(height, width)]
    atomic_write_with(path, lambda handle: rasters.write_tiled_class_geotiff(
        handle, levels, classes.color_lut(), extratags or [], tile=TILE))


__all__ = ["WAY", "left_out_reason", "overview_sizes", "tiled_store", "write_tiled_mask"]
