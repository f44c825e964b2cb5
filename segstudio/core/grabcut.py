"""GrabCut smart selection from a box or from scribbles, independent of any document.

The selection functions only read the image, so a UI may run them on a worker thread and
apply the result on its own thread with tools.apply_selection (one undoable edit). They
work on a crop around the box or scribbles, downscaled past MAX_PIXELS, so the cost
follows what the user pointed at, not the image size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from segstudio.core.errors import ToolError
from segstudio.core.region import EMPTY, Region

# GrabCut runs on a downscaled crop above this many pixels: its cost grows with the area
# (about 2-3 us of CPU per pixel for 5 iterations), and a smart select should answer in
# well under a second; the mask is upsampled smoothly, so edges stay clean.
MAX_PIXELS = 100_000


@dataclass(frozen=True)
class Selection:
    """Pixels picked by a smart tool: a box and a bool array of its shape."""

    region: Region
    where: np.ndarray


def _rgb8(image: np.ndarray) -> np.ndarray:
    """GrabCut takes 8-bit 3-channel images only: gray is repeated, alpha dropped."""
    if image.ndim == 3 and image.shape[2] != 3:
        image = image[:, :, :3] if image.shape[2] > 3 else image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.dtype != np.uint8:
        top = float(image.max()) if image.size else 1.0
        scale = 255.0 / top if top > 255 else 1.0
        image = np.clip(image.astype(np.float32) * scale, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def box_region(box: Sequence[float]) -> Region:
    """The pixels a box (x0, y0, x1, y1) in image coordinates covers (EMPTY if not finite)."""
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
    return min(1.0, math.sqrt(MAX_PIXELS / max(1, crop.area)))


GRABCUT_SEED = 12345


def _run_grabcut(
    image: np.ndarray,
    crop: Region,
    scale: float,
    gc_mask: np.ndarray,
    rect: tuple[int, int, int, int] | None,
    iterations: int,
) -> np.ndarray:
    """GrabCut on the (scaled) crop; returns the foreground as a bool array at crop size."""
    patch = image[crop.slices]
    if scale < 1.0:
        # Shrink before converting: the crop of a big box holds millions of pixels.
        if patch.dtype not in (np.uint8, np.uint16, np.float32):
            patch = patch.astype(np.float32)
        if patch.ndim == 3 and patch.shape[2] not in (1, 3, 4):
            patch = patch[:, :, :3]
        size = (gc_mask.shape[1], gc_mask.shape[0])
        patch = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)
    patch = _rgb8(patch)
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    mode = cv2.GC_INIT_WITH_RECT if rect is not None else cv2.GC_INIT_WITH_MASK
    # GrabCut seeds its colour models with k-means from OpenCV's (per-thread) random state:
    # a fixed seed gives the same answer for the same box every time.
    cv2.setRNGSeed(GRABCUT_SEED)
    try:
        cv2.grabCut(patch, gc_mask, rect, bgd, fgd, max(1, int(iterations)), mode)
    except cv2.error as exc:
        raise ToolError(
            "GrabCut needs both object and background pixels; draw a box with some background "
            "around the object, or add background scribbles"
        ) from exc
    fg = ((gc_mask == cv2.GC_FGD) | (gc_mask == cv2.GC_PR_FGD)).astype(np.float32)
    if scale < 1.0:
        # Linear upsampling then a 0.5 threshold: smooth edges instead of blocky ones.
        fg = cv2.resize(fg, (crop.width, crop.height), interpolation=cv2.INTER_LINEAR)
    return fg > 0.5


def _scaled_shape(crop: Region, scale: float) -> tuple[int, int]:
    return max(1, round(crop.height * scale)), max(1, round(crop.width * scale))


def box_selection(
    image: np.ndarray,
    box: Sequence[float],
    iterations: int = 5,
    margin: int | None = None,
) -> Selection | None:
    """The object GrabCut finds inside box (x0, y0, x1, y1); None for a box under 2 pixels.

    Works on a crop around the box (the box plus `margin`, default a quarter of its size)
    so the cost follows the box, not the image.
    """
    height, width = image.shape[:2]
    inner = box_region(box).clip(height, width)
    if inner.height < 2 or inner.width < 2:
        return None
    pad = margin if margin is not None else max(16, max(inner.height, inner.width) // 4)
    crop = inner.padded(pad).clip(height, width)
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
    # Outside the box is certain background: the selection is the box, not the crop.
    return Selection(inner, fg[local.slices])


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


def scribble_selection(
    image: np.ndarray,
    fg_points: Sequence,
    bg_points: Sequence,
    box: Sequence[float] | None = None,
    iterations: int = 5,
    scribble_radius: int = 3,
) -> Selection | None:
    """The object GrabCut finds from object (fg) and background (bg) scribbles, optionally
    within a box; None when there is neither an object scribble nor a box.

    Scribbled pixels are certain; with a box, outside it is certain background and inside
    probable object; without one, GrabCut works on a crop around the scribbles whose
    unscribbled pixels start as probable object (and whose rim is background when there
    are no background scribbles). Points are dots of `scribble_radius`; a list of point
    lists draws polylines.
    """
    height, width = image.shape[:2]
    fg_lines, bg_lines = _scribble_lines(fg_points), _scribble_lines(bg_points)
    inner = box_region(box).clip(height, width) if box is not None else EMPTY
    if not fg_lines and inner.empty:
        return None
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
    crop = span.padded(pad).clip(height, width)
    if crop.empty:
        return None
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
    # Object scribbles may lie outside a box, so the selection is the whole crop.
    return Selection(crop, fg)
