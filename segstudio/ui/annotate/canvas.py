"""The annotation canvas: an image with its class mask overlay, zoom/pan, and editing tools.

The view owns no mask data: it draws the MaskDocument through tiled layers
(`canvas_render`) and turns pointer events into core tool calls (`canvas_tools`). The
document tells it which region changed after every edit (strokes, fills, undo by the main
window), and only those pixels are re-rendered and repainted.
"""

from __future__ import annotations

import math

import numpy as np
import shiboken6
from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QResizeEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QGraphicsScene, QGraphicsView, QWidget

from segstudio.core.errors import MaskError
from segstudio.core.imageio import to_rgb8
from segstudio.core.mask_document import MaskDocument
from segstudio.core.region import Region
from segstudio.ui.annotate.assist_session import AssistSession
from segstudio.ui.annotate.assist_tool import AssistTool
from segstudio.ui.annotate.canvas_render import ImageLayer, MaskLayer, RegionSource, RgbaLayer
from segstudio.ui.annotate.canvas_tools import MAX_BRUSH, MIN_BRUSH, TOOL_CLASSES, Pointer, Tool

MIN_SCALE, MAX_SCALE = 1 / 64, 64.0
WHEEL_STEP = 1.0015  # per eighth of a degree: one 15-degree notch zooms by about 20%
BACKGROUND = QColor(48, 48, 48)


def _as_pixels(image: np.ndarray | RegionSource) -> np.ndarray | RegionSource:
    """An array as 8-bit RGB; a RegionSource (a gigapixel image) as it is."""
    if hasattr(image, "read_scaled") and not isinstance(image, np.ndarray):
        return image
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        array = to_rgb8(array)
    return array


def _shape_of(image: np.ndarray | RegionSource) -> tuple[int, int]:
    return (int(image.shape[0]), int(image.shape[1]))


