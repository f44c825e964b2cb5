"""The canvas on a 20,000 x 20,000 tiled TIFF (issue 12, point 4), offscreen: it shows the
right pixels at fit and at 100 % while decoding only the tiles on screen, paints with the
brush, and the painted mask survives a save of its dirty chunks and a reload exactly."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from segstudio.core.classes import ClassTable
from segstudio.core.gigapixel import GigapixelImage
from segstudio.core.mask_document import MaskDocument
from segstudio.core.region import Region
from segstudio.core.tiled_mask import CHUNK, DirtyChunks, TiledMaskStore, allocate
from segstudio.ui.annotate.canvas import Canvas

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from gigapixel_builders import expected, write_pyramid  # noqa: E402

SIDE = 20_000
CLASSES = ClassTable.from_names(["background", "tissue", "tumour"])


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pyramid(tmp_path_factory.mktemp("giga") / "slide.tif", SIDE, SIDE)


def rgb32(rgb: np.ndarray) -> np.ndarray:
    """RGB8 as the canvas's RGB32 tile words (0xffRRGGBB)."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return np.uint32(0xFF000000) | (r << 16) | (g << 8) | b


def check_tiles(canvas: Canvas) -> int:
    """Every materialised image tile at the level on screen equals the file's pixels."""
    layer = canvas.image_layer
    assert layer is not None
    k = layer.pyramid.level_for(canvas.scale_factor)
    grid = layer.pyramid.level(k)
    assert grid.materialised > 0
    for key, tile in grid._tiles.items():
        box: Region = tile.region
        want = expected(k, 256, box.y0, box.y1, box.x0, box.x1)
        assert np.array_equal(tile.buffer, rgb32(want)), (k, key)
    return k


