"""Axis-aligned pixel boxes: what an edit touched, what a view must redraw.

A Region is half-open ([y0, y1) x [x0, x1)) in image pixel indices, so its slices index a
mask directly and an empty box has y1 <= y0 or x1 <= x0.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Region:
    """A half-open pixel box: rows y0..y1-1, columns x0..x1-1."""

    y0: int
    x0: int
    y1: int
    x1: int

    @classmethod
    def full(cls, height: int, width: int) -> Region:
        return cls(0, 0, int(height), int(width))

    @classmethod
    def from_xywh(cls, x: int, y: int, w: int, h: int) -> Region:
        """From OpenCV's (x, y, width, height) rectangles."""
        return cls(int(y), int(x), int(y) + int(h), int(x) + int(w))

    @classmethod
    def bounding(cls, regions: Iterable[Region]) -> Region:
        """The smallest box holding every non-empty region (EMPTY if there is none)."""
        result = EMPTY
        for region in regions:
            result = result.union(region)
        return result

    @property
    def empty(self) -> bool:
        return self.y1 <= self.y0 or self.x1 <= self.x0

    @property
    def height(self) -> int:
        return max(0, self.y1 - self.y0)

    @property
    def width(self) -> int:
        return max(0, self.x1 - self.x0)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def area(self) -> int:
        return self.height * self.width

    @property
    def slices(self) -> tuple[slice, slice]:
        """Index a (H, W, ...) array with it: `mask[region.slices]`."""
        return (slice(self.y0, self.y1), slice(self.x0, self.x1))

    def union(self, other: Region) -> Region:
        """Bounding box of both; an empty side is ignored."""
        if self.empty:
            return other if not other.empty else EMPTY
        if other.empty:
            return self
        return Region(
            min(self.y0, other.y0),
            min(self.x0, other.x0),
            max(self.y1, other.y1),
            max(self.x1, other.x1),
        )

    def intersect(self, other: Region) -> Region:
        result = Region(
            max(self.y0, other.y0),
            max(self.x0, other.x0),
            min(self.y1, other.y1),
            min(self.x1, other.x1),
        )
        return EMPTY if result.empty else result

    def clip(self, height: int, width: int) -> Region:
        """The part inside a height x width image (EMPTY when none is)."""
        return self.intersect(Region(0, 0, int(height), int(width)))

    def shifted(self, dy: int, dx: int) -> Region:
        return Region(self.y0 + dy, self.x0 + dx, self.y1 + dy, self.x1 + dx)

    def padded(self, margin: int) -> Region:
        return Region(self.y0 - margin, self.x0 - margin, self.y1 + margin, self.x1 + margin)

    def contains(self, y: int, x: int) -> bool:
        return self.y0 <= y < self.y1 and self.x0 <= x < self.x1

    def tiles(self, tile: int) -> Iterator[tuple[int, int]]:
        """(tile_row, tile_col) indices of the tile x tile grid cells this box overlaps."""
        if self.empty:
            return
        for ty in range(self.y0 // tile, (self.y1 - 1) // tile + 1):
            for tx in range(self.x0 // tile, (self.x1 - 1) // tile + 1):
                yield ty, tx


EMPTY = Region(0, 0, 0, 0)
