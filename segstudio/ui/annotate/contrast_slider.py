"""A contrast-limits slider drawn over a band's histogram: two handles, low and high.

Painted with QPainter rather than pyqtgraph: three of these sit in the Display dock, and a
plot widget each would cost an import and a scene per band for a strip of bars.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

MARGIN = 6  # px left and right, so a handle at either end can still be grabbed
GRAB = 10  # px: how near a handle a press must be to take it rather than the nearer one
BARS = QColor(170, 170, 170)
SHADE = QColor(0, 0, 0, 130)


class ContrastSlider(QWidget):
    """Histogram bars over `value_range`, with the limits as two draggable handles."""

    limits_changed = Signal(float, float)  # while the user drags

    def __init__(self, colour: QColor, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.colour = QColor(colour)
        self._counts = np.zeros(0)
        self._range = (0.0, 1.0)
        self._limits = (0.0, 1.0)
        self._held: int | None = None  # 0: low handle, 1: high handle
        self.setMinimumHeight(44)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setCursor(Qt.CursorShape.SizeHorCursor)

    def sizeHint(self) -> QSize:
        return QSize(240, 48)

    # -- values -------------------------------------------------------------------------------
    @property
    def value_range(self) -> tuple[float, float]:
        return self._range

    @property
    def limits(self) -> tuple[float, float]:
        return self._limits

    def set_histogram(self, counts: np.ndarray, low: float, high: float) -> None:
        """Bars of `counts`, evenly over the values low..high (the slider's range)."""
        self._counts = np.asarray(counts, dtype=np.float64)
        self._range = (float(low), float(max(high, low + 1e-9)))
        self.update()

    def set_limits(self, low: float, high: float) -> None:
        """Place the handles (no signal: the caller already knows)."""
        self._limits = (float(low), float(high))
        self.update()

    # -- geometry -----------------------------------------------------------------------------
    def x_of(self, value: float) -> float:
        lo, hi = self._range
        return MARGIN + (value - lo) / (hi - lo) * max(1, self.width() - 2 * MARGIN)

    def value_at(self, x: float) -> float:
        lo, hi = self._range
        share = (x - MARGIN) / max(1, self.width() - 2 * MARGIN)
        return lo + min(1.0, max(0.0, share)) * (hi - lo)

    # -- painting -----------------------------------------------------------------------------
    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        height = self.height()
        painter.fillRect(self.rect(), QColor(32, 32, 32))
        counts = self._counts
        if counts.size and counts.max() > 0:
            # log heights: a band's few bright pixels stay visible next to its dark mass
            heights = np.log1p(counts) / np.log1p(counts.max()) * (height - 4)
            step = (self.width() - 2 * MARGIN) / counts.size
            for index, bar in enumerate(heights):
                if bar > 0:
                    painter.fillRect(QRectF(MARGIN + index * step, height - bar, max(step, 1.0), bar), BARS)
        low_x, high_x = self.x_of(self._limits[0]), self.x_of(self._limits[1])
        painter.fillRect(QRectF(0, 0, max(0.0, low_x), height), SHADE)
        painter.fillRect(QRectF(high_x, 0, max(0.0, self.width() - high_x), height), SHADE)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(QPen(self.colour, 2))
        painter.setBrush(self.colour)
        for x in (low_x, high_x):
            painter.drawLine(QPointF(x, 0), QPointF(x, height))
            painter.drawPolygon(QPolygonF([QPointF(x - 5, 0), QPointF(x + 5, 0), QPointF(x, 7)]))
        painter.end()

    # -- dragging -----------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        x = event.position().x()
        low_x, high_x = self.x_of(self._limits[0]), self.x_of(self._limits[1])
        if abs(x - low_x) <= GRAB and abs(x - low_x) <= abs(x - high_x):
            self._held = 0
        elif abs(x - high_x) <= GRAB:
            self._held = 1
        else:  # elsewhere: the nearer handle jumps there
            self._held = 0 if abs(x - low_x) < abs(x - high_x) else 1
        self._drag_to(x)
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._held is not None:
            self._drag_to(event.position().x())
            event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._held = None
        event.accept()

    def _drag_to(self, x: float) -> None:
        value = self.value_at(x)
        low, high = self._limits
        gap = (self._range[1] - self._range[0]) / 1000  # the handles never cross
        if self._held == 0:
            low = min(value, high - gap)
        else:
            high = max(value, low + gap)
        if (low, high) != self._limits:
            self.set_limits(low, high)
            self.limits_changed.emit(low, high)
