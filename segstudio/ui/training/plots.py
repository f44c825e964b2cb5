"""Small pyqtgraph pieces shared by the live dashboard and the runs history: epoch curves,
grouped horizontal per-class bars, and a sortable per-class table (worst classes first)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QFont, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

# A plot's title, axis titles and three ticks that never overlap.
PLOT_MIN_HEIGHT = 150
PLOT_MIN_WIDTH = 200
# Colour-blind-safe (Okabe-Ito) colours, in the order series are added.
SERIES_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")

pg.setConfigOptions(antialias=True, background="w", foreground="#333333")


def make_plot(title: str, y_label: str, y_range: tuple[float, float] | None = None,
              parent: QWidget | None = None, log_y: bool = False, legend: bool = True) -> pg.PlotWidget:
    """An epoch plot. Losses use a log axis: a val loss that spikes early would otherwise
    flatten the train loss into a line at zero."""
    axes = {"left": LogAxis(orientation="left")} if log_y else None
    plot = pg.PlotWidget(parent=parent, axisItems=axes)
    plot.setTitle(title, size="10pt")
    plot.setLabel("bottom", "epoch")
    plot.setLabel("left", y_label)
    plot.showGrid(x=True, y=True, alpha=0.25)
    if legend:
        plot.addLegend(offset=(-8, 8), labelTextSize="8pt")
    if log_y:
        plot.setLogMode(x=False, y=True)
    plot.setMouseEnabled(x=False, y=False)
    plot.setMenuEnabled(False)
    plot.getPlotItem().hideButtons()
    if y_range is not None:
        plot.setYRange(*y_range, padding=0.02)
    plot.setMinimumHeight(PLOT_MIN_HEIGHT)
    return plot


class CurvePair(QWidget):
    """Two plots stacked, or side by side when the room is too short for two readable plots.

    In the Training dock, tabbed under the class list on a 1280x800 screen, two stacked plots
    asked for 300 px: the window grew past the screen, or (squeezed) their ticks overlapped.
    Side by side they need one plot's height, and the dock is wide enough for two."""

    def __init__(self, first: QWidget, second: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.addWidget(first)
        self.splitter.addWidget(second)
        self.splitter.setChildrenCollapsible(False)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(PLOT_MIN_WIDTH, PLOT_MIN_HEIGHT)  # side by side: one plot's height

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(2 * PLOT_MIN_WIDTH, 2 * PLOT_MIN_HEIGHT + self.splitter.handleWidth())

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        stacked = self.height() >= 2 * PLOT_MIN_HEIGHT + self.splitter.handleWidth()
        wide = self.width() >= 2 * PLOT_MIN_WIDTH + self.splitter.handleWidth()
        orientation = Qt.Orientation.Vertical if stacked or not wide else Qt.Orientation.Horizontal
        if orientation != self.splitter.orientation():
            self.splitter.setOrientation(orientation)
            half = (self.height() if stacked else self.width()) // 2
            self.splitter.setSizes([half, half])
        self.splitter.setGeometry(self.rect())  # no layout: its minimum would be the stacked one
        super().resizeEvent(event)


class LogAxis(pg.AxisItem):
    """A log axis whose labels never collide: 1-2-5 steps per decade, thinned to what the
    axis length holds, printed as plain numbers (0.2, 0.5, 1, 2) rather than exponents."""

    MIN_LABEL_PX = 22  # a label's height and some air

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:  # noqa: N802, N803
        if not self.logMode:
            return super().tickValues(minVal, maxVal, size)
        return [(1.0, log_ticks(minVal, maxVal, size, self.MIN_LABEL_PX))]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        if not self.logMode:
            return super().tickStrings(values, scale, spacing)
        return [f"{10 ** value:.3g}" for value in values]


def log_ticks(low: float, high: float, length_px: float, min_gap_px: float) -> list[float]:
    """log10 positions of 1-2-5 ticks between `low` and `high` (log10 values) at least
    `min_gap_px` apart on an axis `length_px` long; at least the two ends' decades."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low or length_px <= 0:
        return []
    px_per_unit = length_px / (high - low)
    for mantissas in ((1, 2, 5), (1, 3), (1,)):
        for every in (1, 2, 3, 5, 10):
            ticks = [math.log10(m) + decade
                     for decade in range(math.floor(low), math.ceil(high) + 1) if decade % every == 0
                     for m in mantissas if low <= math.log10(m) + decade <= high]
            gaps = [(b - a) * px_per_unit for a, b in zip(ticks, ticks[1:])]
            if len(ticks) >= 2 and min(gaps) >= min_gap_px:
                return ticks
            if len(ticks) < 2:
                break  # thinning further only loses ticks
    # Less than one 1-2-5 step fits in the range: label its two ends.
    return [low, high] if (high - low) * px_per_unit >= min_gap_px else [low]


def set_epoch_ticks(plot: pg.PlotWidget, last_epoch: int) -> None:
    """Whole-number epoch ticks (about ten at most), never 1.2, 1.4..."""
    step = max(1, math.ceil(max(1, last_epoch) / 10))
    plot.getAxis("bottom").setTickSpacing(step, step)
    plot.setXRange(0.8, max(2, last_epoch) + 0.2, padding=0)


def add_curve(plot: pg.PlotWidget, name: str, index: int, dashed: bool = False) -> pg.PlotDataItem:
    color = SERIES_COLORS[index % len(SERIES_COLORS)]
    style = Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine
    pen = pg.mkPen(color=color, width=2, style=style)
    return plot.plot([], [], pen=pen, name=name, symbol="o", symbolSize=5, symbolBrush=color,
                     symbolPen=None)


def set_series(curve: pg.PlotDataItem, points: Sequence[tuple[int, float | None]]) -> None:
    """Set (epoch, value) points, skipping undefined values."""
    xs = [float(x) for x, y in points if y is not None]
    ys = [float(y) for _, y in points if y is not None]
    curve.setData(xs, ys)


class ClassBars(pg.PlotWidget):
    """Grouped horizontal bars: one row per class (names on the left), one bar per series."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent=parent)
        self.setTitle(title, size="10pt")
        self.setMouseEnabled(x=False, y=False)
        self.setMenuEnabled(False)
        self.getPlotItem().hideButtons()
        self.showGrid(x=True, y=False, alpha=0.25)
        self.setXRange(0, 1, padding=0.02)
        self.getAxis("left").setStyle(tickFont=QFont(self.font().family(), 8))
        self.legend = self.addLegend(offset=(-8, 8), labelTextSize="8pt")
        self._items: list[pg.BarGraphItem] = []
        # short rooms get a few bars: the table beside it always has every class's figures
        self.setMinimumHeight(PLOT_MIN_HEIGHT - 50)

    def set_values(self, classes: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]]) -> None:
        """`classes` top to bottom; `series` is [(name, value per class)] (None: no bar)."""
        for item in self._items:
            self.removeItem(item)
        self._items.clear()
        if self.legend is not None:
            self.legend.clear()
        count = max(1, len(series))
        height = 0.8 / count
        rows = len(classes)
        for index, (name, values) in enumerate(series):
            color = SERIES_COLORS[index % len(SERIES_COLORS)]
            ys, widths = [], []
            for row, value in enumerate(values):
                if value is None:
                    continue
                # Row 0 at the top: y runs downwards from rows-1.
                ys.append(rows - 1 - row - 0.4 + height * (index + 0.5))
                widths.append(float(value))
            item = pg.BarGraphItem(x0=[0.0] * len(ys), y=ys, height=height * 0.9, width=widths,
                                   brush=QColor(color), pen=pg.mkPen(None), name=name)
            self.addItem(item)  # the legend picks up the named item itself
            self._items.append(item)
        self.getAxis("left").setTicks([[(rows - 1 - row, name) for row, name in enumerate(classes)]])
        self.setYRange(-0.6, rows - 0.4, padding=0)
        self.setXRange(0, 1, padding=0.02)


