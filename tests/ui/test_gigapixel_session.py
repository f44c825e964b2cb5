"""A gigapixel image in the editing session (issue 12, point 4): it opens by tiles with a
lazily allocated unlabelled mask, saves only the changed chunks (never a PNG, never a copy
of the whole mask), undo is saved like any edit, and a reopened session shows the saved
mask exactly. Small PNG images of the same project keep their whole-array path."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from segstudio.core import gigapixel_project
from segstudio.core.classes import ClassTable
from segstudio.core.gigapixel import GigapixelImage
from segstudio.core.project import Project
from segstudio.core.region import Region
from segstudio.core.tiled_mask import CHUNK
from segstudio.ui.project.session import EditingSession
from tests.ui.processes import WINDOW_DRIVER, run_until_then_kill

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from gigapixel_builders import write_pyramid  # noqa: E402

SIDE = 20_000


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project.create(tmp_path / "proj", ClassTable.from_names(["background", "tissue", "tumour"]))
    slide = write_pyramid(tmp_path / "slide.tif", SIDE, SIDE)
    project.add_image(slide)
    small = tmp_path / "small.png"
    from PIL import Image

    Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(small)
    project.add_image(small)
    project.save()
    return project


def chunk_files(project: Project) -> dict[str, int]:
    folder = gigapixel_project.store_path(project, "slide")
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if not p.name.startswith(".")}


def test_open_paint_save_by_chunk_reopen(qtbot, project: Project) -> None:  # noqa: ANN001
    unlabeled = project.classes.unlabeled_id
    session = EditingSession(project)
    assert session.open_image("slide", background=False)
    assert isinstance(session.image, GigapixelImage)
    doc = session.document
    assert doc is not None and doc.shape == (SIDE, SIDE)
    assert doc.mask[0, 0] == unlabeled and doc.mask[SIDE - 1, SIDE - 1] == unlabeled

    doc.apply_edit("box", Region(10_100, 3_000, 10_140, 3_050), 1)  # chunk 19.5
    doc.apply_edit("box", Region(CHUNK * 30 - 5, CHUNK * 8 - 5, CHUNK * 30 + 5, CHUNK * 8 + 5), 2)  # 4 chunks
    assert session.store.save("slide").saved
    assert not doc.dirty
    assert not project.mask_path("slide").exists()  # no PNG for a gigapixel image
    first = chunk_files(project)
    assert set(first) == {"19.5", "29.7", "29.8", "30.7", "30.8"}

    doc.apply_edit("dab", Region(100, 100, 110, 110), 2)
    assert session.store.save("slide").saved
    second = chunk_files(project)
    assert {n for n in second if second[n] != first.get(n)} == {"0.0"}

    doc.undo()  # an undo is saved like any edit: the chunk is unlabelled again, its file goes
    assert session.store.save("slide").saved
    assert "0.0" not in chunk_files(project)
    painted = np.array(doc.mask[10_000:10_200, 2_900:3_100])
    assert session.close_all().saved

    again = EditingSession(Project.open(project.root))
    assert again.open_image("slide", background=False)
    mask = again.document.mask
    assert np.array_equal(mask[10_000:10_200, 2_900:3_100], painted)
    assert (mask[CHUNK * 30 - 5:CHUNK * 30 + 5, CHUNK * 8 - 5:CHUNK * 8 + 5] == 2).all()
    assert mask[105, 105] == unlabeled
    # The small image of the same project still opens as an array with a PNG mask.
    assert again.open_image("small", background=False)
    assert isinstance(again.image, np.ndarray) and again.document.shape == (40, 50)
    again.document.apply_edit("box", Region(0, 0, 5, 5), 1)
    assert again.store.save("small").saved and project.mask_path("small").is_file()
    again.close_all()


def test_autosave_journal_tick_saves_chunks_instead(qtbot, project: Project) -> None:  # noqa: ANN001
    session = EditingSession(project)
    assert session.open_image("slide", background=False)
    doc = session.document
    doc.apply_edit("box", Region(600, 600, 620, 620), 1)
    entries = [e for e in session._cache]
    session.store.write_journal(entries)
    assert not doc.dirty and chunk_files(project).keys() == {"1.1"}
    assert "slide" not in session.journal.entries  # saved to the project, not journalled
    session.close_all()


def test_thumbnail_reads_the_smallest_level(qtbot, project: Project) -> None:  # noqa: ANN001
    from PySide6.QtCore import QSize

    from segstudio.ui.project.thumbnails import make_thumbnail

    image = make_thumbnail(project.image_path("slide"), QSize(72, 54), None)
    assert (image.width(), image.height()) == (54, 54)


def test_the_app_opens_paints_and_saves_a_gigapixel_slide(qtbot, project: Project, main_window) -> None:  # noqa: ANN001
    win = main_window
    assert win.open_project(project.root)
    assert win.workspace.open_image("slide")
    canvas = win.canvas
    qtbot.waitUntil(lambda: canvas.document is not None and canvas.document.shape == (SIDE, SIDE), timeout=10_000)
    layer = canvas.image_layer
    assert layer is not None and isinstance(layer.region_source, GigapixelImage)
    canvas.flush()
    doc = canvas.document
    doc.apply_edit("box", Region(5_000, 5_000, 5_010, 5_010), 1)
    assert win.workspace.session.store.save("slide").saved
    assert chunk_files(project).keys() == {"9.9"}
    win.close()


def test_predict_worker_tells_gigapixel_files_by_their_header(project: Project) -> None:
    from segstudio.core.gigapixel import is_gigapixel_file as _gigapixel

    assert _gigapixel(project.image_path("slide"))
    assert not _gigapixel(project.image_path("small"))


def test_deep_slide_shows_through_the_display_mapping_and_follows_it(qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    from gigapixel_builders import expected

    from segstudio.core import display, imagery
    from segstudio.ui.annotate.canvas import Canvas

    project = Project.create(tmp_path / "deep", ClassTable.from_names(["a", "b"]))
    project.add_image(write_pyramid(tmp_path / "deep.tif", 13_000, 12_100, channels=4, dtype="uint16"))
    assert imagery.prepare(project).changed
    project.save()
    session = EditingSession(project)
    assert session.open_image("deep", background=False)
    image = session.image
    assert isinstance(image, GigapixelImage) and image.mapping == display.mapping_of(project.settings)

    canvas = Canvas()
    qtbot.addWidget(canvas)
    canvas.resize(300, 300)
    canvas.show()
    canvas.set_document(image, session.document)
    canvas.zoom_100()
    canvas.centerOn(6_000, 5_000)

    def check(mapping: display.DisplayMapping) -> None:
        canvas.flush()
        layer = canvas.image_layer
        assert layer is not None
        tiles = layer.pyramid.level(0)._tiles
        assert tiles
        for tile in tiles.values():
            box = tile.region
            raw = expected(0, 256, box.y0, box.y1, box.x0, box.x1, channels=4, dtype="uint16")
            rgb = display.render(raw, mapping)
            words = (np.uint32(0xFF000000) | (rgb[..., 0].astype(np.uint32) << 16)
                     | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2])
            assert np.array_equal(tile.buffer, words)

    check(display.mapping_of(project.settings))
    changed = display.DisplayMapping("rgb", (3, 2, 1), 0, ((0, 100), (0, 100), (20, 200), (0, 255)))
    project.settings[display.SETTINGS_KEY] = changed.to_dict()
    session.redisplay()  # what the Display dock does on a change, then set_image
    assert image.mapping == changed and session.image is image
    canvas.set_image(session.image)
    check(changed)
    canvas.set_document(None, None)
    session.close_all()


GIGA_DRIVER = WINDOW_DRIVER + """
workspace.autosaver.set_intervals(save_delay_ms=0, journal_interval_ms=100)  # only the 2 s tick's path
assert workspace.session.open_image("slide", background=False)
document = workspace.session.document
boxes = [Region(100, 100, 700, 1300), Region(9_000, 11_500, 9_100, 12_000), Region(12_990, 0, 13_000, 12_000)]
for number, box in enumerate(boxes):
    document.apply_edit(f"paint {number}", box, 1 + number % 2)
