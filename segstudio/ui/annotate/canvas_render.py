"""Tiled raster layers for the canvas: the base image and the class-colour mask overlay.

Each layer is a small pyramid (level k = 1/2**k resolution) of tile grids. A tile owns a
contiguous 32-bit buffer wrapped, without a copy, by a QImage in one of QPainter's fast
formats (RGB32 / ARGB32 premultiplied). The view draws from the level whose pixels are
about one screen pixel, so a paint costs about the number of screen pixels and an 8k image
at "fit" renders 1k x 1k pixels, not 64 M. Tiles render lazily when first drawn; an edit
re-renders only the changed box inside the tiles it touched (at every level already in
use), so a brush dab on an 8k mask costs microseconds, never a full-mask conversion.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QImage, QPainter

from segstudio.core.classes import ClassTable
from segstudio.core.region import Region
from segstudio.ui.qimages import wrap_array

TILE = 512
MAX_LEVEL = 6
# Tiles kept per grid before off-screen ones are dropped (512x512x4 bytes each: 1 MiB).
MAX_TILES = 192

# render(region, out): fill `out` (shape region.shape, uint32) for the level box `region`.
RenderFn = Callable[[Region, np.ndarray], None]


@dataclass
class _Tile:
    """One tile: its box in level pixels, its pixel buffer and the QImage viewing it."""

    region: Region
    buffer: np.ndarray
    image: QImage
    stale: bool = True


class TiledLayer:
    """A lazily rendered grid of tiles over a height x width raster."""

    def __init__(
        self,
        height: int,
        width: int,
        render: RenderFn,
        fmt: QImage.Format,
        tile: int = TILE,
        max_tiles: int = MAX_TILES,
    ) -> None:
        self.height = int(height)
        self.width = int(width)
        self.tile = int(tile)
        self.max_tiles = int(max_tiles)
        self._render = render
        self._format = fmt
        self._tiles: OrderedDict[tuple[int, int], _Tile] = OrderedDict()  # least recent first
        # Diagnostics read by tests and the benchmark: tile (re)renders and their pixels.
        self.render_count = 0
        self.rendered_pixels = 0
        self.rendered_tiles: list[tuple[int, int]] = []

    def _tile_region(self, ty: int, tx: int) -> Region:
        t = self.tile
        return Region(ty * t, tx * t, min((ty + 1) * t, self.height), min((tx + 1) * t, self.width))

    def _get(self, key: tuple[int, int]) -> _Tile:
        tile = self._tiles.get(key)
        if tile is None:
            region = self._tile_region(*key)
            buffer = np.zeros(region.shape, dtype=np.uint32)
            image = wrap_array(buffer, self._format)  # renders write into `buffer` in place
            tile = _Tile(region, buffer, image)
            self._tiles[key] = tile
        else:
            self._tiles.move_to_end(key)
        return tile

    def tile_buffer(self, key: tuple[int, int]) -> np.ndarray | None:
        """The pixels of a materialised tile (tests compare them with the mask)."""
        tile = self._tiles.get(key)
        return None if tile is None else tile.buffer

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
                continue  # rendered in full when next drawn
            self._run_render(key, tile, region.intersect(tile.region))

    def invalidate_all(self) -> None:
        """Mark every tile stale (LUT, levels or mode changed); visible ones re-render on paint."""
        for tile in self._tiles.values():
            tile.stale = True

    def reset_counters(self) -> None:
        self.render_count = 0
        self.rendered_pixels = 0
        self.rendered_tiles = []

    def visible_keys(self, rect: QRectF) -> list[tuple[int, int]]:
        """Tile keys overlapping a rectangle in this grid's pixels."""
        box = Region(
            math.floor(rect.top()), math.floor(rect.left()),
            math.ceil(rect.bottom()) + 1, math.ceil(rect.right()) + 1,
        ).clip(self.height, self.width)
        return list(box.tiles(self.tile))

    def draw(self, painter: QPainter, rect: QRectF) -> None:
        """Draw the tiles overlapping `rect` (in this grid's pixels)."""
        # Only the exposed part of each tile: a footprint repaint must not blit whole tiles.
        x0, y0 = math.floor(rect.left()), math.floor(rect.top())
        x1, y1 = math.ceil(rect.right()), math.ceil(rect.bottom())
        keys = self.visible_keys(rect)
        for key in keys:
            image = self.ensure(key)
            box = self._tiles[key].region
            left, top = max(x0, box.x0), max(y0, box.y0)
            right, bottom = min(x1, box.x1), min(y1, box.y1)
            if right <= left or bottom <= top:
                continue
            target = QRectF(left, top, right - left, bottom - top)
            painter.drawImage(target, image, target.translated(-box.x0, -box.y0))
        self._evict(set(keys))

    def _evict(self, keep: set[tuple[int, int]]) -> None:
        """Drop least recently drawn tiles beyond the budget (never ones on screen)."""
        excess = len(self._tiles) - self.max_tiles
        if excess <= 0:
            return
        for key in [k for k in self._tiles if k not in keep][:excess]:
            del self._tiles[key]

    @property
    def materialised(self) -> int:
        return len(self._tiles)

    @property
    def nbytes(self) -> int:
        return sum(t.buffer.nbytes for t in self._tiles.values())


