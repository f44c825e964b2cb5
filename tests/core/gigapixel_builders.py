"""Pyramidal tiled TIFFs of any size, written in seconds from a small bank of repeated tiles.

Each level repeats `BANK` distinct tiles in a known order, so the expected pixels of any box
(`expected`) are computed without the whole image ever existing; the tiles are encoded once
(through a one-tile TIFF written with the same settings) and their bytes written again and
again, so a 50,000 x 50,000 image costs file writes, not 38,000 encodes.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import tifffile

BANK = 7


def bank(level: int, tile: int, channels: int = 3, dtype: str = "uint8") -> list[np.ndarray]:
    """Distinct tiles of 8-pixel blocks (compressible, with a per-tile and per-level offset)."""
    yy, xx = np.mgrid[0:tile, 0:tile] // 8
    out = []
    for i in range(BANK):
        planes = [((yy * (c + 3) + xx * (i + 2) + 37 * i + 53 * level + 11 * c) % 256) for c in range(channels)]
        data = np.stack(planes, axis=-1).astype(dtype)
        out.append(data if channels > 1 else data[:, :, 0])
    return out


def tile_index(ty: int, tx: int) -> int:
    return (ty * 3 + tx * 5) % BANK


def level_sizes(height: int, width: int, smallest: int = 512) -> list[tuple[int, int]]:
    sizes = [(height, width)]
    while max(sizes[-1]) > smallest:
        h, w = sizes[-1]
        sizes.append((-(-h // 2), -(-w // 2)))
    return sizes


def expected(level: int, tile: int, y0: int, y1: int, x0: int, x1: int, channels: int = 3,
             dtype: str = "uint8") -> np.ndarray:
    """The pixels the builder wrote at `level` in the box (computed, never read)."""
    tiles = bank(level, tile, channels, dtype)
    out = np.empty((y1 - y0, x1 - x0, *((channels,) if channels > 1 else ())), dtype=dtype)
    for ty in range(y0 // tile, -(-y1 // tile)):
        for tx in range(x0 // tile, -(-x1 // tile)):
            ya, yb = max(y0, ty * tile), min(y1, (ty + 1) * tile)
            xa, xb = max(x0, tx * tile), min(x1, (tx + 1) * tile)
            out[ya - y0:yb - y0, xa - x0:xb - x0] = tiles[tile_index(ty, tx)][
                ya - ty * tile:yb - ty * tile, xa - tx * tile:xb - tx * tile]
    return out


def _encoded(tiles: list[np.ndarray], options: dict) -> tuple[list[bytes], bytes | None]:
    """Each tile's bytes as the TIFF writer encodes them (plus JPEG tables if it uses them)."""
    out, tables = [], None
    for data in tiles:
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, data, **options)
        buffer.seek(0)
        with tifffile.TiffFile(buffer) as tif:
            page = tif.pages[0]
            buffer.seek(page.dataoffsets[0])
            out.append(buffer.read(page.databytecounts[0]))
            tables = page.jpegtables
    return out, tables


def write_pyramid(path: Path, height: int, width: int, tile: int = 256, channels: int = 3,
                  compression: str = "zlib", dtype: str = "uint8", levels: int | None = None,
                  smallest: int = 512, extratags: list | None = None) -> Path:
    """A tiled TIFF whose full level is the first page and reduced levels are SubIFDs;
    `extratags` (e.g. GeoTIFF tags) go on the first page."""
    sizes = level_sizes(height, width, smallest)
    if levels is not None:
        sizes = sizes[:levels]
    photometric = "rgb" if channels == 3 else "minisblack"
    options = {"tile": (tile, tile), "compression": compression, "photometric": photometric,
               "planarconfig": "contig" if channels > 1 else None,
               "metadata": None}
    with tifffile.TiffWriter(path, bigtiff=height * width * channels > 2**31) as writer:
        for level, (h, w) in enumerate(sizes):
            encoded, tables = _encoded(bank(level, tile, channels, dtype), options)

            def segments(h: int = h, w: int = w, encoded: list[bytes] = encoded):
                for ty in range(-(-h // tile)):
                    for tx in range(-(-w // tile)):
                        yield encoded[tile_index(ty, tx)]

            shape = (h, w, channels) if channels > 1 else (h, w)
            extra = {"subifds": len(sizes) - 1, "extratags": extratags or ()} if level == 0 else {"subfiletype": 1}
            writer.write(segments(), shape=shape, dtype=dtype, jpegtables=tables, **options, **extra)
    return path
