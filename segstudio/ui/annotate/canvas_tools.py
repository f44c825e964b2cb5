"""Pointer -> annotation tool controllers for the canvas.

Each controller turns press/move/release (in image coordinates) into calls of the Qt-free
tools in `segstudio.core.tools` on the canvas's MaskDocument, and draws its own preview
(brush footprint, polygon in progress, lasso path, box, scribbles). A press-move-release of
the brush is one stroke, so one undo step; fills are one-shot edits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Protocol

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen, QPolygonF

from segstudio.core import grabcut
from segstudio.core import tools as core_tools
from segstudio.core.errors import SegstudioError
from segstudio.core.grabcut import Selection, box_region
from segstudio.core.region import Region

if TYPE_CHECKING:
    from segstudio.core.mask_document import MaskDocument

TOOL_NAMES = (
    "brush", "eraser", "fill", "polygon", "lasso", "box_select", "scribble", "assist", "wand", "picker", "pan",
)
MIN_BRUSH, MAX_BRUSH = 1, 500
GIGAPIXEL_FILL_WINDOW = 4096  # side of the square a fill on a gigapixel image stays within
GIGAPIXEL_WAND_WINDOW = 2048  # side of the square of pixels a wand on one reads from the file
FG_COLOR = QColor(40, 220, 60)
BG_COLOR = QColor(230, 40, 40)


@dataclass(frozen=True)
class Pointer:
    """One pointer event in image coordinates (x, y floats) and viewport pixels."""

    x: float
    y: float
    view_x: float
    view_y: float
    button: Qt.MouseButton
    modifiers: Qt.KeyboardModifier

    @property
    def ix(self) -> int:
        return int(math.floor(self.x))

    @property
    def iy(self) -> int:
        return int(math.floor(self.y))


def _smart_pixels(host: ToolHost, around: Region) -> tuple[np.ndarray, int, int] | None:
    """The pixels a smart tool (wand, GrabCut) works on and where they sit in the image: the
    whole array of an ordinary image, or for a gigapixel image (read by tiles, no whole
    array) just the box `around` read from its file at full resolution. None: no image."""
    if host.image is not None:
        return host.image, 0, 0
    source, doc = getattr(host, "pixel_source", None), host.document
    if source is None or doc is None:
        return None
    box = around.clip(*doc.shape)
    if box.empty:
        return None
    return source.read_scaled(0, box), box.y0, box.x0


def _points_span(lines: list[list[tuple[float, float]]]) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) around every point of some scribbles, the last pixel included."""
    xs = [x for line in lines for x, _ in line]
    ys = [y for line in lines for _, y in line]
    return (min(xs), min(ys), max(xs) + 1, max(ys) + 1)


def _apply_found(doc: MaskDocument, label: str, select: Callable[[], Selection | None], dy: int, dx: int,
                 value: int, protect: bool) -> None:
    """Run a selection on a window of the image and paint it at the window's place."""
    found = select()
    if found is not None:
        core_tools.apply_selection(doc, label, Selection(found.region.shifted(dy, dx), found.where), value, protect)


class ToolHost(Protocol):
    """What a tool needs from the canvas (kept small so tools are easy to test and swap)."""

    @property
    def document(self) -> MaskDocument | None: ...
    @property
    def image(self) -> np.ndarray | None: ...
    @property
    def active_class(self) -> int: ...
    @property
    def brush_size(self) -> int: ...
    @property
    def protect(self) -> bool: ...
    @property
    def wand_tolerance(self) -> float: ...
    @property
    def right_button_erases(self) -> bool: ...
    def set_brush_size(self, radius: int) -> None: ...
    def pick_class(self, class_id: int) -> None: ...
    def notify_edited(self) -> None: ...
    def report_error(self, message: str) -> None: ...
    def request_repaint(self, rect: QRectF | None = None) -> None: ...