def level_for_scale(scale: float, max_level: int = MAX_LEVEL) -> int:
    """The pyramid level whose pixels are closest to (and not smaller than) a screen pixel."""
    if scale >= 0.5:
        return 0
    return max(0, min(max_level, int(math.floor(math.log2(1.0 / scale)))))


def level_region(region: Region, level: int) -> Region:
    """The level-`level` pixels whose sample point (k*f, l*f) lies inside `region`."""
    f = 1 << level
    if f == 1:
        return region
    return Region(-(-region.y0 // f), -(-region.x0 // f), -(-region.y1 // f), -(-region.x1 // f))


class Pyramid:
    """Tile grids at levels 0..MAX_LEVEL, created on first use; level k is 1/2**k size."""

    def __init__(
        self, height: int, width: int, make_render: Callable[[int], RenderFn], fmt: QImage.Format,
        tile: int = TILE,
    ) -> None:
        self.height, self.width = int(height), int(width)
        self._make_render = make_render
        self._format = fmt
        self._tile = tile
        self.levels: dict[int, TiledLayer] = {}
        largest = max(self.height, self.width, 1)
        # No level smaller than one tile side: drawing it would gain nothing.
        self.max_level = max(0, min(MAX_LEVEL, int(math.log2(max(1, largest // 256)))))

    def level(self, k: int) -> TiledLayer:
        layer = self.levels.get(k)
        if layer is None:
            f = 1 << k
            layer = TiledLayer(
                -(-self.height // f), -(-self.width // f), self._make_render(k), self._format, self._tile
            )
            self.levels[k] = layer
        return layer

    def level_for(self, scale: float) -> int:
        return level_for_scale(scale, self.max_level)

    def draw(self, painter: QPainter, rect: QRectF, scale: float) -> None:
        """Draw the scene rectangle `rect` from the level that suits `scale`."""
        k = self.level_for(scale)
        if k == 0:
            self.level(0).draw(painter, rect)
            return
        f = float(1 << k)
        painter.save()
        # The last row/column of a level overhangs the image by under f pixels: clip it.
        painter.setClipRect(QRectF(0, 0, self.width, self.height), Qt.ClipOperation.IntersectClip)
        painter.scale(f, f)
        self.level(k).draw(painter, QRectF(rect.x() / f, rect.y() / f, rect.width() / f, rect.height() / f))
        painter.restore()

    def visible_keys(self, rect: QRectF, scale: float) -> tuple[TiledLayer, list[tuple[int, int]]]:
        k = self.level_for(scale)
        f = float(1 << k)
        layer = self.level(k)
        return layer, layer.visible_keys(QRectF(rect.x() / f, rect.y() / f, rect.width() / f, rect.height() / f))

    def update(self, region: Region, pad: int = 0) -> None:
        """Re-render what an image-pixel `region` maps to at every level in use."""
        for k, layer in self.levels.items():
            layer.update(level_region(region, k).padded(pad) if pad else level_region(region, k))

    def invalidate_all(self) -> None:
        for layer in self.levels.values():
            layer.invalidate_all()

    def reset_counters(self) -> None:
        for layer in self.levels.values():
            layer.reset_counters()

    @property
    def rendered_pixels(self) -> int:
        return sum(layer.rendered_pixels for layer in self.levels.values())

    @property
    def nbytes(self) -> int:
        return sum(layer.nbytes for layer in self.levels.values())


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


class RegionSource(Protocol):
    """Pixels read on demand (a gigapixel image, core/gigapixel.py): never one whole array."""

    @property
    def shape(self) -> tuple[int, int]: ...

    def read_scaled(self, k: int, region: Region) -> np.ndarray:
        """RGB8 of `region` in the 1/2**k grid."""
        ...


class ImageLayer:
    """The photo as RGB32 tiles, with brightness/contrast levels applied while rendering.

    The pixels are an array, or a RegionSource asked for just the tiles and level on screen.
    """

    def __init__(self, image_rgb: np.ndarray | RegionSource, tile: int = TILE) -> None:
        self._lut: np.ndarray | None = None
        if isinstance(image_rgb, np.ndarray):
            self.image: np.ndarray | None = image_rgb
            self.region_source: RegionSource | None = None
            # Downscaled copies, made by area averaging on first use (the image never changes).
            self._sources: dict[int, np.ndarray] = {0: image_rgb}
            h, w = image_rgb.shape[:2]
        else:
            self.image = None
            self.region_source = image_rgb
            self._sources = {}
            h, w = image_rgb.shape
        self.pyramid = Pyramid(h, w, self._renderer, QImage.Format.Format_RGB32, tile)

    @property
    def tiles(self) -> TiledLayer:
        """The full-resolution grid."""
        return self.pyramid.level(0)

    def set_levels(self, low: float, high: float) -> None:
        lut = levels_lut(low, high)
        if (lut is None) != (self._lut is None) or (lut is not None and not np.array_equal(lut, self._lut)):
            self._lut = lut
            self.pyramid.invalidate_all()

    def source(self, k: int) -> np.ndarray:
        src = self._sources.get(k)
        if src is None:
            finer = self.source(k - 1)
            h, w = finer.shape[:2]
            src = cv2.resize(finer, (-(-w // 2), -(-h // 2)), interpolation=cv2.INTER_AREA)
            self._sources[k] = src
        return src

    def _renderer(self, k: int) -> RenderFn:
        def render(region: Region, out: np.ndarray) -> None:
            if self.region_source is not None:
                src = self.region_source.read_scaled(k, region)
            else:
                src = self.source(k)[region.slices]
            if self._lut is not None:
                src = cv2.LUT(src, self._lut)
            # RGB32 is 0xffRRGGBB, i.e. bytes B, G, R, 255 in memory on little-endian machines.
            cv2.cvtColor(src, cv2.COLOR_RGB2BGRA, dst=out.view(np.uint8).reshape(*out.shape, 4))

        return render


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
        self.pyramid = Pyramid(h, w, self._renderer, QImage.Format.Format_ARGB32_Premultiplied, tile)

    @property
    def tiles(self) -> TiledLayer:
        """The full-resolution grid."""
        return self.pyramid.level(0)

    def set_classes(self, classes: ClassTable) -> None:
        self.lut = class_lut(classes)
        self.pyramid.invalidate_all()

    def set_outline(self, on: bool) -> None:
        if bool(on) != self.outline:
            self.outline = bool(on)
            self.pyramid.invalidate_all()

    def update(self, region: Region) -> None:
        """A document edit changed `region`: redraw it (one pixel wider for outlines)."""
        self.pyramid.update(region, pad=1 if self.outline else 0)

    def _renderer(self, k: int) -> RenderFn:
        f = 1 << k

        def render(region: Region, out: np.ndarray) -> None:
            # Coarser levels sample every f-th pixel: class ids must not be averaged.
            mask = self._mask_source()
            if f > 1:
                mask = mask[::f, ::f]
            if not self.outline:
                np.take(self.lut, mask[region.slices], out=out, mode="clip")
                return
            # A pixel's outline state depends on its neighbours: look one pixel beyond the box.
            context = region.padded(1).clip(*mask.shape)
            edge = boundary(mask[context.slices])
            inner = region.shifted(-context.y0, -context.x0)
            colours = np.take(self.lut, mask[region.slices], mode="clip")
            np.multiply(colours, edge[inner.slices], out=out, casting="unsafe")

        return render


class RgbaLayer:
    """An optional RGBA picture over the mask (predictions, heat maps), converted once."""

    def __init__(self, rgba: np.ndarray) -> None:
        if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
            raise ValueError(f"an extra layer must be HxWx4 uint8 RGBA, got {rgba.dtype} {rgba.shape}")
        self._array = np.ascontiguousarray(rgba)
        h, w = self._array.shape[:2]
        wrapped = wrap_array(self._array, QImage.Format.Format_RGBA8888)
        # Premultiplied ARGB32 is what the raster painter blends fastest.
        self.image = wrapped.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
        self.height, self.width = h, w

    def draw(self, painter: QPainter, rect: QRectF) -> None:
        target = rect.intersected(QRectF(0, 0, self.width, self.height))
        if not target.isEmpty():
            painter.drawImage(target, self.image, target)
