"""Tiled raster layers for the canvas: the base image and the class-colour mask overlay.

Each layer is cut into square tiles that own a contiguous 32-bit buffer wrapped, without a
copy, by a QImage in one of QPainter's fast formats (RGB32 / ARGB32 premultiplied), so a
paint costs about the number of screen pixels whatever the image size. Tiles are rendered
lazily when first drawn; an edit re-renders only the changed box inside the tiles it
touches, so a brush dab on an 8k mask costs microseconds, not a full-mask conversion.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPainter

from segstudio.core.classes import ClassTable
from segstudio.core.region import Region

TILE = 512

# render(region, out): fill `out` (shape region.shape, uint32) for the image box `region`.
RenderFn = Callable[[Region, np.ndarray], None]


@dataclass
class _Tile:
    """One tile: its box in image pixels, its pixel buffer and the QImage viewing it."""

    region: Region
    buffer: np.ndarray
    image: QImage
    stale: bool = True


class TiledLayer:
    """A lazily rendered grid of tiles over a height x width image."""

    def __init__(
        self, height: int, width: int, render: RenderFn, fmt: QImage.Format, tile: int = TILE
    ) -> None:
        self.height = int(height)
        self.width = int(width)
        self.tile = int(tile)
        self._render = render
        self._format = fmt
        self._tiles: dict[tuple[int, int], _Tile] = {}
        # Diagnostics read by tests and the benchmark: how many tile (re)renders ran and
        # how many pixels they produced.
        self.render_count = 0
        self.rendered_pixels = 0
        self.rendered_tiles: list[tuple[int, int]] = []

    @property
    def bounds(self) -> Region:
        return Region.full(self.height, self.width)

    def _tile_region(self, ty: int, tx: int) -> Region:
        t = self.tile
        return Region(ty * t, tx * t, min((ty + 1) * t, self.height), min((tx + 1) * t, self.width))

    def _get(self, key: tuple[int, int]) -> _Tile:
        tile = self._tiles.get(key)
        if tile is None:
            region = self._tile_region(*key)
            buffer = np.zeros(region.shape, dtype=np.uint32)
            image = QImage(buffer.data, region.width, region.height, region.width * 4, self._format)
            tile = _Tile(region, buffer, image)
            self._tiles[key] = tile
        return tile

    def _run_render(self, key: tuple[int, int], tile: _Tile, region: Region) -> None:
        local = region.shifted(-tile.region.y0, -tile.region.x0)
        self._render(region, tile.buffer[local.slices])
        self.render_count += 1
        self.rendered_pixels += region.area
        self.rendered_tiles.append(key)

    def ensure(self, key: tuple[int, int]) -> QImage:
        """The tile's QImage, rendered first if it is new or stale."""
        tile = self._get(key)
        if tile.stale:
            self._run_render(key, tile, tile.region)
            tile.stale = False
        return tile.image

    def update(self, region: Region) -> None:
        """Re-render `region` now, in the tiles already materialised (others stay lazy)."""
        region = region.clip(self.height, self.width)
        for key in region.tiles(self.tile):
            tile = self._tiles.get(key)
            if tile is None or tile.stale:
                continue  # rendered in full when first drawn
            self._run_render(key, tile, region.intersect(tile.region))

    def invalidate_all(self) -> None:
        """Mark every tile stale (LUT, levels or mode changed); visible ones re-render on paint."""
        for tile in self._tiles.values():
            tile.stale = True

    def reset_counters(self) -> None:
        self.render_count = 0
        self.rendered_pixels = 0
        self.rendered_tiles = []

    def visible_keys(self, rect: QRectF) -> Iterator[tuple[int, int]]:
        """Tile keys overlapping a scene (image-pixel) rectangle."""
        box = Region(
            int(np.floor(rect.top())), int(np.floor(rect.left())),
            int(np.ceil(rect.bottom())) + 1, int(np.ceil(rect.right())) + 1,
        ).clip(self.height, self.width)
        return box.tiles(self.tile)

    def draw(self, painter: QPainter, rect: QRectF) -> None:
        """Draw the tiles overlapping `rect` (scene coordinates = image pixels)."""
        # Only the exposed part of each tile: a footprint repaint must not blit whole tiles.
        x0, y0 = math.floor(rect.left()), math.floor(rect.top())
        x1, y1 = math.ceil(rect.right()), math.ceil(rect.bottom())
        for key in self.visible_keys(rect):
            image = self.ensure(key)
            box = self._tiles[key].region
            left, top = max(x0, box.x0), max(y0, box.y0)
            right, bottom = min(x1, box.x1), min(y1, box.y1)
            if right <= left or bottom <= top:
                continue
            target = QRectF(left, top, right - left, bottom - top)
            painter.drawImage(target, image, target.translated(-box.x0, -box.y0))

    @property
    def materialised(self) -> int:
        return len(self._tiles)

    @property
    def nbytes(self) -> int:
        return sum(t.buffer.nbytes for t in self._tiles.values())