def click(canvas: Canvas, x: int, y: int) -> None:
    pos = canvas.viewportTransform().map(QPointF(x + 0.5, y + 0.5))
    viewport = canvas.viewport()
    for kind, buttons in ((QEvent.Type.MouseButtonPress, Qt.MouseButton.LeftButton),
                          (QEvent.Type.MouseButtonRelease, Qt.MouseButton.NoButton)):
        event = QMouseEvent(kind, pos, QPointF(viewport.mapToGlobal(pos.toPoint())),
                            Qt.MouseButton.LeftButton, buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(viewport, event)


def test_shows_the_file_pixels_at_fit_and_100(canvas: Canvas, slide: Path) -> None:
    with GigapixelImage(slide) as image:
        doc = MaskDocument(allocate(SIDE, SIDE, fill=CLASSES.unlabeled_id), CLASSES)
        canvas.set_document(image, doc)
        assert canvas.image is None  # whole-image tools stay idle; no whole array exists
        canvas.flush()
        assert check_tiles(canvas) == 5  # fit: the 1/32 level, straight from the file's level
        canvas.zoom_100()
        canvas.centerOn(12_345, 6_789)
        canvas.flush()
        assert check_tiles(canvas) == 0
        # Only what was shown was decoded: a few tiles, not the 6,100 of the full level.
        assert image.decode_count < 60


def test_paint_save_reload_exact(canvas: Canvas, slide: Path, tmp_path: Path) -> None:
    with GigapixelImage(slide) as image:
        doc = MaskDocument(allocate(SIDE, SIDE, fill=CLASSES.unlabeled_id), CLASSES)
        dirty = DirtyChunks()
        doc.add_listener(dirty)
        canvas.set_document(image, doc)
        canvas.set_tool("brush")
        canvas.set_brush_size(15)
        spots = [(12_000, 9_000, 1), (12_030, 9_000, 2), (CHUNK * 20 - 3, CHUNK * 7 + 2, 1)]
        for x, y, cls in spots:
            canvas.zoom_100()
            canvas.centerOn(x, y)
            canvas.set_active_class(cls)
            click(canvas, x, y)
        assert [int(doc.mask[y, x]) for x, y, _ in spots] == [1, 2, 1]
        layer = canvas.mask_layer
        assert layer is not None
        canvas.flush()
        for key, tile in layer.tiles._tiles.items():
            assert np.array_equal(tile.buffer, layer.lut[doc.mask[tile.region.slices]]), key

        store = TiledMaskStore(tmp_path / "slide.zarr", doc.shape, fill=CLASSES.unlabeled_id)
        keys = dirty.take()
        assert 3 <= len(keys) <= 8  # a dab on a chunk corner touches up to 4 chunks
        store.write(doc.mask, keys)
        doc.mark_saved()

        reloaded = TiledMaskStore.open(store.path).read()
        assert set(store.stored_keys()) == keys
        for key in keys:
            box = Region(key[0] * CHUNK, key[1] * CHUNK, (key[0] + 1) * CHUNK, (key[1] + 1) * CHUNK)
            assert np.array_equal(reloaded[box.slices], doc.mask[box.slices]), key
        # Reopened on the canvas, the painted pixels show again.
        again = MaskDocument(reloaded, CLASSES)
        canvas.set_document(image, again)
        canvas.zoom_100()
        canvas.centerOn(12_000, 9_000)
        canvas.flush()
        layer = canvas.mask_layer
        assert layer is not None
        tile = layer.tiles._tiles[(9_000 // 512, 12_000 // 512)]
        assert np.array_equal(tile.buffer, layer.lut[doc.mask[tile.region.slices]])
        assert (tile.buffer != 0).any()


def test_fill_stays_within_a_window_around_the_click(canvas: Canvas, slide: Path) -> None:
    from segstudio.ui.annotate.canvas_tools import GIGAPIXEL_FILL_WINDOW as WINDOW

    with GigapixelImage(slide) as image:
        doc = MaskDocument(allocate(SIDE, SIDE, fill=CLASSES.unlabeled_id), CLASSES)
        dirty = DirtyChunks()
        doc.add_listener(dirty)
        canvas.set_document(image, doc)
        canvas.zoom_100()
        canvas.centerOn(9_000, 7_000)
        canvas.set_tool("fill")
        canvas.set_active_class(1)
        click(canvas, 9_000, 7_000)
        half = WINDOW // 2
        box = Region(7_000 - half, 9_000 - half, 7_000 + half, 9_000 + half)
        assert (doc.mask[box.slices] == 1).all()
        ring = doc.mask[box.y0 - 1:box.y1 + 1, box.x0 - 1:box.x1 + 1]
        assert int((ring == 1).sum()) == WINDOW * WINDOW  # nothing outside the square
        assert dirty.keys == set(box.tiles(CHUNK))
        doc.undo()
        assert (doc.mask[box.slices] == CLASSES.unlabeled_id).all()
    # Drawn after its image was closed (the session let it go), the view shows black, quietly.
    layer = canvas.image_layer
    assert layer is not None
    layer.pyramid.invalidate_all()
    canvas.flush()
    grid = layer.pyramid.level(0)
    assert all((t.buffer == 0xFF000000).all() for t in grid._tiles.values()) and grid.materialised


def _pointer(x: float, y: float, button: Qt.MouseButton = Qt.MouseButton.LeftButton):  # noqa: ANN202
    from segstudio.ui.annotate.canvas_tools import Pointer

    return Pointer(x, y, 0.0, 0.0, button, Qt.KeyboardModifier.NoModifier)


def test_wand_and_grabcut_on_a_tiled_image_equal_the_whole_image(qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    """A gigapixel image has no whole array: wand and GrabCut read a window around the
    click, box or scribbles from the file. They must paint exactly what they paint on the
    same picture held whole (the window holds everything they look at)."""
    h, w = 3_000, 2_600
    path = write_pyramid(tmp_path / "slide.tif", h, w)
    whole = expected(0, 256, 0, h, 0, w)
    results = []
    with GigapixelImage(path) as image:
        for pixels in (whole, image):
            canvas = Canvas()
            qtbot.addWidget(canvas)
            doc = MaskDocument(allocate(h, w, fill=CLASSES.unlabeled_id), CLASSES)
            canvas.set_document(pixels, doc)
            assert (canvas.image is None) == (pixels is image)
            canvas.set_active_class(1)
            canvas.set_tool("wand")
            canvas.set_wand_tolerance(60)
            canvas._tool.press(_pointer(1_234.4, 777.6))
            after_wand = doc.mask.copy()
            canvas.set_active_class(2)
            canvas.set_tool("box_select")
            box = canvas._tool
            box.press(_pointer(2_000, 2_500))
            box.move(_pointer(2_300, 2_700), Qt.MouseButton.LeftButton)
            box.release(_pointer(2_300, 2_700))
            after_box = doc.mask.copy()
            canvas.set_tool("scribble")
            scribble = canvas._tool
            scribble.press(_pointer(400, 2_000))
            scribble.move(_pointer(460, 2_040), Qt.MouseButton.LeftButton)
            scribble.release(_pointer(460, 2_040))
            scribble.press(_pointer(300, 1_900, Qt.MouseButton.RightButton))
            scribble.move(_pointer(320, 2_150), Qt.MouseButton.RightButton)
            scribble.release(_pointer(320, 2_150))
            scribble.commit()
            results.append((after_wand, after_box, doc.mask.copy(), doc.can_undo))
            canvas.set_document(None, None)
    (wand_a, box_a, scribble_a, undo_a), (wand_b, box_b, scribble_b, undo_b) = results
    unlabeled = CLASSES.unlabeled_id
    assert (wand_a == 1).sum() > 50 and np.array_equal(wand_a, wand_b)
    assert ((box_a == 2) & (wand_a != 2)).sum() > 1000 and np.array_equal(box_a, box_b)
    assert ((scribble_a == 2) & (box_a != 2)).sum() > 100 and np.array_equal(scribble_a, scribble_b)
    assert undo_a and undo_b and (scribble_b != unlabeled).sum() == (scribble_a != unlabeled).sum()