class Canvas(QGraphicsView):
    """Shows an image and its mask; paints on the mask with the selected tool."""

    cursor_moved = Signal(int, int, int)  # image x, y and the class id there (-1 outside)
    zoom_changed = Signal(float)
    edited = Signal()
    class_picked = Signal(int)
    brush_size_changed = Signal(int)
    overlay_visible_changed = Signal(bool)
    tool_changed = Signal(str)
    tool_error = Signal(str)  # a tool could not run (e.g. GrabCut without background); for the status bar

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontAdjustForAntialiasing, True)
        self.setBackgroundBrush(QBrush(BACKGROUND))
        self.setMouseTracking(True)
        self.viewport().setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self._image: np.ndarray | None = None
        self._doc: MaskDocument | None = None
        self._image_layer: ImageLayer | None = None
        self._mask_layer: MaskLayer | None = None
        self._extra: dict[str, RgbaLayer] = {}

        self._active_class = 0
        self._brush_size = 10
        self._protect = False
        self._tolerance = 20.0
        self._opacity = 0.5
        self._overlay_visible = True
        self._outline = False
        self._levels = (0.0, 255.0)

        self._tools: dict[str, Tool] = {name: cls(self) for name, cls in TOOL_CLASSES.items()}
        self._tools["assist"] = AssistTool(self)
        # the click assist's model and embeddings (segstudio.ui.annotate.assist_session); None: none loaded
        self.assist_session: AssistSession | None = None
        self._tool: Tool = self._tools["brush"]
        self._space_down = False
        self._pan_from: QPoint | None = None
        self._right_button_erases = True
        # While True the view re-fits on resize (a fresh document, or after zoom_fit).
        self._auto_fit = True
        self.viewport().setCursor(self._tool.cursor)

    # -- ToolHost ---------------------------------------------------------------------------
    @property
    def document(self) -> MaskDocument | None:
        return self._doc

    @property
    def image(self) -> np.ndarray | None:
        return self._image

    @property
    def pixel_source(self) -> RegionSource | None:
        """A gigapixel image's reader, for tools that read a window of it (None when the
        image is an ordinary array, which `image` holds whole)."""
        layer = self._image_layer
        return None if layer is None or self._image is not None else layer.region_source

    @property
    def active_class(self) -> int:
        return self._active_class

    @property
    def brush_size(self) -> int:
        return self._brush_size

    @property
    def protect(self) -> bool:
        return self._protect

    @property
    def right_button_erases(self) -> bool:
        return self._right_button_erases

    def set_right_button_erases(self, on: bool) -> None:
        """Right drag with the brush erases (on by default; some users keep it for nothing)."""
        self._right_button_erases = bool(on)

    @property
    def wand_tolerance(self) -> float:
        return self._tolerance

    @property
    def tool(self) -> str:
        return self._tool.name

    @property
    def scale_factor(self) -> float:
        return float(self.transform().m11())

    @property
    def mask_layer(self) -> MaskLayer | None:
        """The overlay's tile cache (tests and the benchmark count its renders)."""
        return self._mask_layer

    @property
    def image_layer(self) -> ImageLayer | None:
        return self._image_layer

    def pick_class(self, class_id: int) -> None:
        self.set_active_class(class_id)
        self.class_picked.emit(int(class_id))

    def notify_edited(self) -> None:
        self.edited.emit()

    def report_error(self, message: str) -> None:
        self.tool_error.emit(message)

    def request_repaint(self, rect: QRectF | None = None) -> None:
        """Repaint a scene rectangle (None: the whole viewport)."""
        if rect is None or rect.isNull():
            self.viewport().update()
        else:
            self.viewport().update(self.mapFromScene(rect).boundingRect().adjusted(-3, -3, 3, 3))

    # -- public API -------------------------------------------------------------------------
    def set_document(self, image_rgb: np.ndarray | RegionSource | None, doc: MaskDocument | None) -> None:
        """Show an image and its mask document (None clears the canvas and its extra layers)."""
        for tool in self._tools.values():
            tool.cancel()  # no half-drawn polygon or scribble may carry over to another image
        if self._doc is not None:
            self._doc.remove_listener(self._on_document_changed)
        self._doc = None
        self._image = None
        self._image_layer = None
        self._mask_layer = None
        self._extra.clear()
        if image_rgb is None or doc is None:
            self.scene().setSceneRect(QRectF(0, 0, 1, 1))
            self.viewport().update()
            return
        image = _as_pixels(image_rgb)
        height, width = _shape_of(image)
        if (height, width) != doc.shape:
            raise MaskError(
                f"the mask is {doc.shape[1]}x{doc.shape[0]} but the image is "
                f"{width}x{height}; the mask must match its image"
            )
        # A gigapixel image is read by tiles: tools that need the whole picture (wand,
        # GrabCut, assist) see no image and stay idle; brush, eraser, fill and polygon work.
        self._image = image if isinstance(image, np.ndarray) else None
        self._doc = doc
        self._image_layer = ImageLayer(image)
        self._image_layer.set_levels(*self._levels)
        self._mask_layer = MaskLayer(lambda: doc.mask, doc.classes)
        self._mask_layer.set_outline(self._outline)
        doc.add_listener(self._on_document_changed)
        h, w = doc.shape
        self.scene().setSceneRect(QRectF(0, 0, w, h))
        self.zoom_fit()
        self.viewport().update()

    def set_image(self, image_rgb: np.ndarray | RegionSource) -> None:
        """Show new pixels for the open document (the display mapping changed), keeping the
        mask, the zoom and pan, the tool's state and the extra layers."""
        if self._doc is None:
            return
        image = _as_pixels(image_rgb)
        height, width = _shape_of(image)
        if (height, width) != self._doc.shape:
            raise MaskError(
                f"the new pixels are {width}x{height} but the image is "
                f"{self._doc.shape[1]}x{self._doc.shape[0]}; they must match"
            )
        self._image = image if isinstance(image, np.ndarray) else None
        self._image_layer = ImageLayer(image)
        self._image_layer.set_levels(*self._levels)
        self.viewport().update()

    def set_tool(self, name: str) -> None:
        if name not in self._tools:
            raise ValueError(f"unknown tool '{name}'; tools are {', '.join(self._tools)}")
        if name == self._tool.name:
            return
        self._tool.cancel()
        self._tool = self._tools[name]
        self.viewport().setCursor(self._tool.cursor)
        self.viewport().update()
        self.tool_changed.emit(name)

    def set_active_class(self, class_id: int) -> None:
        self._active_class = int(class_id)

    def set_brush_size(self, radius: int) -> None:
        radius = max(MIN_BRUSH, min(MAX_BRUSH, int(radius)))
        if radius != self._brush_size:
            self._brush_size = radius
            self.brush_size_changed.emit(radius)
            self.viewport().update()

    def set_protect(self, on: bool) -> None:
        self._protect = bool(on)

    def set_wand_tolerance(self, value: float) -> None:
        self._tolerance = max(0.0, float(value))

    def set_overlay_opacity(self, value: float) -> None:
        self._opacity = min(1.0, max(0.0, float(value)))
        self.viewport().update()

    def set_overlay_visible(self, on: bool) -> None:
        if bool(on) != self._overlay_visible:
            self._overlay_visible = bool(on)
            self.overlay_visible_changed.emit(self._overlay_visible)
            self.viewport().update()

    @property
    def overlay_visible(self) -> bool:
        return self._overlay_visible

    def set_outline_mode(self, on: bool) -> None:
        self._outline = bool(on)
        if self._mask_layer is not None:
            self._mask_layer.set_outline(self._outline)
        self.viewport().update()

    def set_levels(self, low: float, high: float) -> None:
        """Stretch displayed intensities low..high to the full range (dark or 16-bit data)."""
        self._levels = (float(low), float(high))
        if self._image_layer is not None:
            self._image_layer.set_levels(low, high)
        self.viewport().update()

    def refresh_classes(self) -> None:
        if self._mask_layer is not None and self._doc is not None:
            self._mask_layer.set_classes(self._doc.classes)
        self.viewport().update()

    def set_extra_layer(self, name: str, rgba_or_none: np.ndarray | None) -> None:
        """Show (or with None remove) an RGBA layer above the mask, e.g. a prediction."""
        if rgba_or_none is None:
            self._extra.pop(name, None)
        else:
            layer = RgbaLayer(np.asarray(rgba_or_none))
            if self._doc is not None and (layer.height, layer.width) != self._doc.shape:
                raise MaskError(
                    f"layer '{name}' is {layer.width}x{layer.height} but the image is "
                    f"{self._doc.shape[1]}x{self._doc.shape[0]}"
                )
            self._extra[name] = layer
        self.viewport().update()

    def flush(self) -> None:
        """Render every visible stale tile now (benchmarks and tests time honest work)."""
        rect = self.visible_scene_rect()
        for layer in (self._image_layer, self._mask_layer):
            if layer is not None:
                grid, keys = layer.pyramid.visible_keys(rect, self.scale_factor)
                for key in keys:
                    grid.ensure(key)

    def visible_scene_rect(self) -> QRectF:
        return self.mapToScene(self.viewport().rect()).boundingRect()

    # -- zoom -------------------------------------------------------------------------------
    def zoom_fit(self) -> None:
        self._auto_fit = True
        if self._doc is None:
            return
        h, w = self._doc.shape
        view = self.viewport().rect()
        scale = min((view.width() - 8) / max(w, 1), (view.height() - 8) / max(h, 1))
        self._set_scale(max(MIN_SCALE, min(MAX_SCALE, scale)), None)
        self.centerOn(w / 2, h / 2)
        self._auto_fit = True

    def zoom_100(self) -> None:
        self._auto_fit = False
        self._set_scale(1.0, None)

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        """Zoom by `factor`, keeping the image point under `anchor` (viewport px) in place."""
        self._auto_fit = False
        self._set_scale(self.scale_factor * float(factor), anchor)

    def _set_scale(self, scale: float, anchor: QPointF | None) -> None:
        scale = max(MIN_SCALE, min(MAX_SCALE, scale))
        if anchor is None:
            anchor = QPointF(self.viewport().rect().center())
        fixed = self.viewportTransform().inverted()[0].map(anchor)
        self.setTransform(QTransform.fromScale(scale, scale))
        # Scroll so the scene point that was under the anchor is under it again.
        now = self.viewportTransform().map(fixed)
        hbar, vbar = self.horizontalScrollBar(), self.verticalScrollBar()
        hbar.setValue(hbar.value() + round(now.x() - anchor.x()))
        vbar.setValue(vbar.value() + round(now.y() - anchor.y()))
        self.viewport().update()
        self.zoom_changed.emit(scale)

    # -- painting ---------------------------------------------------------------------------
    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:
        painter.fillRect(rect, BACKGROUND)
        if self._image_layer is None:
            return
        # Crisp pixels when magnified; filtered when shrunk, so an 8k image at fit is not noise.
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.scale_factor < 1.0)
        self._image_layer.pyramid.draw(painter, rect, self.scale_factor)
        if self._overlay_visible and self._mask_layer is not None and self._opacity > 0:
            # Thin outlines at a low fill opacity would vanish; keep them clearly visible.
            painter.setOpacity(max(self._opacity, 0.85) if self._outline else self._opacity)
            self._mask_layer.pyramid.draw(painter, rect, self.scale_factor)
            painter.setOpacity(1.0)
        for layer in self._extra.values():
            layer.draw(painter, rect)

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        if self._doc is not None:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            self._tool.preview(painter, self.scale_factor)

    def _on_document_changed(self, region: Region) -> None:
        if not shiboken6.isValid(self):
            # The widget was destroyed while its document lives on (e.g. in a session cache).
            doc = self._doc
            if doc is not None:
                doc.remove_listener(self._on_document_changed)
            return
        if self._mask_layer is not None:
            self._mask_layer.update(region)
        pad = 1 if self._outline else 0
        self.request_repaint(QRectF(region.x0 - pad, region.y0 - pad, region.width + 2 * pad, region.height + 2 * pad))

    # -- pointer ----------------------------------------------------------------------------
    def _pointer(self, event: QMouseEvent) -> Pointer:
        pos = event.position()
        scene = self.viewportTransform().inverted()[0].map(pos)
        return Pointer(scene.x(), scene.y(), pos.x(), pos.y(), event.button(), event.modifiers())

    def _panning_button(self, event: QMouseEvent) -> bool:
        button = event.button()
        return button == Qt.MouseButton.MiddleButton or (
            button == Qt.MouseButton.LeftButton and (self._space_down or self._tool.name == "pan")
        )

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if self._panning_button(event):
            self._pan_from = event.position().toPoint()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        self._tool.press(self._pointer(event))
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._pan_from is not None:
            pos = event.position().toPoint()
            delta = pos - self._pan_from
            self._pan_from = pos
            hbar, vbar = self.horizontalScrollBar(), self.verticalScrollBar()
            self._auto_fit = False
            hbar.setValue(hbar.value() - delta.x())
            vbar.setValue(vbar.value() - delta.y())
            event.accept()
            return
        pointer = self._pointer(event)
        self._tool.move(pointer, event.buttons())
        self._emit_cursor(pointer)
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._pan_from is not None and event.button() in (
            Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton
        ):
            self._pan_from = None
            self.viewport().setCursor(
                Qt.CursorShape.OpenHandCursor if self._space_down else self._tool.cursor
            )
            event.accept()
            return
        self._tool.release(self._pointer(event))
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if self._tool.name == "polygon" and event.button() == Qt.MouseButton.LeftButton:
            self._tool.double_click(self._pointer(event))
        else:
            # Other tools treat a double-click as one more press.
            self.mousePressEvent(event)
        event.accept()

    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta().y() or event.angleDelta().x()
        if delta:
            self.zoom_by(WHEEL_STEP**delta, event.position())
        event.accept()

    def leaveEvent(self, event: QEvent) -> None:
        hover = getattr(self._tool, "hover", None)
        if hover is not None:
            self._tool.hover = None  # type: ignore[attr-defined]
            self.viewport().update()
        super().leaveEvent(event)

    def _emit_cursor(self, pointer: Pointer) -> None:
        class_id = -1
        if self._doc is not None:
            h, w = self._doc.shape
            if 0 <= pointer.ix < w and 0 <= pointer.iy < h:
                class_id = int(self._doc.mask[pointer.iy, pointer.ix])
        self.cursor_moved.emit(pointer.ix, pointer.iy, class_id)

    # -- keys -------------------------------------------------------------------------------
    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key == Qt.Key.Key_Space:
            if not event.isAutoRepeat():
                self._space_down = True
                self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            event.accept()
            return
        if key == Qt.Key.Key_BracketLeft:
            self.set_brush_size(self._brush_size - _size_step(self._brush_size))
        elif key == Qt.Key.Key_BracketRight:
            self.set_brush_size(self._brush_size + _size_step(self._brush_size))
        elif key == Qt.Key.Key_V and not event.modifiers():
            self.set_overlay_visible(not self._overlay_visible)
        elif not self._tool.key(key):
            super().keyPressEvent(event)
            return
        event.accept()

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            if self._pan_from is None:
                self.viewport().setCursor(self._tool.cursor)
            event.accept()
            return
        super().keyReleaseEvent(event)

    def focusOutEvent(self, event: QEvent) -> None:
        self._space_down = False
        super().focusOutEvent(event)  # type: ignore[arg-type]

    def focusNextPrevChild(self, next: bool) -> bool:
        # Tab cycles the assist's alternative masks while a proposal is open
        if self._tool.name == "assist" and self._tool.busy():
            return False
        return super().focusNextPrevChild(next)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._auto_fit:
            self.zoom_fit()  # a document set before the window was laid out still fits
        self.viewport().update()


def _size_step(radius: int) -> int:
    """Brush size keys step by about 10%, at least one pixel."""
    return max(1, int(math.ceil(radius * 0.1)))