np.save(sys.argv[2], np.stack([np.array(document.mask[b.slices]).sum(dtype=np.int64) for b in boxes]))

def poll():
    if not document.dirty:
        print("SAVED", flush=True)

timer = QTimer()
timer.timeout.connect(poll)
timer.start(50)
app.exec()
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_a_killed_app_keeps_the_painted_chunks_exactly(tmp_path: Path) -> None:
    """The 2 s autosave tick writes a gigapixel mask's changed chunks straight to the project
    (never a whole-mask journal copy): a SIGKILL after it loses nothing and breaks no chunk."""
    project = Project.create(tmp_path / "proj", ClassTable.from_names(["background", "tissue", "tumour"]))
    project.add_image(write_pyramid(tmp_path / "slide.tif", 13_000, 12_000))
    project.save()
    script = tmp_path / "driver.py"
    script.write_text(GIGA_DRIVER)
    sums = tmp_path / "sums.npy"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_DATA_HOME=str(tmp_path / "data"),
               XDG_CONFIG_HOME=str(tmp_path / "config"))
    run_until_then_kill([sys.executable, str(script), str(project.root), str(sums), str(tmp_path / "qs")],
                        "SAVED", timeout_s=90, env=env)
    reopened = Project.open(project.root)
    mask = gigapixel_project.read_mask(reopened, "slide")
    boxes = [Region(100, 100, 700, 1300), Region(9_000, 11_500, 9_100, 12_000), Region(12_990, 0, 13_000, 12_000)]
    for number, box in enumerate(boxes):
        assert (mask[box.slices] == 1 + number % 2).all()
    assert np.array_equal(np.load(sums), [int(mask[b.slices].sum(dtype=np.int64)) for b in boxes])
    unlabeled = reopened.classes.unlabeled_id
    assert (mask[800:8_900, 2_000:11_000] == unlabeled).all()
    store = gigapixel_project.mask_store(reopened, "slide")
    assert not [p for p in store.path.iterdir() if p.name.endswith(".tmp")]  # no half-written chunk
    assert len(store.stored_keys()) == 2 * 3 + 2 + 24
