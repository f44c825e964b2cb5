"""The annotation canvas driven with real mouse and key events, offscreen.

Each tool is exercised through press/move/release on the viewport and judged by the mask
pixels it leaves in the MaskDocument; rendering is judged by what the tile cache renders.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QKeyEvent, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from segstudio.core.classes import ClassDef, ClassTable, load_class_file
from segstudio.core.errors import MaskError
from segstudio.core.imageio import read_image_rgb, read_mask
from segstudio.core.mask_document import MaskDocument
from segstudio.core.region import Region
from segstudio.ui.annotate.canvas import Canvas

UNLABELED = 255
LEFT, RIGHT, MIDDLE = Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton, Qt.MouseButton.MiddleButton
NOBUTTON = Qt.MouseButton.NoButton
NOMOD = Qt.KeyboardModifier.NoModifier


def make_classes() -> ClassTable:
    return ClassTable(
        (
            ClassDef(0, "background", (20, 20, 20)),
            ClassDef(1, "road", (128, 64, 128)),
            ClassDef(2, "car", (64, 0, 128)),
            ClassDef(3, "tree", (128, 128, 0)),
            ClassDef(UNLABELED, "unlabeled", (0, 0, 0), ignore=True),
        )
    )


def disk_scene(size: int = 160, radius: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """A red disk on a noisy grey background, and the disk's true mask."""
    rng = np.random.default_rng(7)
    image = rng.normal(70, 6, (size, size, 3)).clip(0, 255).astype(np.uint8)
    truth = np.zeros((size, size), np.uint8)
    cv2.circle(truth, (size // 2, size // 2), radius, 1, -1)
    image[truth.astype(bool)] = rng.normal((200, 50, 50), 6, (int(truth.sum()), 3)).clip(0, 255).astype(np.uint8)
    return image, truth.astype(bool)


class Driver:
    """Sends real QMouseEvents/QKeyEvents to the canvas at image pixel coordinates."""

    def __init__(self, canvas: Canvas) -> None:
        self.canvas = canvas
        self.buttons = NOBUTTON

    def view_pos(self, x: float, y: float) -> QPointF:
        # The centre of image pixel (x, y), in viewport coordinates.
        return self.canvas.viewportTransform().map(QPointF(x + 0.5, y + 0.5))

    def _send(self, kind: QEvent.Type, pos: QPointF, button: Qt.MouseButton, mods: Qt.KeyboardModifier) -> None:
        viewport = self.canvas.viewport()
        glob = QPointF(viewport.mapToGlobal(pos.toPoint()))
        event = QMouseEvent(kind, pos, glob, button, self.buttons, mods)
        QApplication.sendEvent(viewport, event)

    def press(self, x: float, y: float, button=LEFT, mods=NOMOD) -> None:
        self.buttons |= button
        self._send(QEvent.Type.MouseButtonPress, self.view_pos(x, y), button, mods)

    def move(self, x: float, y: float, mods=NOMOD) -> None:
        self._send(QEvent.Type.MouseMove, self.view_pos(x, y), NOBUTTON, mods)

    def release(self, x: float, y: float, button=LEFT, mods=NOMOD) -> None:
        self.buttons &= ~button
        self._send(QEvent.Type.MouseButtonRelease, self.view_pos(x, y), button, mods)

    def double_click(self, x: float, y: float) -> None:
        self.buttons |= LEFT
        self._send(QEvent.Type.MouseButtonDblClick, self.view_pos(x, y), LEFT, NOMOD)

    def click(self, x: float, y: float, button=LEFT) -> None:
        self.press(x, y, button)
        self.release(x, y, button)

    def drag(self, points: list[tuple[float, float]], button=LEFT, mods=NOMOD) -> None:
        self.press(*points[0], button=button, mods=mods)
        for point in points[1:]:
            self.move(*point, mods=mods)
        self.release(*points[-1], button=button, mods=mods)

    def key(self, key: Qt.Key, text: str = "") -> None:
        for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            QApplication.sendEvent(self.canvas, QKeyEvent(kind, key, NOMOD, text))


def open_doc(canvas: Canvas, image: np.ndarray, mask: np.ndarray, classes: ClassTable | None = None) -> MaskDocument:
    doc = MaskDocument(mask.copy(), classes or make_classes())
    canvas.set_document(image, doc)
    canvas.zoom_fit()
    return doc


@pytest.fixture
def blank(canvas: Canvas) -> tuple[Canvas, MaskDocument, Driver]:
    image, _ = disk_scene()
    doc = open_doc(canvas, image, np.full((160, 160), UNLABELED, np.uint8))
    return canvas, doc, Driver(canvas)


# -- brush family -----------------------------------------------------------------------------
def test_brush_stroke_paints_capsule_as_one_undo_step(blank, qtbot) -> None:  # noqa: ANN001
    canvas, doc, drive = blank
    canvas.set_tool("brush")
    canvas.set_active_class(2)
    canvas.set_brush_size(5)
    with qtbot.waitSignal(canvas.edited, timeout=1000):
        drive.drag([(30, 40), (60, 40), (90, 40), (100, 70)])
    mask = doc.mask
    for x, y in [(30, 40), (45, 40), (90, 40), (95, 55), (100, 70), (30, 45), (30, 35)]:
        assert mask[y, x] == 2, (x, y)
    assert mask[40, 20] == UNLABELED and mask[50, 60] == UNLABELED and mask[47, 30] == UNLABELED
    assert doc.history.undo_depth == 1
    doc.undo()
    assert (doc.mask == UNLABELED).all()


def test_eraser_paints_unlabeled(canvas, qtbot) -> None:  # noqa: ANN001
    image, _ = disk_scene()
    doc = open_doc(canvas, image, np.full((160, 160), 1, np.uint8))
    canvas.set_tool("eraser")
    canvas.set_brush_size(4)
    Driver(canvas).drag([(50, 50), (80, 50)])
    assert doc.mask[50, 50] == UNLABELED and doc.mask[50, 80] == UNLABELED and doc.mask[53, 65] == UNLABELED
    assert doc.mask[56, 65] == 1
    assert int((doc.mask == UNLABELED).sum()) < 400


def test_protect_keeps_labelled_pixels(canvas) -> None:  # noqa: ANN001
    image, _ = disk_scene()
    mask = np.full((160, 160), UNLABELED, np.uint8)
    mask[:, 80:] = 3
    doc = open_doc(canvas, image, mask)
    canvas.set_tool("brush")
    canvas.set_active_class(1)
    canvas.set_brush_size(6)
    canvas.set_protect(True)
    Driver(canvas).drag([(60, 60), (100, 60)])
    assert doc.mask[60, 60] == 1 and doc.mask[60, 79] == 1
    assert (doc.mask[:, 80:] == 3).all()


def test_right_drag_with_the_brush_erases_unless_turned_off(blank, qtbot) -> None:  # noqa: ANN001
    canvas, doc, drive = blank
    canvas.set_tool("brush")
    canvas.set_active_class(1)
    canvas.set_brush_size(6)
    drive.drag([(20, 80), (140, 80)])
    assert (doc.mask[80, 20:141] == 1).all()
    with qtbot.waitSignal(canvas.edited, timeout=1000):
        drive.drag([(80, 60), (80, 100)], button=RIGHT)
    assert (doc.mask[70:91, 80] == UNLABELED).all()  # the crossing is erased, the rest stays
    assert doc.mask[80, 40] == 1 and doc.mask[80, 120] == 1
    assert doc.history.undo_depth == 2 and doc.undo_label == "Erase"
    doc.undo()
    assert (doc.mask[80, 20:141] == 1).all()
    canvas.set_right_button_erases(False)
    drive.drag([(80, 60), (80, 100)], button=RIGHT)
    assert (doc.mask[80, 20:141] == 1).all() and doc.history.undo_depth == 1
    canvas.set_tool("eraser")  # the eraser's right button does not paint a class back
    drive.drag([(40, 70), (40, 90)], button=RIGHT)
    assert doc.mask[80, 40] == 1


def test_brush_size_keys_and_ctrl_drag(blank, qtbot) -> None:  # noqa: ANN001
    canvas, doc, drive = blank
    canvas.set_tool("brush")
    canvas.set_brush_size(10)
    with qtbot.waitSignal(canvas.brush_size_changed, timeout=1000) as blocker:
        drive.key(Qt.Key.Key_BracketRight, "]")
    assert canvas.brush_size > 10 and blocker.args == [canvas.brush_size]
    drive.key(Qt.Key.Key_BracketLeft, "[")
    drive.key(Qt.Key.Key_BracketLeft, "[")
    assert canvas.brush_size < 10
    before = canvas.brush_size
    ctrl = Qt.KeyboardModifier.ControlModifier
    drive.press(40, 40, mods=ctrl)
    drive.move(80, 40, mods=ctrl)  # 40 image px at the fit zoom = many screen px: bigger brush
    drive.release(80, 40, mods=ctrl)
    assert canvas.brush_size > before
    assert (doc.mask == UNLABELED).all(), "a ctrl+drag resizes the brush, it must not paint"


# -- fills ------------------------------------------------------------------------------------
def test_flood_fill_fills_connected_region_only(canvas) -> None:  # noqa: ANN001
    image, _ = disk_scene()
    mask = np.full((160, 160), UNLABELED, np.uint8)
    mask[:, 100] = 0  # a wall splitting the unlabelled area
    doc = open_doc(canvas, image, mask)
    canvas.set_tool("fill")
    canvas.set_active_class(3)
    Driver(canvas).click(20, 20)
    assert (doc.mask[:, :100] == 3).all()
    assert (doc.mask[:, 101:] == UNLABELED).all() and (doc.mask[:, 100] == 0).all()
    assert doc.history.undo_depth == 1


def _polygon_truth(points: list[tuple[int, int]]) -> np.ndarray:
    truth = np.zeros((160, 160), np.uint8)
    cv2.fillPoly(truth, [np.array(points, np.int32).reshape(-1, 1, 2)], 1)
    return truth.astype(bool)


def test_polygon_clicks_and_double_click(blank, qtbot) -> None:  # noqa: ANN001
    canvas, doc, drive = blank
    canvas.set_tool("polygon")
    canvas.set_active_class(2)
    vertices = [(20, 20), (120, 30), (100, 130)]
    for x, y in vertices[:-1]:
        drive.click(x, y)
        drive.move(x + 3, y + 3)
    assert (doc.mask == UNLABELED).all(), "nothing is filled before the polygon is closed"
    drive.press(*vertices[-1])
    drive.release(*vertices[-1])
    with qtbot.waitSignal(canvas.edited, timeout=1000):
        drive.double_click(*vertices[-1])
        drive.release(*vertices[-1])
    painted = doc.mask == 2
    truth = _polygon_truth(vertices)
    assert (painted == truth).mean() > 0.99
    assert painted[60, 80] and not painted[140, 20]
    assert doc.history.undo_depth == 1


def test_polygon_enter_closes_and_escape_cancels(blank) -> None:  # noqa: ANN001
    canvas, doc, drive = blank
    canvas.set_tool("polygon")
    canvas.set_active_class(1)
    for x, y in [(10, 10), (60, 10), (60, 60)]:
        drive.click(x, y)
    drive.key(Qt.Key.Key_Escape)
    drive.key(Qt.Key.Key_Return)
    assert (doc.mask == UNLABELED).all(), "Esc drops the polygon in progress"
    for x, y in [(10, 10), (60, 10), (60, 60), (10, 60)]:
        drive.click(x, y)
    drive.key(Qt.Key.Key_Return)
    assert (doc.mask[10:61, 10:61] == 1).all()
    assert int((doc.mask == 1).sum()) == 51 * 51


def test_lasso_fills_freehand_outline(blank) -> None:  # noqa: ANN001
    canvas, doc, drive = blank
    canvas.set_tool("lasso")
    canvas.set_active_class(3)
    angles = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    path = [(80 + 40 * np.cos(a), 80 + 40 * np.sin(a)) for a in angles]
    drive.drag(path)
    painted = doc.mask == 3
    yy, xx = np.mgrid[:160, :160]
    inside = (xx + 0.5 - 80) ** 2 + (yy + 0.5 - 80) ** 2 < 37**2
    outside = (xx + 0.5 - 80) ** 2 + (yy + 0.5 - 80) ** 2 > 43**2
    assert painted[inside].all() and not painted[outside].any()


# -- smart selection ---------------------------------------------------------------------------
def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_box_grabcut_selects_the_object(canvas) -> None:  # noqa: ANN001
    image, truth = disk_scene()
    doc = open_doc(canvas, image, np.full((160, 160), UNLABELED, np.uint8))
    canvas.set_tool("box_select")
    canvas.set_active_class(2)
    Driver(canvas).drag([(40, 40), (80, 90), (122, 122)])
    assert _iou(doc.mask == 2, truth) > 0.9
    assert doc.history.undo_depth == 1


def test_scribbles_left_object_right_background_enter_applies(canvas) -> None:  # noqa: ANN001
    image, truth = disk_scene()
    doc = open_doc(canvas, image, np.full((160, 160), UNLABELED, np.uint8))
    canvas.set_tool("scribble")
    canvas.set_active_class(2)
    drive = Driver(canvas)
    drive.drag([(70, 80), (80, 75), (90, 85)], button=LEFT)
    drive.drag([(20, 20), (140, 20), (140, 140)], button=RIGHT)
    drive.drag([(20, 140), (20, 60)], button=RIGHT)
    assert (doc.mask == UNLABELED).all(), "scribbles only apply on Enter"
    drive.key(Qt.Key.Key_Return)
    assert _iou(doc.mask == 2, truth) > 0.9


def test_magic_wand_with_tolerance(canvas) -> None:  # noqa: ANN001
    image, truth = disk_scene()
    doc = open_doc(canvas, image, np.full((160, 160), UNLABELED, np.uint8))
    canvas.set_tool("wand")
    canvas.set_active_class(1)
    canvas.set_wand_tolerance(40)
    Driver(canvas).click(80, 80)
    assert _iou(doc.mask == 1, truth) > 0.95
    doc.undo()
    canvas.set_wand_tolerance(0)
    Driver(canvas).click(80, 80)
    assert int((doc.mask == 1).sum()) < truth.sum() // 10


def test_picker_sets_active_class(canvas, qtbot) -> None:  # noqa: ANN001
    image, truth = disk_scene()
    mask = np.where(truth, 2, 3).astype(np.uint8)
    doc = open_doc(canvas, image, mask)
    canvas.set_tool("picker")
    canvas.set_active_class(0)
    with qtbot.waitSignal(canvas.class_picked, timeout=1000) as blocker:
        Driver(canvas).click(80, 80)
    assert blocker.args == [2] and canvas.active_class == 2
    Driver(canvas).click(5, 5)
    assert canvas.active_class == 3
    assert np.array_equal(doc.mask, mask), "picking must not edit"


def test_cursor_signal_reports_class_or_minus_one(canvas, qtbot) -> None:  # noqa: ANN001
    image, truth = disk_scene()
    open_doc(canvas, image, np.where(truth, 2, 3).astype(np.uint8))
    drive = Driver(canvas)
    with qtbot.waitSignal(canvas.cursor_moved, timeout=1000) as blocker:
        drive.move(80, 80)
    assert blocker.args == [80, 80, 2]
    with qtbot.waitSignal(canvas.cursor_moved, timeout=1000) as blocker:
        drive.move(-2, 10)
    assert blocker.args[2] == -1


# -- view ----------------------------------------------------------------------------------------
def test_wheel_zoom_keeps_point_under_cursor(blank) -> None:  # noqa: ANN001
    canvas, _doc, _drive = blank
    canvas.zoom_by(4.0)  # image bigger than the view: scroll range on both axes
    anchor = QPointF(300.0, 120.0)
    before = canvas.viewportTransform().inverted()[0].map(anchor)
    scale = canvas.scale_factor
    for _ in range(3):
        event = QWheelEvent(
            anchor, QPointF(canvas.viewport().mapToGlobal(anchor.toPoint())), QPoint(0, 0),
            QPoint(0, 120), NOBUTTON, NOMOD, Qt.ScrollPhase.NoScrollPhase, False,
        )
        QApplication.sendEvent(canvas.viewport(), event)
    assert canvas.scale_factor == pytest.approx(scale * 1.0015 ** 360, rel=1e-3)
    after = canvas.viewportTransform().map(before)
    assert abs(after.x() - anchor.x()) <= 1.5 and abs(after.y() - anchor.y()) <= 1.5


def test_zoom_fit_100_and_middle_button_pan(blank, qtbot) -> None:  # noqa: ANN001
    canvas, _doc, drive = blank
    with qtbot.waitSignal(canvas.zoom_changed, timeout=1000) as blocker:
        canvas.zoom_100()
    assert blocker.args == [1.0]
    canvas.zoom_fit()
    rect = canvas.visible_scene_rect()
    assert rect.contains(0, 0) and rect.contains(159, 159)
    canvas.zoom_by(6.0)
    h0, v0 = canvas.horizontalScrollBar().value(), canvas.verticalScrollBar().value()
    drive.press(80, 80, button=MIDDLE)
    drive.move(70, 75)
    drive.release(70, 75, button=MIDDLE)
    assert canvas.horizontalScrollBar().value() > h0 and canvas.verticalScrollBar().value() > v0
    assert (_doc.mask == UNLABELED).all()


def test_space_drag_pans_instead_of_painting(blank) -> None:  # noqa: ANN001
    canvas, doc, drive = blank
    canvas.zoom_by(6.0)
    canvas.set_tool("brush")
    QApplication.sendEvent(canvas, QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Space, NOMOD, " "))
    h0 = canvas.horizontalScrollBar().value()
    drive.drag([(80, 80), (75, 80)])
    QApplication.sendEvent(canvas, QKeyEvent(QEvent.Type.KeyRelease, Qt.Key.Key_Space, NOMOD, " "))
    assert canvas.horizontalScrollBar().value() > h0
    assert (doc.mask == UNLABELED).all()


def test_overlay_toggle_key_and_outline_tiles(canvas) -> None:  # noqa: ANN001
    image, truth = disk_scene()
    doc = open_doc(canvas, image, np.where(truth, 2, 0).astype(np.uint8))
    drive = Driver(canvas)
    assert canvas.overlay_visible
    drive.key(Qt.Key.Key_V, "v")
    assert not canvas.overlay_visible
    drive.key(Qt.Key.Key_V, "v")
    canvas.set_outline_mode(True)
    canvas.flush()
    layer = canvas.mask_layer
    assert layer is not None
    tile = layer.tiles.tile_buffer((0, 0))
    drawn = tile != 0
    # Only pixels on a class border are drawn in outline mode.
    edge = cv2.morphologyEx(truth.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    assert drawn.any() and not drawn[~edge].any()
    assert not drawn[80, 80] and drawn[80, 80 + 30]
    assert doc.mask[80, 80] == 2


def test_dab_rerenders_only_the_dirty_tiles(canvas) -> None:  # noqa: ANN001
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (1536, 1536, 3), np.uint8)
    mask = np.zeros((1536, 1536), np.uint8)
    mask[:, 768:] = 1
    doc = open_doc(canvas, image, mask)
    canvas.flush()
    layer = canvas.mask_layer
    assert layer is not None
    # At "fit" (scale ~0.27) the overlay is drawn from the half-size level: 4 tiles, no full-size ones.
    coarse = layer.pyramid.level(1)
    assert layer.pyramid.level_for(canvas.scale_factor) == 1
    assert coarse.materialised == 4 and layer.tiles.materialised == 0
    canvas.set_tool("brush")
    canvas.set_active_class(2)
    canvas.set_brush_size(20)
    layer.pyramid.reset_counters()
    Driver(canvas).click(100, 100)
    assert coarse.rendered_tiles == [(0, 0)] and coarse.rendered_pixels <= 21 * 21
    assert layer.tiles.render_count == 0, "full-size tiles nobody has drawn stay unrendered"

    canvas.zoom_100()
    canvas.centerOn(512, 512)
    canvas.flush()
    assert set(layer.tiles._tiles) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    layer.pyramid.reset_counters()
    Driver(canvas).click(510, 510)  # the corner shared by 4 tiles
    assert sorted(layer.tiles.rendered_tiles) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert layer.tiles.rendered_pixels <= 41 * 41
    assert coarse.rendered_tiles == [(0, 0)]
    layer.pyramid.reset_counters()
    doc.undo()
    assert set(layer.tiles.rendered_tiles) <= {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert set(coarse.rendered_tiles) == {(0, 0)}
    # What was rendered matches the mask exactly after the edits, at both levels.
    assert np.array_equal(layer.tiles.tile_buffer((0, 0)), layer.lut[doc.mask[:512, :512]])
    assert np.array_equal(coarse.tile_buffer((0, 0)), layer.lut[doc.mask[::2, ::2][:512, :512]])
    assert (doc.mask[100, 100], doc.mask[510, 510]) == (2, 0)


def test_levels_and_class_colours_rerender(blank) -> None:  # noqa: ANN001
    canvas, doc, _drive = blank
    canvas.flush()
    image_layer = canvas.image_layer
    assert image_layer is not None
    before = image_layer.tiles.tile_buffer((0, 0)).copy()
    canvas.set_levels(40, 120)
    canvas.flush()
    after = image_layer.tiles.tile_buffer((0, 0))
    blue = (after & 0xFF).astype(int)
    expected = np.clip(np.round((doc_image(canvas)[..., 2].astype(float) - 40) * 255 / 80), 0, 255)
    assert not np.array_equal(before, after)
    assert np.abs(blue - expected).max() <= 1
    doc.set_classes(doc.classes.replaced(1, color=(1, 2, 3)))
    canvas.refresh_classes()
    assert canvas.mask_layer is not None and int(canvas.mask_layer.lut[1]) == 0xFF010203


def doc_image(canvas: Canvas) -> np.ndarray:
    assert canvas.image is not None
    return canvas.image


def test_extra_layer_and_clear(blank) -> None:  # noqa: ANN001
    canvas, _doc, _drive = blank
    rgba = np.zeros((160, 160, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 255
    canvas.set_overlay_visible(False)
    canvas.set_extra_layer("prediction", rgba)
    shot = canvas.grab().toImage()
    center = shot.pixelColor(shot.width() // 2, shot.height() // 2)
    assert (center.red(), center.green(), center.blue()) == (255, 0, 0)
    canvas.set_extra_layer("prediction", None)
    canvas.set_document(None, None)
    assert canvas.document is None and canvas.image is None


# -- real data -----------------------------------------------------------------------------------
def test_camvid_paint_undo_and_screenshot(canvas, camvid_root: Path) -> None:  # noqa: ANN001
    name = sorted((camvid_root / "val").glob("*.png"))[0].name
    classes = load_class_file(camvid_root / "classes.json")
    image = read_image_rgb(camvid_root / "val" / name)
    mask = read_mask(camvid_root / "valannot" / name, classes)
    canvas.resize(1000, 760)
    doc = open_doc(canvas, image, mask, classes)
    canvas.set_overlay_opacity(0.5)
    shot = canvas.grab()
    shot.save("/tmp/canvas_shot.png")
    # The screenshot shows the blended overlay: a road pixel is image/colour half and half.
    y, x = np.argwhere(mask == 3)[len(np.argwhere(mask == 3)) // 2]
    pos = canvas.viewportTransform().map(QPointF(x + 0.5, y + 0.5)).toPoint()
    colour = shot.toImage().pixelColor(pos + canvas.viewport().pos())
    expected = 0.5 * image[y, x].astype(float) + 0.5 * np.array([128, 64, 128])
    assert np.abs(np.array([colour.red(), colour.green(), colour.blue()]) - expected).max() <= 4
    canvas.set_tool("brush")
    canvas.set_active_class(8)
    canvas.set_brush_size(12)
    Driver(canvas).drag([(100, 200), (200, 220), (300, 200)])
    assert doc.mask[210, 150] == 8 and doc.dirty
    doc.undo()
    assert np.array_equal(doc.mask, mask) and not doc.dirty


def test_escape_mid_stroke_restores_the_mask(blank) -> None:  # noqa: ANN001
    canvas, doc, drive = blank
    canvas.set_tool("brush")
    canvas.set_brush_size(6)
    drive.press(40, 40)
    drive.move(90, 40)
    assert doc.mask[40, 60] == canvas.active_class
    drive.key(Qt.Key.Key_Escape)
    drive.release(90, 40)
    assert (doc.mask == UNLABELED).all() and not doc.can_undo


def test_document_set_before_layout_fits_after_resize(qtbot) -> None:  # noqa: ANN001
    widget = Canvas()
    qtbot.addWidget(widget)
    image, _ = disk_scene()
    widget.set_document(image, MaskDocument(np.zeros((160, 160), np.uint8), make_classes()))
    widget.resize(640, 640)
    widget.show()
    qtbot.waitExposed(widget)
    assert widget.scale_factor == pytest.approx((widget.viewport().height() - 8) / 160, rel=0.05)


def test_destroyed_canvas_detaches_from_its_document(qtbot) -> None:  # noqa: ANN001
    widget = Canvas()
    image, _ = disk_scene()
    doc = MaskDocument(np.zeros((160, 160), np.uint8), make_classes())
    widget.set_document(image, doc)
    widget.deleteLater()
    qtbot.wait(10)
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    doc.apply_edit("Fill", Region(0, 0, 10, 10), 2)  # must not touch the dead widget
    doc.apply_edit("Fill", Region(0, 0, 10, 10), 3)
    assert doc.mask[5, 5] == 3


def test_mismatched_sizes_are_reported(canvas) -> None:  # noqa: ANN001
    image, _ = disk_scene()
    doc = MaskDocument(np.zeros((100, 160), np.uint8), make_classes())
    with pytest.raises(MaskError, match="must match"):
        canvas.set_document(image, doc)
    open_doc(canvas, image, np.zeros((160, 160), np.uint8))
    with pytest.raises(MaskError, match="layer 'heat'"):
        canvas.set_extra_layer("heat", np.zeros((10, 10, 4), np.uint8))


def test_sixteen_bit_gray_image_is_shown_stretched(canvas) -> None:  # noqa: ANN001
    ramp = np.tile(np.linspace(1000, 3000, 160), (160, 1)).astype(np.uint16)
    open_doc(canvas, ramp, np.full((160, 160), UNLABELED, np.uint8))
    shown = canvas.image
    assert shown is not None and shown.dtype == np.uint8 and shown.shape == (160, 160, 3)
    assert shown[:, 0].max() < 10 and shown[:, -1].min() > 245


def test_outline_tiles_stay_exact_after_edits_and_undo(canvas) -> None:  # noqa: ANN001
    from segstudio.ui.annotate.canvas_render import boundary

    image, truth = disk_scene()
    doc = open_doc(canvas, image, np.where(truth, 2, 0).astype(np.uint8))
    canvas.set_outline_mode(True)
    canvas.flush()
    layer = canvas.mask_layer
    assert layer is not None

    def expected() -> np.ndarray:
        return layer.lut[doc.mask] * boundary(doc.mask)

    canvas.set_tool("brush")
    canvas.set_active_class(3)
    canvas.set_brush_size(7)
    Driver(canvas).drag([(60, 80), (100, 80)])  # cuts across the disk's border
    assert np.array_equal(layer.tiles.tile_buffer((0, 0)), expected())
    doc.undo()
    assert np.array_equal(layer.tiles.tile_buffer((0, 0)), expected())
    canvas.set_outline_mode(False)
    canvas.flush()
    assert np.array_equal(layer.tiles.tile_buffer((0, 0)), layer.lut[doc.mask])
