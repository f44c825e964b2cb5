"""Raster annotation tools as pure functions over a MaskDocument: brush, fill, polygon,
magic wand, GrabCut, picker.

Coordinates are image pixel coordinates (x right, y down, pixel (c, r) covers [c, c+1) x
[r, r+1)); a point names the pixel under it (floor). Anything outside the image is clipped.
Brush dabs and segments write into a stroke the caller opened; fills are one undoable
step each and open their own. `protect` paints only over unlabelled pixels.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

from segstudio.core import grabcut
from segstudio.core.errors import MaskError
from segstudio.core.mask_document import MaskDocument
from segstudio.core.region import EMPTY, Region

Point = tuple[float, float]

# A long segment is painted as capsules of at most this many pixels (or 2 radii) each,
# so the work follows the painted area, not the segment's bounding box.
SEGMENT_CHUNK = 64


# -- shapes --------------------------------------------------------------------------------
# Disks up to this radius are cached (a few MB at most); bigger ones are rare and built anew.
MAX_CACHED_RADIUS = 512


def disk_offsets(radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(dy, dx) offsets of the pixels of a disk: dx^2 + dy^2 <= radius^2 (radius 0: one pixel)."""
    r = max(0, int(radius))
    return _cached_offsets(r) if r <= MAX_CACHED_RADIUS else _make_offsets(r)


def disk_mask(radius: int) -> np.ndarray:
    """A (2r+1, 2r+1) bool disk centred on the middle pixel, read-only (it is shared)."""
    r = max(0, int(radius))
    return _cached_disk(r) if r <= MAX_CACHED_RADIUS else _make_disk(r)


def _make_disk(r: int) -> np.ndarray:
    yy, xx = np.ogrid[-r : r + 1, -r : r + 1]
    disk = (xx * xx + yy * yy) <= r * r
    disk.flags.writeable = False
    return disk


