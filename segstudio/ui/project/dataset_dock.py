"""The dataset dock: the project's images with thumbnails, status and split, filters, counts."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QPainter, QPalette
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from segstudio.core import display, gigapixel_project
from segstudio.core.errors import ProjectError
from segstudio.core.project import SPLITS, STATUSES, Project
from segstudio.ui.project.thumbnails import ThumbnailCache

ID_ROLE = Qt.ItemDataRole.UserRole + 1
STATUS_ROLE = Qt.ItemDataRole.UserRole + 2
SPLIT_ROLE = Qt.ItemDataRole.UserRole + 3
THUMB_ROLE = Qt.ItemDataRole.UserRole + 4

STATUS_COLORS = {
    "unlabeled": QColor(150, 150, 150),
    "in_progress": QColor(230, 160, 30),
    "labeled": QColor(60, 150, 230),
    "predicted": QColor(160, 90, 210),
    "reviewed": QColor(40, 170, 80),
}
Index = QModelIndex | QPersistentModelIndex


def status_text(status: str) -> str:
    return status.replace("_", " ")


class DatasetModel(QAbstractListModel):
    """One row per project image, in manifest order."""

    def __init__(self, project: Project, thumbnails: ThumbnailCache) -> None:
        super().__init__()
        self.project = project
        self.thumbnails = thumbnails
        self._ids = [rec.id for rec in project.images]
        self._rows = {image_id: row for row, image_id in enumerate(self._ids)}
        thumbnails.ready.connect(self._on_thumbnails_ready)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._ids)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        record = self.project.image(self._ids[index.row()])
        if role == Qt.ItemDataRole.DisplayRole or role == ID_ROLE:
            return record.id
        if role == STATUS_ROLE:
            return record.status
        if role == SPLIT_ROLE:
            return record.split
        if role == THUMB_ROLE:
            return self.thumbnails.get(record.id, self.project.image_path(record))
        if role == Qt.ItemDataRole.ToolTipRole:
            return (f"{record.id}\n{record.width} x {record.height}\n{record.split}, "
                    f"{status_text(record.status)}\n{self.project.image_path(record)}")
        return None

    def ids(self) -> list[str]:
        return list(self._ids)

    def row_of(self, image_id: str) -> int:
        return self._rows.get(image_id, -1)

    def refresh(self, image_id: str) -> None:
        row = self.row_of(image_id)
        if row >= 0:
            index = self.index(row)
            self.dataChanged.emit(index, index)

    def _on_thumbnails_ready(self, image_id: str) -> None:
        self.refresh(image_id)


class DatasetFilter(QSortFilterProxyModel):
    """Filters rows by status, split and a name substring. The open image is pinned: it stays
    listed while it is open even when an edit takes it out of the filter (a first stroke on an
    'unlabeled' image makes it 'in progress'), and leaves the list when the user moves on."""

    def __init__(self) -> None:
        super().__init__()
        self.status: str | None = None
        self.split: str | None = None
        self.text = ""
        self.pinned: str | None = None

    def pin(self, image_id: str | None) -> None:
        if image_id != self.pinned:
            self.pinned = image_id
            self.invalidateFilter()

    def set_filters(self, status: str | None, split: str | None, text: str) -> None:
        self.status, self.split, self.text = status, split, text.strip().lower()
        self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        index = self.sourceModel().index(source_row, 0, source_parent)
        if self.pinned is not None and index.data(ID_ROLE) == self.pinned:
            return True
        if self.status and index.data(STATUS_ROLE) != self.status:
            return False
        if self.split and index.data(SPLIT_ROLE) != self.split:
            return False
        return not self.text or self.text in str(index.data(ID_ROLE)).lower()


class DatasetDelegate(QStyledItemDelegate):
    """Thumbnail on the left; name, then a status dot with split and status."""

    def __init__(self, thumb: QSize) -> None:
        super().__init__()
        self.thumb = thumb

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        # As narrow as a thumbnail and a few letters: the name is elided to the list's width
        # (full name and path in the tooltip), so the list never scrolls sideways.
        return QSize(self.thumb.width() + 64, self.thumb.height() + 8)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        painter.save()
        rect = option.rect
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        palette = option.palette
        if selected:
            painter.fillRect(rect, palette.color(QPalette.ColorRole.Highlight))
        text_color = palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        )
        thumb_rect = QRect(rect.left() + 4, rect.top() + 4, self.thumb.width(), self.thumb.height())
        pixmap = index.data(THUMB_ROLE)
        if pixmap is not None and not pixmap.isNull():
            scaled = pixmap.scaled(self.thumb, Qt.AspectRatioMode.KeepAspectRatio,
                                   Qt.TransformationMode.SmoothTransformation)
            painter.drawPixmap(thumb_rect.left(), thumb_rect.top(), scaled)
        else:
            painter.fillRect(thumb_rect, QColor(200, 200, 200, 120))
        status = str(index.data(STATUS_ROLE))
        left = thumb_rect.right() + 8
        width = rect.right() - left - 4
        font = QFont(option.font)
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(text_color)
        name_rect = QRect(left, rect.top() + 6, width, rect.height() // 2 - 4)
        name = painter.fontMetrics().elidedText(str(index.data(ID_ROLE)), Qt.TextElideMode.ElideMiddle, width)
        painter.drawText(name_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)
        painter.setFont(option.font)
        dot = QRect(left, rect.top() + rect.height() // 2 + 6, 10, 10)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setBrush(STATUS_COLORS.get(status, QColor("gray")))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.drawEllipse(dot)
        painter.setPen(text_color)
        info_rect = QRect(left + 16, rect.top() + rect.height() // 2, width - 16, rect.height() // 2 - 2)
        info = f"{status_text(status)} · {index.data(SPLIT_ROLE)}"
        painter.drawText(info_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, info)
        painter.restore()


class DatasetDock(QDockWidget):
    """The image list; `image_selected(image_id)` when the user picks a row."""

    image_selected = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Images", parent)
        self.setObjectName("dataset_dock")
        self.thumbnails = ThumbnailCache(parent=self)
        self.model: DatasetModel | None = None
        self._current_id: str | None = None
        self._quiet = False
        self.proxy = DatasetFilter()
        body = QWidget(self)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        filters = QHBoxLayout()
        self.status_filter = self._combo("status_filter", "All statuses", STATUSES)
        self.split_filter = self._combo("split_filter", "All splits", SPLITS)
        filters.addWidget(self.status_filter)
        filters.addWidget(self.split_filter)
        layout.addLayout(filters)
        self.name_filter = QLineEdit(body)
        self.name_filter.setObjectName("name_filter")
        self.name_filter.setPlaceholderText("Filter by name")
        self.name_filter.setClearButtonEnabled(True)
        layout.addWidget(self.name_filter)
        self.view = QListView(body)
        self.view.setObjectName("image_list")
        self.view.setModel(self.proxy)
        self.view.setItemDelegate(DatasetDelegate(self.thumbnails.size))
        self.view.setUniformItemSizes(True)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.view.setSelectionMode(QListView.SelectionMode.SingleSelection)
        layout.addWidget(self.view, 1)
        self.counts = QLabel(body)
        self.counts.setObjectName("image_counts")
        self.counts.setWordWrap(True)
        layout.addWidget(self.counts)
        self.setWidget(body)
        self.status_filter.currentIndexChanged.connect(self._on_filter_changed)
        self.split_filter.currentIndexChanged.connect(self._on_filter_changed)
        self.name_filter.textChanged.connect(self._on_filter_changed)
        self.view.selectionModel().currentChanged.connect(self._on_view_current_changed)

    def _combo(self, name: str, everything: str, values: tuple[str, ...]) -> QComboBox:
        combo = QComboBox(self)
        combo.setObjectName(name)
        combo.addItem(everything, None)
        for value in values:
            combo.addItem(status_text(value), value)
        return combo

    def set_project(self, project: Project | None) -> None:
        self.thumbnails.clear()
        try:  # thumbnails look like the canvas: through the project's display mapping
            mapping = None if project is None else display.mapping_of(project.settings)
        except ProjectError:
            mapping = None  # malformed: the canvas says so when it opens an image
        self.thumbnails.set_mapping(mapping)
        self.thumbnails.pyramid_dir = None if project is None else project.root / gigapixel_project.PYRAMID_CACHE
        self._current_id = None
        self.proxy.pinned = None
        self.model = None if project is None else DatasetModel(project, self.thumbnails)
        self.proxy.setSourceModel(self.model)
        self.update_counts()

    def set_mapping(self, mapping: display.DisplayMapping | None) -> None:
        """The display mapping changed: thumbnails are rendered through it anew."""
        self.thumbnails.set_mapping(mapping)
        self.view.viewport().update()  # rows ask for their thumbnails again as they paint

    def reload(self) -> None:
        """Rebuild the rows after another program added or removed images (thumbnails,
        filters and the current row are kept)."""
        if self.model is None:
            return
        old = self.model
        old.thumbnails.ready.disconnect(old._on_thumbnails_ready)
        self.model = DatasetModel(old.project, self.thumbnails)
        self._quiet = True  # the view's current row resets: no image opens behind the user's back
        try:
            self.proxy.setSourceModel(self.model)
        finally:
            self._quiet = False
        self._refilter()

    def _on_filter_changed(self, *_: object) -> None:
        self._refilter()

    def _on_view_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid() and not self._quiet:
            self.image_selected.emit(str(current.data(ID_ROLE)))

    def visible_ids(self) -> list[str]:
        """Image ids in the order the list shows them (navigation follows the filter)."""
        return [str(self.proxy.index(row, 0).data(ID_ROLE)) for row in range(self.proxy.rowCount())]

    def select(self, image_id: str) -> None:
        """Show `image_id` as current without emitting image_selected."""
        self._current_id = image_id
        if self.model is None:
            return
        self._quiet = True
        try:
            proxy_index = self._proxy_index(image_id)
            if not proxy_index.isValid():  # outside the filter: pinned at once, so it shows
                self.proxy.pin(image_id)
                proxy_index = self._proxy_index(image_id)
            if proxy_index.isValid():
                self.view.setCurrentIndex(proxy_index)
        finally:
            self._quiet = False
        if proxy_index.isValid():
            self.view.scrollTo(proxy_index)
        else:
            self.view.clearSelection()
        if self.proxy.pinned != image_id:
            # The image left behind leaves the list, but only once the click that chose this
            # one is handled: rows moving under a mouse press would select the row that slid
            # under the pointer (seen: the list highlighting one image, the canvas another).
            QTimer.singleShot(0, self._repin)

    def _proxy_index(self, image_id: str) -> QModelIndex:
        assert self.model is not None
        return self.proxy.mapFromSource(self.model.index(self.model.row_of(image_id)))

    def _repin(self) -> None:
        if self.model is None or self._current_id is None or self.proxy.pinned == self._current_id:
            return
        self._quiet = True  # rows vanish; no image may open behind the user's back
        try:
            self.proxy.pin(self._current_id)
            proxy_index = self._proxy_index(self._current_id)
            if proxy_index.isValid():
                self.view.setCurrentIndex(proxy_index)
        finally:
            self._quiet = False
        self.update_counts()

    def refresh(self, image_id: str) -> None:
        """Repaint a row after its status changed."""
        if self.model is None:
            return
        self._quiet = True  # the proxy re-filters on dataChanged; the view's current row may move
        try:
            self.model.refresh(image_id)
        finally:
            self._quiet = False
        self._refilter()

    def _refilter(self) -> None:
        # Rows may vanish under a filter; the view then moves its current row, which must
        # not open another image behind the user's back.
        self._quiet = True
        try:
            self.proxy.set_filters(self.status_filter.currentData(), self.split_filter.currentData(),
                                   self.name_filter.text())
        finally:
            self._quiet = False
        if self._current_id is not None:
            self.select(self._current_id)
        self.update_counts()

    def update_counts(self) -> None:
        if self.model is None:
            self.counts.setText("")
            return
        records = self.model.project.images
        per_status = {s: sum(1 for r in records if r.status == s) for s in STATUSES}
        parts = [f"{n} {status_text(s)}" for s, n in per_status.items() if n]
        shown = self.proxy.rowCount()
        head = f"{len(records)} images" if shown == len(records) else f"{shown} of {len(records)} shown"
        self.counts.setText(head + " — " + ", ".join(parts))