# -- base image -----------------------------------------------------------------------------
def levels_lut(low: float, high: float) -> np.ndarray | None:
    """A 256-entry stretch mapping low..high to 0..255, or None for the identity."""
    low, high = float(low), float(high)
    if low == 0.0 and high == 255.0:
        return None
    if high <= low:
        high = low + 1.0
    ramp = (np.arange(256, dtype=np.float32) - low) * (255.0 / (high - low))
    return np.clip(np.round(ramp), 0, 255).astype(np.uint8)


class ImageLayer:
    """The photo as RGB32 tiles, with brightness/contrast levels applied while rendering."""

    def __init__(self, image_rgb: np.ndarray, tile: int = TILE) -> None:
        self.image = image_rgb
        self._lut: np.ndarray | None = None
        h, w = image_rgb.shape[:2]
        self.tiles = TiledLayer(h, w, self._render, QImage.Format.Format_RGB32, tile)

    def set_levels(self, low: float, high: float) -> None:
        lut = levels_lut(low, high)
        if (lut is None) != (self._lut is None) or (lut is not None and not np.array_equal(lut, self._lut)):
            self._lut = lut
            self.tiles.invalidate_all()

    def _render(self, region: Region, out: np.ndarray) -> None:
        src = self.image[region.slices]
        if self._lut is not None:
            src = cv2.LUT(src, self._lut)
        # RGB32 is 0xffRRGGBB, i.e. bytes B, G, R, 255 in memory on little-endian machines.
        cv2.cvtColor(src, cv2.COLOR_RGB2BGRA, dst=out.view(np.uint8).reshape(*out.shape, 4))


# -- mask overlay ---------------------------------------------------------------------------
def class_lut(classes: ClassTable) -> np.ndarray:
    """256 premultiplied ARGB32 colours: class colours opaque, ignore and unknown ids clear.

    Opacity is not baked in: the painter applies it, so the opacity slider costs no render.
    """
    lut = np.zeros(256, dtype=np.uint32)
    ignore = classes.ignore_index
    for cls in classes:
        if cls.id == ignore:
            continue
        r, g, b = (int(c) for c in cls.color)
        lut[cls.id] = (0xFF << 24) | (r << 16) | (g << 8) | b
    return lut


def boundary(mask: np.ndarray) -> np.ndarray:
    """True where a pixel differs from one of its 4 neighbours (the array edge is not a border)."""
    edge = np.zeros(mask.shape, dtype=bool)
    vertical = mask[1:, :] != mask[:-1, :]
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    horizontal = mask[:, 1:] != mask[:, :-1]
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    return edge


class MaskLayer:
    """Class ids drawn through a colour lookup table, filled or as outlines only."""

    def __init__(self, mask_source: Callable[[], np.ndarray], classes: ClassTable, tile: int = TILE) -> None:
        # The document may swap its array (load, resize); read it on every render.
        self._mask_source = mask_source
        self.lut = class_lut(classes)
        self.outline = False
        h, w = mask_source().shape[:2]
        self.tiles = TiledLayer(h, w, self._render, QImage.Format.Format_ARGB32_Premultiplied, tile)

    def set_classes(self, classes: ClassTable) -> None:
        self.lut = class_lut(classes)
        self.tiles.invalidate_all()

    def set_outline(self, on: bool) -> None:
        if bool(on) != self.outline:
            self.outline = bool(on)
            self.tiles.invalidate_all()

    def update(self, region: Region) -> None:
        """A document edit changed `region`: redraw it (one pixel wider for outlines)."""
        self.tiles.update(region.padded(1) if self.outline else region)

    def _render(self, region: Region, out: np.ndarray) -> None:
        mask = self._mask_source()
        if not self.outline:
            np.take(self.lut, mask[region.slices], out=out, mode="clip")
            return
        # A pixel's outline state depends on its neighbours: look one pixel beyond the box.
        context = region.padded(1).clip(self.tiles.height, self.tiles.width)
        edge = boundary(mask[context.slices])
        inner = region.shifted(-context.y0, -context.x0)
        colours = np.take(self.lut, mask[region.slices], mode="clip")
        np.multiply(colours, edge[inner.slices], out=out, casting="unsafe")


class RgbaLayer:
    """An optional RGBA picture over the mask (predictions, heat maps), converted once."""

    def __init__(self, rgba: np.ndarray) -> None:
        if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
            raise ValueError(f"an extra layer must be HxWx4 uint8 RGBA, got {rgba.dtype} {rgba.shape}")
        self._array = np.ascontiguousarray(rgba)
        h, w = self._array.shape[:2]
        wrapped = QImage(self._array.data, w, h, w * 4, QImage.Format.Format_RGBA8888)
        # Premultiplied ARGB32 is what the raster painter blends fastest.
        self.image = wrapped.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
        self.height, self.width = h, w

    def draw(self, painter: QPainter, rect: QRectF) -> None:
        target = rect.intersected(QRectF(0, 0, self.width, self.height))
        if not target.isEmpty():
            painter.drawImage(target, self.image, target)