class _Number(QTableWidgetItem):
    """A table cell that sorts by number, with undefined values last."""

    def __init__(self, value: float | None) -> None:
        super().__init__("n/a" if value is None else f"{value:.3f}")
        self.value = value
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine = self.value if self.value is not None else float("inf")
        theirs = getattr(other, "value", None)
        return mine < (theirs if theirs is not None else float("inf"))


class ClassTable(QTableWidget):
    """Per-class figures; sortable by any column, sorted by the first figure (worst first)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 1, parent)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.verticalHeader().setVisible(False)
        self.setAlternatingRowColors(True)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)

    def set_rows(self, columns: Sequence[str], rows: dict[str, Sequence[float | None]]) -> None:
        self.setSortingEnabled(False)
        self.clear()
        self.setColumnCount(1 + len(columns))
        self.setHorizontalHeaderLabels(["class", *columns])
        self.setRowCount(len(rows))
        for row, (name, values) in enumerate(rows.items()):
            self.setItem(row, 0, QTableWidgetItem(name))
            for column, value in enumerate(values):
                self.setItem(row, column + 1, _Number(value))
        self.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.setSortingEnabled(True)
        if columns:
            self.sortItems(1, Qt.SortOrder.AscendingOrder)

    def column_values(self, column: int) -> list[str]:
        return [self.item(row, column).text() for row in range(self.rowCount())]


def worst_first(values: dict[str, float | None]) -> list[str]:
    """Class names ordered by value, lowest first, undefined last."""
    return sorted(values, key=lambda name: (values[name] is None, values[name] or 0.0))
