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

from segstudio.core.errors import MaskError, ToolError
from segstudio.core.mask_document import MaskDocument
from segstudio.core.region import EMPTY, Region

Point = tuple[float, float]

# A long segment is painted as capsules of at most this many pixels (or 2 radii) each,
# so the work follows the painted area, not the segment's bounding box.
SEGMENT_CHUNK = 64
# GrabCut runs on a downscaled crop above this many pixels (its cost grows with area).
GRABCUT_MAX_PIXELS = 1_000_000


# -- shapes --------------------------------------------------------------------------------
@lru_cache(maxsize=256)
def disk_offsets(radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(dy, dx) offsets of the pixels of a disk: dx^2 + dy^2 <= radius^2 (radius 0: one pixel)."""
    ys, xs = np.nonzero(disk_mask(radius))
    dy, dx = ys - radius, xs - radius
    dy.flags.writeable = False
    dx.flags.writeable = False
    return dy, dx


@lru_cache(maxsize=256)
def disk_mask(radius: int) -> np.ndarray:
    """A (2r+1, 2r+1) bool disk centred on the middle pixel, read-only (it is shared)."""
    r = max(0, int(radius))
    yy, xx = np.ogrid[-r : r + 1, -r : r + 1]
    disk = (xx * xx + yy * yy) <= r * r
    disk.flags.writeable = False
    return disk


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
    doc: MaskDocument, x: float, y: float, value: int, protect: bool = False, label: str = "Fill"
) -> Region:
    """Fill the 4-connected same-class region under (x, y) with `value`, as one step."""
    pixel = _pixel(x, y)
    height, width = doc.shape
    if pixel is None or not (0 <= pixel[0] < width and 0 <= pixel[1] < height):
        return EMPTY
    old = int(doc.mask[pixel[1], pixel[0]])
    if old == value or (protect and old != doc.classes.unlabeled_id):
        return EMPTY
    region, where = _flood(doc.writable_mask(), pixel, 4, 0.0)
    return _one_shot(doc, label, region, where, value, False)


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
    """Fill the 8-connected pixels whose colour is within `tolerance` (per channel, image
    units) of the colour under (x, y) - compared with the seed, so it does not creep along
    gradients - as one step."""
    image = _check_image(image, doc)
    pixel = _pixel(x, y)
    height, width = doc.shape
    if pixel is None or not (0 <= pixel[0] < width and 0 <= pixel[1] < height):
        return EMPTY
    if image.dtype not in (np.uint8, np.float32):
        image = image.astype(np.float32)
    image = np.require(image, requirements=["C", "W"])  # OpenCV needs it writable; reads only
    region, where = _flood(image, pixel, 8 | cv2.FLOODFILL_FIXED_RANGE, max(0.0, float(tolerance)))
    return _one_shot(doc, label, region, where, value, protect)


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
def _rgb8(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.dtype != np.uint8:
        top = float(image.max()) if image.size else 1.0
        scale = 255.0 / top if top > 255 else 1.0
        image = np.clip(image.astype(np.float32) * scale, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def _normalise_box(box: Sequence[float]) -> Region:
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        return EMPTY
    return Region(
        math.floor(min(y0, y1)),
        math.floor(min(x0, x1)),
        math.ceil(max(y0, y1)),
        math.ceil(max(x0, x1)),
    )


def _grabcut_frame(crop: Region) -> float:
    """Scale at which GrabCut works on this crop (1.0, or less for big crops)."""
    return min(1.0, math.sqrt(GRABCUT_MAX_PIXELS / max(1, crop.area)))


def _run_grabcut(
    image: np.ndarray,
    crop: Region,
    scale: float,
    gc_mask: np.ndarray,
    rect: tuple[int, int, int, int] | None,
    iterations: int,
) -> np.ndarray:
    """GrabCut on the (scaled) crop; returns the foreground as a bool array at crop size."""
    patch = _rgb8(image[crop.slices])
    if scale < 1.0:
        patch = cv2.resize(
            patch, (gc_mask.shape[1], gc_mask.shape[0]), interpolation=cv2.INTER_AREA
        )
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    mode = cv2.GC_INIT_WITH_RECT if rect is not None else cv2.GC_INIT_WITH_MASK
    try:
        cv2.grabCut(patch, gc_mask, rect, bgd, fgd, max(1, int(iterations)), mode)
    except cv2.error as exc:
        raise ToolError(
            "GrabCut needs both object and background pixels; draw a box with some background "
            "around the object, or add background scribbles"
        ) from exc
    fg = ((gc_mask == cv2.GC_FGD) | (gc_mask == cv2.GC_PR_FGD)).astype(np.uint8)
    if scale < 1.0:
        fg = cv2.resize(fg, (crop.width, crop.height), interpolation=cv2.INTER_NEAREST)
    return fg.view(bool)


def _scaled_shape(crop: Region, scale: float) -> tuple[int, int]:
    return max(1, round(crop.height * scale)), max(1, round(crop.width * scale))


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
    """Segment the object inside box (x0, y0, x1, y1) with GrabCut and fill it, one step.

    Works on a crop around the box (the box plus `margin`, default a quarter of its size)
    so the cost follows the box, not the image.
    """
    image = _check_image(image, doc)
    inner = _normalise_box(box).clip(*doc.shape)
    if inner.height < 2 or inner.width < 2:
        return EMPTY
    pad = margin if margin is not None else max(16, max(inner.height, inner.width) // 4)
    crop = inner.padded(pad).clip(*doc.shape)
    scale = _grabcut_frame(crop)
    shape = _scaled_shape(crop, scale)
    local = inner.shifted(-crop.y0, -crop.x0)
    rx0, ry0 = int(local.x0 * scale), int(local.y0 * scale)
    rx1 = max(rx0 + 1, min(shape[1], round(local.x1 * scale)))
    ry1 = max(ry0 + 1, min(shape[0], round(local.y1 * scale)))
    if (rx0, ry0, rx1, ry1) == (0, 0, shape[1], shape[0]):
        # A box over the whole image leaves no background sample; take its rim as one.
        rx0, ry0, rx1, ry1 = 1, 1, max(2, rx1 - 1), max(2, ry1 - 1)
    gc_mask = np.zeros(shape, np.uint8)
    fg = _run_grabcut(image, crop, scale, gc_mask, (rx0, ry0, rx1 - rx0, ry1 - ry0), iterations)
    return _one_shot(doc, label, crop, fg, value, protect)


def _scribble_lines(points: Sequence) -> list[np.ndarray]:
    """Scribbles as float (N, 2) polylines: a sequence of (x, y) points is one dot each, a
    sequence of point sequences is one polyline each."""
    lines: list[np.ndarray] = []
    for item in points:
        arr = np.asarray(item, dtype=np.float64)
        if arr.ndim == 1 and arr.shape == (2,):
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ToolError("scribbles must be (x, y) points or lists of (x, y) points")
        arr = arr[np.isfinite(arr).all(axis=1)]
        if len(arr):
            lines.append(arr)
    return lines


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
    """GrabCut seeded by object (fg) and background (bg) scribbles, optionally within a box.

    Scribbled pixels are certain; with a box, outside it is certain background and inside
    probable object; without one, GrabCut works on a crop around the scribbles whose
    unscribbled pixels start as probable object (and whose rim is background when there
    are no background scribbles). Points are dots of `scribble_radius`; a list of point
    lists draws polylines. Fills the foreground as one step.
    """
    image = _check_image(image, doc)
    fg_lines, bg_lines = _scribble_lines(fg_points), _scribble_lines(bg_points)
    inner = _normalise_box(box).clip(*doc.shape) if box is not None else EMPTY
    if not fg_lines and inner.empty:
        return EMPTY
    if inner.empty:
        allpts = np.concatenate(fg_lines + bg_lines)
        span = Region(
            math.floor(allpts[:, 1].min()),
            math.floor(allpts[:, 0].min()),
            math.floor(allpts[:, 1].max()) + 1,
            math.floor(allpts[:, 0].max()) + 1,
        )
        pad = max(16, max(span.height, span.width) // 2)
    else:
        span = inner
        pad = max(16, max(span.height, span.width) // 4)
    crop = span.padded(pad).clip(*doc.shape)
    if crop.empty:
        return EMPTY
    scale = _grabcut_frame(crop)
    shape = _scaled_shape(crop, scale)
    if inner.empty:
        # Unscribbled pixels start as probable object: GrabCut then gives to the
        # background whatever resembles the background scribbles (or the crop's rim).
        gc_mask = np.full(shape, cv2.GC_PR_FGD, np.uint8)
        if not bg_lines:
            gc_mask[[0, -1], :] = cv2.GC_BGD
            gc_mask[:, [0, -1]] = cv2.GC_BGD
    else:
        gc_mask = np.full(shape, cv2.GC_BGD, np.uint8)
        local = inner.shifted(-crop.y0, -crop.x0)
        gc_mask[
            int(local.y0 * scale) : max(int(local.y0 * scale) + 1, round(local.y1 * scale)),
            int(local.x0 * scale) : max(int(local.x0 * scale) + 1, round(local.x1 * scale)),
        ] = cv2.GC_PR_FGD
    thickness = max(1, round(2 * scribble_radius * scale) + 1)
    for lines, code in ((bg_lines, cv2.GC_BGD), (fg_lines, cv2.GC_FGD)):
        for line in lines:
            pts = np.floor((line - [crop.x0, crop.y0]) * scale).astype(np.int32).reshape(-1, 1, 2)
            if len(pts) == 1:
                cv2.circle(gc_mask, tuple(int(v) for v in pts[0, 0]), thickness // 2, int(code), -1)
            else:
                cv2.polylines(gc_mask, [pts], False, int(code), thickness)
    fg = _run_grabcut(image, crop, scale, gc_mask, None, iterations)
    return _one_shot(doc, label, crop, fg, value, protect)
