"""The Display dock (issue 12): band pickers and contrast limits re-render the canvas (its tiles
and the session's cached pixels) and the thumbnails, persist in the project's settings across
a reopen, follow another writer; photo projects get no dock and render exactly as before.

Expected pixels are computed here from the raw bands with the documented rule
round(clip((v - lo) / (hi - lo), 0, 1) * 255), not through core.display."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest

from segstudio.core import display
from segstudio.core.classes import ClassDef, ClassTable
from segstudio.core.importers import ImportOptions, import_dataset
from segstudio.core.project import Project
from segstudio.ui import dialogs
from segstudio.ui.main_window import MainWindow

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from imagery_builders import dataset  # noqa: E402

CLASSES = ClassTable((ClassDef(0, "background", (0, 0, 0)), ClassDef(1, "field", (0, 200, 0)),
                      ClassDef(255, "void", (128, 128, 128), ignore=True)))
H, W = 48, 64  # fits a 72x54 thumbnail unscaled: thumbnail pixels are the rendered pixels


def imported(tmp_path: Path, kind: str) -> Path:
    src = dataset(tmp_path / "src", kind, count=3, h=H, w=W)
    (tmp_path / "c.json").write_text(json.dumps({"ignore_index": 255, "classes": CLASSES.to_list()}))
    import_dataset(tmp_path / kind, "folders", ImportOptions(
        images=(src / "images",), masks=(src / "masks",), classes_file=tmp_path / "c.json", splits=("train",)))
    return tmp_path / kind


def stretch(values: np.ndarray, low: float, high: float) -> np.ndarray:
    share = (values.astype(np.float64) - low) / (high - low)
    return np.rint(np.clip(share, 0.0, 1.0) * 255.0).astype(np.uint8)


def expected_rgb(raw: np.ndarray, bands: tuple[int, int, int], limits: tuple[tuple[float, float], ...]) -> np.ndarray:
    return np.stack([stretch(raw[:, :, b], *limits[b]) for b in bands], axis=2)


def tile_rgb(window: MainWindow) -> np.ndarray:
    """What the canvas drew: its level-0 image tile, as RGB."""
    canvas = window.canvas
    canvas.flush()
    assert canvas.image_layer is not None
    buffer = canvas.image_layer.tiles.tile_buffer((0, 0))[:H, :W]
    return np.stack([(buffer >> s) & 0xFF for s in (16, 8, 0)], axis=2).astype(np.uint8)


def thumbnail_rgb(window: MainWindow, qtbot, image_id: str) -> np.ndarray:  # noqa: ANN001
    dock = window.dataset_dock
    path = window.workspace.project.image_path(image_id)
    dock.thumbnails.get(image_id, path)
    qtbot.waitUntil(lambda: image_id in dock.thumbnails._pixmaps, timeout=10000)
    image = dock.thumbnails.get(image_id, path).toImage().convertToFormat(QImage.Format.Format_RGB888)
    rows = [np.frombuffer(image.constScanLine(y), np.uint8, image.width() * 3) for y in range(image.height())]
    return np.stack(rows).reshape(image.height(), image.width(), 3)


@pytest.fixture
def window(main_window: MainWindow) -> MainWindow:
    return main_window


def test_nir_as_red_through_the_dock_redraws_canvas_session_and_thumbnail(window: MainWindow, qtbot,
                                                                          tmp_path: Path) -> None:
    root = imported(tmp_path, "geo4")
    assert not window.display_dock.isVisible()  # the welcome screen has nothing to map
    assert window.open_project(root)
    dock, session = window.display_dock, window.workspace.session
    assert dock.isVisible()
    image_id = session.current_id
    raw = window.workspace.project.read_raw(image_id)
    limits = dock.mapping.limits
    np.testing.assert_array_equal(tile_rgb(window), expected_rgb(raw, (0, 1, 2), limits))
    before_thumb = thumbnail_rgb(window, qtbot, image_id)
    np.testing.assert_array_equal(before_thumb, expected_rgb(raw, (0, 1, 2), limits))
    other = next(i for i in window.dataset_dock.visible_ids() if i != image_id)
    assert window.workspace.open_image(other) and window.workspace.open_image(image_id)  # cached now

    dock.rows[0].band.setCurrentIndex(3)  # the red picker: band 4, near infrared
    dock.flush()
    assert dock.mapping.rgb == (3, 1, 2)
    nir_red = expected_rgb(raw, (3, 1, 2), limits)
    np.testing.assert_array_equal(tile_rgb(window), nir_red)
    np.testing.assert_array_equal(session.image, nir_red)
    assert not np.array_equal(nir_red[:, :, 0], before_thumb[:, :, 0])
    qtbot.waitUntil(lambda: image_id in window.dataset_dock.thumbnails._pixmaps, timeout=10000)
    np.testing.assert_array_equal(thumbnail_rgb(window, qtbot, image_id), nir_red)
    # the other image the session had cached shows through the new mapping too
    assert window.workspace.open_image(other)
    other_raw = window.workspace.project.read_raw(other)
    np.testing.assert_array_equal(tile_rgb(window), expected_rgb(other_raw, (3, 1, 2), limits))


def test_dragging_a_contrast_handle_restretches_the_band(window: MainWindow, tmp_path: Path) -> None:
    assert window.open_project(imported(tmp_path, "geo4"))
    dock = window.display_dock
    raw = window.workspace.project.read_raw(window.workspace.session.current_id)
    slider = dock.rows[1].slider  # green: band 2
    low, high = dock.mapping.limits[1]
    start = QPoint(round(slider.x_of(high)), slider.height() // 2)
    target = QPoint(round(slider.x_of((low + high) / 2)), slider.height() // 2)
    QTest.mousePress(slider, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(slider, target)
    QTest.mouseRelease(slider, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, target)
    dock.flush()
    new_low, new_high = dock.mapping.limits[1]
    assert new_low == low and abs(new_high - slider.value_at(target.x())) < 1e-6
    assert new_high < high - 0.3 * (high - low)
    assert dock.rows[1].high.value() == pytest.approx(new_high, abs=1)
    np.testing.assert_array_equal(tile_rgb(window)[:, :, 1], stretch(raw[:, :, 1], new_low, new_high))
    np.testing.assert_array_equal(tile_rgb(window)[:, :, 0], stretch(raw[:, :, 0], *dock.mapping.limits[0]))


def test_grey_band_and_limits_persist_across_reopen(window: MainWindow, tmp_path: Path) -> None:
    root = imported(tmp_path, "ome5")
    assert window.open_project(root)
    dock = window.display_dock
    assert [dock.rows[0].band.itemText(i) for i in range(5)][4] == "5: bf"
    dock.mode.setCurrentIndex(1)  # one band, grey
    dock.rows[0].band.setCurrentIndex(4)
    dock.rows[0].low.setValue(5200)
    dock.rows[0].high.setValue(6400)
    assert not dock.rows[1].isVisibleTo(dock)
    assert window.workspace.close_project()  # the pending save happens on close
    saved = display.mapping_of(Project.open(root).settings)
    assert saved is not None and (saved.mode, saved.grey, saved.limits[4]) == ("grey", 4, (5200.0, 6400.0))

    assert window.open_project(root)
    assert dock.isVisible() and dock.mode.currentData() == "grey"
    assert dock.rows[0].band.currentIndex() == 4 and dock.rows[0].high.value() == 6400
    raw = window.workspace.project.read_raw(window.workspace.session.current_id)
    grey = stretch(raw[:, :, 4], 5200, 6400)
    np.testing.assert_array_equal(tile_rgb(window), np.stack([grey] * 3, axis=2))


def test_reset_returns_to_the_dataset_percentiles(window: MainWindow, qtbot, tmp_path: Path) -> None:
    root = imported(tmp_path, "geo4")
    assert window.open_project(root)
    dock, project = window.display_dock, window.workspace.project
    dock.set_limits(0, 0, 60000)
    dock.reset_button.click()
    qtbot.waitUntil(lambda: dock.mapping.limits[0] != (0.0, 60000.0), timeout=10000)
    pixels = np.concatenate([project.read_raw(r).reshape(-1, 4) for r in project.images]).astype(np.float64)
    want = list(zip(np.percentile(pixels, 0.5, axis=0), np.percentile(pixels, 99.5, axis=0)))
    np.testing.assert_allclose(np.asarray(dock.mapping.limits), np.asarray(want))


def test_a_mapping_saved_by_another_program_is_followed(window: MainWindow, qtbot, tmp_path: Path) -> None:
    root = imported(tmp_path, "geo4")
    assert window.open_project(root)
    dock = window.display_dock
    other = Project.open(root)
    theirs = display.DisplayMapping.from_dict(other.settings["display"])
    theirs = display.DisplayMapping("rgb", (2, 1, 0), 0, theirs.limits)
    other.settings["display"] = theirs.to_dict()
    other.save()
    qtbot.waitUntil(lambda: dock.mapping == theirs, timeout=10000)  # the 1 s manifest poll
    assert dock.rows[0].band.currentIndex() == 2
    raw = window.workspace.project.read_raw(window.workspace.session.current_id)
    np.testing.assert_array_equal(tile_rgb(window), expected_rgb(raw, (2, 1, 0), theirs.limits))


def test_photo_project_has_no_dock_and_renders_its_pixels(window: MainWindow, qtbot, make_project) -> None:
    project = make_project(count=3, labeled=0, size=(W, H))
    assert window.open_project(project.root)
    assert not window.display_dock.isVisible() and window.display_dock.mapping is None
    assert "display" not in window.workspace.project.settings
    image_id = window.workspace.session.current_id
    photo = np.asarray(Image.open(project.image_path(image_id)).convert("RGB"))
    np.testing.assert_array_equal(tile_rgb(window), photo)
    np.testing.assert_array_equal(window.canvas.image, photo)
    np.testing.assert_array_equal(thumbnail_rgb(window, qtbot, image_id), photo)
    assert window.dataset_dock.thumbnails.mapping is None


def test_a_read_only_window_shows_changes_but_writes_none(window: MainWindow, qtbot, tmp_path: Path,
                                                          monkeypatch) -> None:
    from segstudio.core import presence

    root = imported(tmp_path, "geo4")
    before = (root / "project.json").read_bytes()
    monkeypatch.setattr(presence, "others", lambda _root: [object()])
    window.workspace.ask_shared = lambda _holders: dialogs.SHARED_READ_ONLY
    assert window.open_project(root) and window.workspace.read_only
    dock = window.display_dock
    raw = window.workspace.project.read_raw(window.workspace.session.current_id)
    dock.pick(0, 3)
    qtbot.waitUntil(lambda: not dock._render_timer.isActive(), timeout=600)  # rendered at once...
    np.testing.assert_array_equal(tile_rgb(window)[:, :, 0], stretch(raw[:, :, 3], *dock.mapping.limits[3]))
    assert dock._save_timer.isActive()  # ...saved later: here by the close, which must not write
    assert window.workspace.close_project()
    assert (root / "project.json").read_bytes() == before


def test_an_image_loaded_on_a_worker_during_a_change_is_redrawn(window: MainWindow, qtbot, tmp_path: Path,
                                                                monkeypatch) -> None:
    import threading

    from segstudio.ui.project import session as session_module

    assert window.open_project(imported(tmp_path, "geo4"))
    dock, session = window.display_dock, window.workspace.session
    read, release = threading.Event(), threading.Event()
    load = session_module._load_on_worker

    def slow_load(project, image_id, job):  # noqa: ANN001, ANN202
        loaded = load(project, image_id, job)  # read through the mapping of this moment
        read.set()
        release.wait(10)
        return loaded

    monkeypatch.setattr(session_module, "_load_on_worker", slow_load)
    other = next(i for i in window.dataset_dock.visible_ids() if i != session.current_id)
    assert session.open_image(other, background=True)
    assert read.wait(10)
    dock.pick(0, 3)  # while the loaded pixels wait on the worker
    dock.flush()
    release.set()
    qtbot.waitUntil(lambda: session.current_id == other, timeout=10000)
    raw = window.workspace.project.read_raw(other)
    np.testing.assert_array_equal(tile_rgb(window), expected_rgb(raw, (3, 1, 2), dock.mapping.limits))
    np.testing.assert_array_equal(session.image, expected_rgb(raw, (3, 1, 2), dock.mapping.limits))