def cosmetic_pen(color: QColor, width: float = 1.5, style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> QPen:
    """A pen whose width is in screen pixels whatever the zoom."""
    pen = QPen(color, width, style)
    pen.setCosmetic(True)
    return pen


def _points_rect(points: list[tuple[float, float]], margin: float) -> QRectF:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return QRectF(min(xs) - margin, min(ys) - margin, max(xs) - min(xs) + 2 * margin, max(ys) - min(ys) + 2 * margin)


class Tool:
    """Base controller: ignores everything; subclasses override what they use."""

    name = ""
    cursor = Qt.CursorShape.CrossCursor

    def __init__(self, host: ToolHost) -> None:
        self.host = host

    def press(self, p: Pointer) -> None: ...
    def move(self, p: Pointer, buttons: Qt.MouseButton) -> None: ...
    def release(self, p: Pointer) -> None: ...
    def double_click(self, p: Pointer) -> None: ...

    def key(self, key: int) -> bool:
        """Handle a key; True if used."""
        return False

    def cancel(self) -> None:
        """Drop any edit in progress (tool switch, document change, Esc)."""

    def busy(self) -> bool:
        return False

    def preview(self, painter: QPainter, scale: float) -> None: ...

    def _value(self) -> int:
        return int(self.host.active_class)

    def _one_shot(self, edit_fn: Callable[..., object], *args: object) -> None:
        """Run a fill-style core tool and report an edit if it changed the mask."""
        doc = self.host.document
        if doc is None:
            return
        before = doc.revision
        try:
            edit_fn(*args)
        except SegstudioError as exc:
            self.host.report_error(str(exc))
            return
        if doc.revision != before:
            self.host.notify_edited()
        self.host.request_repaint()

    def _fill_outline(self, points: list[tuple[float, float]]) -> None:
        """Fill a closed outline (polygon or lasso) with the active class, as one edit."""
        points = _dedupe(points)
        doc = self.host.document
        if doc is not None and len(points) >= 3:
            self._one_shot(core_tools.polygon_fill, doc, points, self._value(), self.host.protect)
        self.host.request_repaint()


class BrushTool(Tool):
    """Round brush: a dab at press, segments while dragging; Ctrl+drag resizes instead.
    A right drag erases (the convention of most paint programs) unless the user turned it off."""

    name = "brush"

    def __init__(self, host: ToolHost) -> None:
        super().__init__(host)
        self._last: tuple[int, int] | None = None
        self._resize_from: tuple[float, int] | None = None
        self._stroke_value = 0
        self.hover: tuple[float, float] | None = None

    def _paint_value(self) -> int:
        return self._value()

    def press(self, p: Pointer) -> None:
        doc = self.host.document
        erase = (p.button == Qt.MouseButton.RightButton and self.name == "brush"
                 and self.host.right_button_erases)
        if doc is None or (p.button != Qt.MouseButton.LeftButton and not erase):
            return
        if p.modifiers & Qt.KeyboardModifier.ControlModifier and not erase:
            self._resize_from = (p.view_x, self.host.brush_size)
            return
        self._stroke_value = int(doc.classes.unlabeled_id) if erase else self._paint_value()
        doc.begin_stroke("Erase" if erase else self.name.capitalize())
        core_tools.dab(doc, p.ix, p.iy, self.host.brush_size, self._stroke_value, self.host.protect)
        self._last = (p.ix, p.iy)

    def move(self, p: Pointer, buttons: Qt.MouseButton) -> None:
        old_hover = self.hover
        self.hover = (p.x, p.y)
        if self._resize_from is not None:
            start_x, start_radius = self._resize_from
            # Half a screen pixel per pixel dragged: fine control without a long drag.
            self.host.set_brush_size(int(round(start_radius + (p.view_x - start_x) / 2)))
        elif self._last is not None:
            doc = self.host.document
            if doc is not None and (p.ix, p.iy) != self._last:
                x0, y0 = self._last
                core_tools.stroke_segment(
                    doc, x0, y0, p.ix, p.iy, self.host.brush_size, self._stroke_value, self.host.protect
                )
                self._last = (p.ix, p.iy)
        self._repaint_footprint(old_hover)

    def release(self, p: Pointer) -> None:
        if self._resize_from is not None:
            self._resize_from = None
            return
        if self._last is None:
            return
        self._last = None
        doc = self.host.document
        if doc is not None and doc.end_stroke():
            self.host.notify_edited()

    def cancel(self) -> None:
        self._resize_from = None
        if self._last is not None:
            self._last = None
            doc = self.host.document
            if doc is not None:
                doc.abort_stroke()

    def busy(self) -> bool:
        return self._last is not None

    def key(self, key: int) -> bool:
        if key == Qt.Key.Key_Escape and self._last is not None:
            self.cancel()  # Esc mid-stroke throws the stroke away
            self.host.request_repaint()
            return True
        return False

    def _footprint(self, at: tuple[float, float]) -> QRectF:
        r = self.host.brush_size + 2
        cx, cy = math.floor(at[0]) + 0.5, math.floor(at[1]) + 0.5
        return QRectF(cx - r, cy - r, 2 * r, 2 * r)

    def _repaint_footprint(self, old: tuple[float, float] | None) -> None:
        rect = self._footprint(self.hover) if self.hover else QRectF()
        if old is not None:
            rect = rect.united(self._footprint(old))
        self.host.request_repaint(rect)

    def preview(self, painter: QPainter, scale: float) -> None:
        if self.hover is None:
            return
        r = float(self.host.brush_size) + 0.5
        center = QPointF(math.floor(self.hover[0]) + 0.5, math.floor(self.hover[1]) + 0.5)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(cosmetic_pen(QColor(0, 0, 0, 200), 3.0))
        painter.drawEllipse(center, r, r)
        painter.setPen(cosmetic_pen(QColor(255, 255, 255, 230), 1.2))
        painter.drawEllipse(center, r, r)


class EraserTool(BrushTool):
    """The brush painting the unlabeled (ignore) id."""

    name = "eraser"

    def _paint_value(self) -> int:
        doc = self.host.document
        return int(doc.classes.unlabeled_id) if doc is not None else 255


class FillTool(Tool):
    """Flood fill of the connected same-class region under the click."""

    name = "fill"

    def press(self, p: Pointer) -> None:
        doc = self.host.document
        if doc is None or p.button != Qt.MouseButton.LeftButton or not _inside(doc, p):
            return
        # A gigapixel image (no whole array on the host) fills within a window around the click.
        window = None if self.host.image is not None else GIGAPIXEL_FILL_WINDOW
        self._one_shot(partial(core_tools.flood_fill, window=window), doc, p.ix, p.iy, self._value(),
                       self.host.protect)


class WandTool(Tool):
    """Magic wand: fill the connected region of similar colour under the click."""

    name = "wand"

    def press(self, p: Pointer) -> None:
        doc, image = self.host.document, self.host.image
        if doc is None or p.button != Qt.MouseButton.LeftButton or not _inside(doc, p):
            return
        tolerance = float(self.host.wand_tolerance)
        if image is not None:
            self._one_shot(core_tools.magic_wand, doc, image, p.ix, p.iy, tolerance, self._value(), self.host.protect)
            return
        # A gigapixel image: the region grows within a window read around the click.
        half = GIGAPIXEL_WAND_WINDOW // 2
        found = _smart_pixels(self.host, Region(int(p.iy) - half, int(p.ix) - half, int(p.iy) + half, int(p.ix) + half))
        if found is None:
            return
        pixels, dy, dx = found
        self._one_shot(_apply_found, doc, "Magic wand",
                       lambda: core_tools.magic_wand_select(pixels, p.ix - dx, p.iy - dy, tolerance),
                       dy, dx, self._value(), self.host.protect)


class PickerTool(Tool):
    """Pick the class under the click as the active class."""

    name = "picker"

    def press(self, p: Pointer) -> None:
        doc = self.host.document
        if doc is None or p.button != Qt.MouseButton.LeftButton or not _inside(doc, p):
            return
        self.host.pick_class(int(core_tools.pick(doc, p.ix, p.iy)))


class PanTool(Tool):
    """Left drag pans (the canvas does the scrolling)."""

    name = "pan"
    cursor = Qt.CursorShape.OpenHandCursor


def _inside(doc: MaskDocument, p: Pointer) -> bool:
    h, w = doc.shape
    return 0 <= p.ix < w and 0 <= p.iy < h


class PolygonTool(Tool):
    """Click vertices; double-click or Enter fills the polygon, Backspace drops one, Esc cancels."""

    name = "polygon"

    def __init__(self, host: ToolHost) -> None:
        super().__init__(host)
        self.points: list[tuple[float, float]] = []
        self.hover: tuple[float, float] | None = None

    def press(self, p: Pointer) -> None:
        if p.button == Qt.MouseButton.LeftButton and self.host.document is not None:
            self.points.append((p.x, p.y))
            self.host.request_repaint()

    def move(self, p: Pointer, buttons: Qt.MouseButton) -> None:
        self.hover = (p.x, p.y)
        if self.points:
            self.host.request_repaint()

    def double_click(self, p: Pointer) -> None:
        # The press of this double-click already added its vertex; close the shape here.
        self.commit()

    def key(self, key: int) -> bool:
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.commit()
            return True
        if key == Qt.Key.Key_Escape and self.points:
            self.cancel()
            return True
        if key == Qt.Key.Key_Backspace and self.points:
            self.points.pop()
            self.host.request_repaint()
            return True
        return False

    def commit(self) -> None:
        points, self.points = self.points, []
        self._fill_outline(points)

    def cancel(self) -> None:
        self.points = []
        self.host.request_repaint()

    def busy(self) -> bool:
        return bool(self.points)

    def preview(self, painter: QPainter, scale: float) -> None:
        if not self.points:
            return
        poly = QPolygonF([QPointF(x, y) for x, y in self.points])
        if self.hover is not None:
            poly.append(QPointF(*self.hover))
        painter.setPen(cosmetic_pen(QColor(255, 255, 0), 1.5))
        painter.setBrush(QColor(255, 255, 0, 40))
        painter.drawPolygon(poly)
        painter.setBrush(QColor(255, 255, 0))
        r = 3.0 / max(scale, 1e-6)
        for x, y in self.points:
            painter.drawEllipse(QPointF(x, y), r, r)


def _dedupe(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Drop consecutive repeats (a double-click adds the same vertex twice)."""
    out: list[tuple[float, float]] = []
    for point in points:
        if not out or abs(out[-1][0] - point[0]) > 1e-6 or abs(out[-1][1] - point[1]) > 1e-6:
            out.append(point)
    return out


class LassoTool(Tool):
    """Freehand lasso: drag a closed outline; release fills it."""

    name = "lasso"

    def __init__(self, host: ToolHost) -> None:
        super().__init__(host)
        self.points: list[tuple[float, float]] = []

    def press(self, p: Pointer) -> None:
        if p.button == Qt.MouseButton.LeftButton and self.host.document is not None:
            self.points = [(p.x, p.y)]

    def move(self, p: Pointer, buttons: Qt.MouseButton) -> None:
        if self.points:
            last = self.points[-1]
            if abs(p.x - last[0]) + abs(p.y - last[1]) >= 0.5:
                self.points.append((p.x, p.y))
                self.host.request_repaint(_points_rect(self.points[-2:], 4))

    def release(self, p: Pointer) -> None:
        points, self.points = self.points, []
        self._fill_outline(points)

    def cancel(self) -> None:
        self.points = []
        self.host.request_repaint()

    def busy(self) -> bool:
        return bool(self.points)

    def key(self, key: int) -> bool:
        if key == Qt.Key.Key_Escape and self.points:
            self.cancel()
            return True
        return False

    def preview(self, painter: QPainter, scale: float) -> None:
        if len(self.points) < 2:
            return
        path = QPainterPath(QPointF(*self.points[0]))
        for x, y in self.points[1:]:
            path.lineTo(x, y)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(cosmetic_pen(QColor(255, 255, 0), 1.5, Qt.PenStyle.DashLine))
        painter.drawPath(path)


class BoxSelectTool(Tool):
    """Drag a box around an object; release runs GrabCut inside it."""

    name = "box_select"
    MIN_SIDE = 4

    def __init__(self, host: ToolHost) -> None:
        super().__init__(host)
        self.start: tuple[float, float] | None = None
        self.end: tuple[float, float] | None = None

    def press(self, p: Pointer) -> None:
        if p.button == Qt.MouseButton.LeftButton and self.host.document is not None:
            self.start = self.end = (p.x, p.y)

    def move(self, p: Pointer, buttons: Qt.MouseButton) -> None:
        if self.start is not None:
            old = self.rect()
            self.end = (p.x, p.y)
            self.host.request_repaint(old.united(self.rect()).adjusted(-4, -4, 4, 4))

    def rect(self) -> QRectF:
        if self.start is None or self.end is None:
            return QRectF()
        return QRectF(QPointF(*self.start), QPointF(*self.end)).normalized()

    def release(self, p: Pointer) -> None:
        if self.start is None:
            return
        self.end = (p.x, p.y)
        rect = self.rect()
        self.start = self.end = None
        doc, image = self.host.document, self.host.image
        self.host.request_repaint()
        if doc is None:
            return
        if rect.width() < self.MIN_SIDE or rect.height() < self.MIN_SIDE:
            return  # a click, not a box
        box = (rect.left(), rect.top(), rect.right(), rect.bottom())
        if image is not None:
            self._one_shot(core_tools.grabcut_box, doc, image, box, self._value(), self.host.protect)
            return
        # A gigapixel image: GrabCut reads the box and the margin it looks at around it.
        inner = box_region(box)
        found = _smart_pixels(self.host, inner.padded(max(16, max(inner.height, inner.width) // 4)))
        if found is None:
            return
        pixels, dy, dx = found
        local = (box[0] - dx, box[1] - dy, box[2] - dx, box[3] - dy)
        self._one_shot(_apply_found, doc, "GrabCut", lambda: grabcut.box_selection(pixels, local),
                       dy, dx, self._value(), self.host.protect)

    def cancel(self) -> None:
        self.start = self.end = None
        self.host.request_repaint()

    def busy(self) -> bool:
        return self.start is not None

    def preview(self, painter: QPainter, scale: float) -> None:
        if self.start is not None:
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(cosmetic_pen(QColor(255, 255, 0), 1.5, Qt.PenStyle.DashLine))
            painter.drawRect(self.rect())


class ScribbleTool(Tool):
    """GrabCut from scribbles: left drag marks object, right drag background, Enter applies."""

    name = "scribble"

    def __init__(self, host: ToolHost) -> None:
        super().__init__(host)
        self.fg: list[list[tuple[float, float]]] = []
        self.bg: list[list[tuple[float, float]]] = []
        self._current: list[tuple[float, float]] | None = None

    def press(self, p: Pointer) -> None:
        if self.host.document is None:
            return
        if p.button == Qt.MouseButton.LeftButton:
            self._current = [(p.x, p.y)]
            self.fg.append(self._current)
        elif p.button == Qt.MouseButton.RightButton:
            self._current = [(p.x, p.y)]
            self.bg.append(self._current)

    def move(self, p: Pointer, buttons: Qt.MouseButton) -> None:
        if self._current is not None:
            self._current.append((p.x, p.y))
            self.host.request_repaint(_points_rect(self._current[-2:], 6))

    def release(self, p: Pointer) -> None:
        self._current = None

    def key(self, key: int) -> bool:
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.commit()
            return True
        if key == Qt.Key.Key_Escape and (self.fg or self.bg):
            self.cancel()
            return True
        return False

    def commit(self) -> None:
        doc, image = self.host.document, self.host.image
        fg, bg = [list(x) for x in self.fg], [list(x) for x in self.bg]
        self.fg, self.bg, self._current = [], [], None
        self.host.request_repaint()
        if doc is None or not fg:
            return
        if image is not None:
            self._one_shot(
                core_tools.grabcut_scribbles, doc, image, fg, bg, self._value(), None, self.host.protect
            )
            return
        # A gigapixel image: GrabCut reads the scribbles' span and the margin it looks at.
        span = box_region(_points_span(fg + bg))
        found = _smart_pixels(self.host, span.padded(max(16, max(span.height, span.width) // 2)))
        if found is None:
            return
        pixels, dy, dx = found
        fg_local = [[(x - dx, y - dy) for x, y in line] for line in fg]
        bg_local = [[(x - dx, y - dy) for x, y in line] for line in bg]
        self._one_shot(_apply_found, doc, "GrabCut",
                       lambda: grabcut.scribble_selection(pixels, fg_local, bg_local),
                       dy, dx, self._value(), self.host.protect)

    def cancel(self) -> None:
        self.fg, self.bg, self._current = [], [], None
        self.host.request_repaint()

    def busy(self) -> bool:
        return bool(self.fg or self.bg)

    def preview(self, painter: QPainter, scale: float) -> None:
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for strokes, color in ((self.fg, FG_COLOR), (self.bg, BG_COLOR)):
            painter.setPen(cosmetic_pen(color, 3.0))
            for stroke in strokes:
                if len(stroke) == 1:
                    painter.drawPoint(QPointF(*stroke[0]))
                else:
                    painter.drawPolyline(QPolygonF([QPointF(x, y) for x, y in stroke]))


TOOL_CLASSES: dict[str, type[Tool]] = {
    "brush": BrushTool,
    "eraser": EraserTool,
    "fill": FillTool,
    "polygon": PolygonTool,
    "lasso": LassoTool,
    "box_select": BoxSelectTool,
    "scribble": ScribbleTool,
    "wand": WandTool,
    "picker": PickerTool,
    "pan": PanTool,
}