def _make_offsets(r: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.nonzero(disk_mask(r))
    dy, dx = ys - r, xs - r
    dy.flags.writeable = False
    dx.flags.writeable = False
    return dy, dx


_cached_disk = lru_cache(maxsize=64)(_make_disk)
_cached_offsets = lru_cache(maxsize=64)(_make_offsets)


def capsule_mask(
    ax: float, ay: float, bx: float, by: float, radius: float
) -> tuple[Region, np.ndarray]:
    """Pixels within `radius` of segment A-B (pixel centres at integer coordinates)."""
    r = float(radius)
    y0, y1 = math.floor(min(ay, by) - r), math.floor(max(ay, by) + r) + 1
    x0, x1 = math.floor(min(ax, bx) - r), math.floor(max(ax, bx) + r) + 1
    py = np.arange(y0, y1, dtype=np.float64)[:, None] - ay
    px = np.arange(x0, x1, dtype=np.float64)[None, :] - ax
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    if length2 == 0.0:
        dist2 = px * px + py * py
    else:
        t = np.clip((px * dx + py * dy) / length2, 0.0, 1.0)
        ex, ey = px - t * dx, py - t * dy
        dist2 = ex * ex + ey * ey
    # The tolerance keeps pixels exactly on the rim, as the integer disk formula does.
    return Region(y0, x0, y1, x1), dist2 <= r * r + 1e-6


def erase_value(doc: MaskDocument) -> int:
    """What the eraser paints: the unlabelled (ignore) class id."""
    return doc.classes.unlabeled_id


def _pixel(x: float, y: float) -> tuple[int, int] | None:
    if not (math.isfinite(x) and math.isfinite(y)):
        return None
    return math.floor(x), math.floor(y)


def _paint(
    doc: MaskDocument, region: Region, where: np.ndarray, value: int, protect: bool
) -> Region:
    """Write `value` where `where` (shaped like `region`) is True, clipped to the image."""
    clipped = region.clip(*doc.shape)
    if clipped.empty:
        return EMPTY
    if clipped != region:
        where = where[clipped.shifted(-region.y0, -region.x0).slices]
    if protect:
        where = where & (doc.mask[clipped.slices] == doc.classes.unlabeled_id)
    return doc.write(clipped, value, where)


def apply_selection(
    doc: MaskDocument,
    label: str,
    selection: grabcut.Selection | None,
    value: int,
    protect: bool = False,
) -> Region:
    """Paint a computed selection (e.g. from a worker thread) as one undoable step."""
    if selection is None:
        return EMPTY
    return _one_shot(doc, label, selection.region, selection.where, value, protect)


def _one_shot(
    doc: MaskDocument, label: str, region: Region, where: np.ndarray, value: int, protect: bool
) -> Region:
    doc.begin_stroke(label)
    try:
        changed = _paint(doc, region, where, value, protect)
    except BaseException:
        doc.abort_stroke()
        raise
    doc.end_stroke()
    return changed


# -- brush ---------------------------------------------------------------------------------
def dab(
    doc: MaskDocument, x: float, y: float, radius: int, value: int, protect: bool = False
) -> Region:
    """Paint a disk around the pixel under (x, y) within the open stroke."""
    pixel = _pixel(x, y)
    if pixel is None:
        return EMPTY
    cx, cy = pixel
    r = max(0, int(round(radius)))
    return _paint(doc, Region(cy - r, cx - r, cy + r + 1, cx + r + 1), disk_mask(r), value, protect)


def _clip_segment(
    ax: float, ay: float, bx: float, by: float, box: Region
) -> tuple[float, float, float, float] | None:
    """Liang-Barsky: the part of A-B inside `box` (as a closed float box), or None."""
    t0, t1 = 0.0, 1.0
    dx, dy = bx - ax, by - ay
    for p, q in (
        (-dx, ax - box.x0),
        (dx, box.x1 - ax),
        (-dy, ay - box.y0),
        (dy, box.y1 - ay),
    ):
        if p == 0:
            if q < 0:
                return None
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return None
    return ax + t0 * dx, ay + t0 * dy, ax + t1 * dx, ay + t1 * dy


def stroke_segment(
    doc: MaskDocument,
    x0: float,
    y0: float,
    x1: float,
    y1: float,
    radius: int,
    value: int,
    protect: bool = False,
) -> Region:
    """Paint the capsule from pixel (x0, y0) to pixel (x1, y1): every dab between, no gaps."""
    a, b = _pixel(x0, y0), _pixel(x1, y1)
    if a is None or b is None:
        return EMPTY
    r = max(0, int(round(radius)))
    if a == b:
        return dab(doc, a[0], a[1], r, value, protect)
    height, width = doc.shape
    # Parts farther than the radius outside the image paint nothing: cut them off first,
    # so a wild pointer coordinate cannot make us walk millions of chunks.
    clipped = _clip_segment(
        float(a[0]),
        float(a[1]),
        float(b[0]),
        float(b[1]),
        Region(-r - 1, -r - 1, height + r, width + r),
    )
    if clipped is None:
        return EMPTY
    ax, ay, bx, by = clipped
    chunk = max(SEGMENT_CHUNK, 2 * r)
    pieces = max(1, math.ceil(math.hypot(bx - ax, by - ay) / chunk))
    changed = EMPTY
    for i in range(pieces):
        s, e = i / pieces, (i + 1) / pieces
        region, where = capsule_mask(
            ax + s * (bx - ax), ay + s * (by - ay), ax + e * (bx - ax), ay + e * (by - ay), r
        )
        changed = changed.union(_paint(doc, region, where, value, protect))
    return changed


def pick(doc: MaskDocument, x: float, y: float) -> int:
    """The class id under (x, y); a point outside the image picks the nearest edge pixel."""
    height, width = doc.shape
    pixel = _pixel(x, y) or (0, 0)
    cx = min(max(pixel[0], 0), width - 1)
    cy = min(max(pixel[1], 0), height - 1)
    return int(doc.mask[cy, cx])


# -- flood fills ---------------------------------------------------------------------------
class _FloodBuffer:
    """OpenCV's flood fill wants an (H+2, W+2) mask; reusing one (cleared after each use
    only where it was filled) saves allocating and faulting in 64 MB per fill on 8k images."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.array: np.ndarray | None = None

    def get(self, height: int, width: int) -> np.ndarray:
        if self.array is None or self.array.shape != (height + 2, width + 2):
            self.array = None  # free the old one before allocating
            self.array = np.zeros((height + 2, width + 2), dtype=np.uint8)
        return self.array


_flood_buffer = _FloodBuffer()


def release_buffers() -> None:
    """Free the cached flood-fill buffer (e.g. when the last image is closed)."""
    with _flood_buffer.lock:
        _flood_buffer.array = None


def _flood(
    image: np.ndarray, seed: tuple[int, int], flags: int, diff: float
) -> tuple[Region, np.ndarray]:
    """Region grown from `seed` and its bool mask (a copy), via cv2.floodFill mask-only."""
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    tol = (diff,) * channels + (0.0,) * (4 - channels)
    with _flood_buffer.lock:
        buffer = _flood_buffer.get(height, width)
        _, _, _, rect = cv2.floodFill(
            image, buffer, seed, 0, tol, tol, flags | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
        )
        region = Region.from_xywh(*rect)
        inner = buffer[1 + region.y0 : 1 + region.y1, 1 + region.x0 : 1 + region.x1]
        where = inner.astype(bool)
        inner[...] = 0
    return region, where


def flood_fill(
    doc: MaskDocument, x: float, y: float, value: int, protect: bool = False, label: str = "Fill",
    window: int | None = None,
) -> Region:
    """Fill the 4-connected same-class region under (x, y) with `value`, as one step.

    With `window`, the fill stays inside the window x window square around the click (a
    gigapixel mask: filling its unlabelled background whole would commit gigabytes)."""
    pixel = _pixel(x, y)
    height, width = doc.shape
    if pixel is None or not (0 <= pixel[0] < width and 0 <= pixel[1] < height):
        return EMPTY
    old = int(doc.mask[pixel[1], pixel[0]])
    if old == value or (protect and old != doc.classes.unlabeled_id):
        return EMPTY
    if window is None:
        region, where = _flood(doc.writable_mask(), pixel, 4, 0.0)
        return _one_shot(doc, label, region, where, value, False)
    half = max(1, int(window)) // 2
    box = Region(pixel[1] - half, pixel[0] - half, pixel[1] + half, pixel[0] + half).clip(height, width)
    view = np.ascontiguousarray(doc.mask[box.slices])
    region, where = _flood(view, (pixel[0] - box.x0, pixel[1] - box.y0), 4, 0.0)
    return _one_shot(doc, label, region.shifted(box.y0, box.x0), where, value, False)


def _check_image(image: np.ndarray, doc: MaskDocument) -> np.ndarray:
    image = np.asarray(image)
    if image.shape[:2] != doc.shape:
        raise MaskError(
            f"the image is {image.shape[:2]} but the mask is {doc.shape}; they must match"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    elif image.ndim == 3 and image.shape[2] >= 3:
        image = image[:, :, :3]
    elif image.ndim != 2:
        raise MaskError(f"cannot use an image of shape {image.shape}; expected gray or RGB")
    return image


def magic_wand_select(
    image: np.ndarray, x: float, y: float, tolerance: float
) -> grabcut.Selection | None:
    """The 8-connected pixels whose colour is within `tolerance` (per channel, in image
    units) of the colour under (x, y); compared with the seed, not with neighbours, so the
    selection does not creep along gradients. None outside the image. Thread-safe."""
    height, width = image.shape[:2]
    pixel = _pixel(x, y)
    if pixel is None or not (0 <= pixel[0] < width and 0 <= pixel[1] < height):
        return None
    if image.dtype not in (np.uint8, np.float32):
        image = image.astype(np.float32)
    image = np.require(image, requirements=["C", "W"])  # OpenCV needs it writable; reads only
    region, where = _flood(image, pixel, 8 | cv2.FLOODFILL_FIXED_RANGE, max(0.0, float(tolerance)))
    return grabcut.Selection(region, where)


def magic_wand(
    doc: MaskDocument,
    image: np.ndarray,
    x: float,
    y: float,
    tolerance: float,
    value: int,
    protect: bool = False,
    label: str = "Magic wand",
) -> Region:
    """Fill what magic_wand_select picks on `image` from (x, y), as one step."""
    selection = magic_wand_select(_check_image(image, doc), x, y, tolerance)
    return apply_selection(doc, label, selection, value, protect)


def polygon_fill(
    doc: MaskDocument,
    points: Sequence[Point],
    value: int,
    protect: bool = False,
    label: str = "Polygon",
) -> Region:
    """Fill the polygon through the pixels under `points` (outline pixels included), one step.

    Also the lasso: pass the freehand path's points.
    """
    pts = np.asarray(
        [p for p in points if math.isfinite(p[0]) and math.isfinite(p[1])], dtype=np.float64
    )
    if pts.size == 0:
        return EMPTY
    # Far-away vertices are clamped so OpenCV's int32 arithmetic cannot overflow.
    limit = float(2**28)
    pixels = np.floor(np.clip(pts.reshape(-1, 2), -limit, limit)).astype(np.int64)
    box = Region(
        int(pixels[:, 1].min()),
        int(pixels[:, 0].min()),
        int(pixels[:, 1].max()) + 1,
        int(pixels[:, 0].max()) + 1,
    ).clip(*doc.shape)
    if box.empty:
        return EMPTY
    patch = np.zeros(box.shape, dtype=np.uint8)
    local = (pixels - np.array([box.x0, box.y0])).astype(np.int32)
    cv2.fillPoly(patch, [local.reshape(-1, 1, 2)], 1)
    return _one_shot(doc, label, box, patch.view(bool), value, protect)


# -- GrabCut -------------------------------------------------------------------------------
def grabcut_box(
    doc: MaskDocument,
    image: np.ndarray,
    box: tuple[float, float, float, float],
    value: int,
    protect: bool = False,
    iterations: int = 5,
    label: str = "GrabCut",
    margin: int | None = None,
) -> Region:
    """Fill the object GrabCut finds inside box (x0, y0, x1, y1), as one step.

    See grabcut.box_selection (run that on a worker thread for big boxes).
    """
    selection = grabcut.box_selection(_check_image(image, doc), box, iterations, margin)
    return apply_selection(doc, label, selection, value, protect)


def grabcut_scribbles(
    doc: MaskDocument,
    image: np.ndarray,
    fg_points: Sequence,
    bg_points: Sequence,
    value: int,
    box: tuple[float, float, float, float] | None = None,
    protect: bool = False,
    iterations: int = 5,
    label: str = "GrabCut",
    scribble_radius: int = 3,
) -> Region:
    """Fill the object GrabCut finds from fg/bg scribbles (and an optional box), one step.

    See grabcut.scribble_selection for how scribbles and the box seed it.
    """
    selection = grabcut.scribble_selection(
        _check_image(image, doc), fg_points, bg_points, box, iterations, scribble_radius
    )
    return apply_selection(doc, label, selection, value, protect)
