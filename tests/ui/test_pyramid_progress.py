"""The first open of a gigapixel TIFF without a pyramid (issue 12, point 4): the status bar
says "building the overview pyramid of X: NN%" with a Cancel button; Cancel (or asking for
another image) stops the build, the image left behind stays open, the cache holds nothing
that looks complete, and opening the slide again finishes the build and shows it."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile

from segstudio.core import gigapixel_project, mask_loading
from segstudio.core.classes import ClassTable
from segstudio.core.errors import ImageReadError
from segstudio.core.gigapixel import GigapixelImage, overview, pyramid_key
from segstudio.core.project import Project
from segstudio.ui.project.session import EditingSession

HEIGHT, WIDTH = 13_000, 1_000  # over the gigapixel side, in strips: a full copy and 5 levels


@pytest.fixture
def project(tmp_path: Path) -> Project:
    from PIL import Image

    project = Project.create(tmp_path / "proj", ClassTable.from_names(["background", "tissue"]))
    small = tmp_path / "a_small.png"
    Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(small)
    project.add_image(small)
    rows = (np.arange(HEIGHT, dtype=np.uint32) // 9 % 256).astype(np.uint8)
    data = np.repeat(rows[:, None, None], WIDTH, axis=1).repeat(3, axis=2)
    tifffile.imwrite(tmp_path / "slide.tif", data, rowsperstrip=64, photometric="rgb")
    project.add_image(tmp_path / "slide.tif")
    project.save()
    return project


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Holds the build after its first band until the test sets it: the cancel lands mid-build."""
    event = threading.Event()
    real = mask_loading.load_image

    def held(project: Project, image_id: str, progress=None, cancelled=None):  # noqa: ANN001, ANN202
        def report(fraction: float) -> None:
            progress(fraction)
            if fraction > 0:
                event.wait(20)

        return real(project, image_id, progress=report if progress else None, cancelled=cancelled)

    monkeypatch.setattr(mask_loading, "load_image", held)
    return event


def cache_state(project: Project) -> tuple[list[str], bool]:
    folder = project.root / gigapixel_project.PYRAMID_CACHE / pyramid_key(project.image_path("slide"))
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    try:
        overview(project.image_path("slide"), cache_dir=folder.parent, max_side=1000)
        complete = True
    except ImageReadError:
        complete = False
    return names, complete


def test_status_bar_shows_the_build_and_cancel_stops_it(qtbot, project: Project, main_window,  # noqa: ANN001
                                                        gate: threading.Event) -> None:
    win = main_window
    assert win.open_project(project.root)
    session, status = win.workspace.session, win.status
    qtbot.waitUntil(lambda: session.current_id == "a_small", timeout=10_000)
    assert not status.cancel_button.isVisible()

    assert win.workspace.open_image("slide")
    qtbot.waitUntil(lambda: status.cancel_button.isVisible(), timeout=10_000)
    text = status.busy_label.text()
    assert text.startswith("building the overview pyramid of slide: ") and text.endswith("%"), text
    assert 0 <= int(text.rsplit(" ", 1)[1][:-1]) < 100
    notes: list[str] = []
    status.messageChanged.connect(notes.append)
    from PySide6.QtCore import Qt

    qtbot.mouseClick(status.cancel_button, Qt.MouseButton.LeftButton)
    gate.set()
    assert session._pool.waitForDone(20_000)
    qtbot.wait(50)  # the worker's answer is delivered on the UI thread
    assert not status.cancel_button.isVisible() and not status.busy_label.isVisible()
    assert session.current_id == "a_small" and session.loading_id is None  # the small image stays
    assert any("stopped opening 'slide'" in n for n in notes), notes
    names, complete = cache_state(project)
    assert not complete and not any(n.endswith(".tmp") for n in names), names

    thumbnails = win.dataset_dock.thumbnails
    thumbnails.get("slide", project.image_path("slide"))
    qtbot.waitUntil(lambda: thumbnails.failed("slide"), timeout=10_000)  # no pyramid: no preview yet

    assert win.workspace.open_image("slide")  # again: the build finishes and the slide shows
    qtbot.waitUntil(lambda: win.canvas.document is not None and win.canvas.document.shape == (HEIGHT, WIDTH),
                    timeout=20_000)
    assert status.currentMessage() != "loading slide..."  # the note goes once it has opened
    # its thumbnail is made now, from the pyramid's smallest level (rows of grey bands)
    qtbot.waitUntil(lambda: thumbnails.get("slide", project.image_path("slide")) is not None, timeout=10_000)
    assert not thumbnails.failed("slide")
    assert isinstance(session.image, GigapixelImage) and len(session.image.levels) == 6
    assert not status.cancel_button.isVisible()
    names, complete = cache_state(project)
    assert complete and len(names) == 6, names
    win.close()


def test_asking_for_another_image_stops_the_build(qtbot, project: Project, gate: threading.Event) -> None:  # noqa: ANN001
    session = EditingSession(project)
    seen: list[tuple[str, float]] = []
    ended: list[str] = []
    messages: list[str] = []
    session.load_progress.connect(lambda image_id, f: seen.append((image_id, f)))
    session.load_ended.connect(ended.append)
    session.message.connect(messages.append)
    assert session.open_image("slide")  # big: in the background
    assert session.loading_id == "slide"
    assert session.open_image("slide")  # asked again while on its way: still one load
    qtbot.waitUntil(lambda: any(f > 0 for _, f in seen), timeout=10_000)
    assert {image_id for image_id, _ in seen} == {"slide"}
    assert session.open_image("a_small", background=False)
    assert ended == ["slide"] and session.loading_id is None
    gate.set()
    assert session._pool.waitForDone(20_000)
    qtbot.wait(50)
    assert session.current_id == "a_small"  # the stopped load never takes over
    assert not any("slide" in m for m in messages), messages  # the user moved on: nothing to say
    assert not cache_state(project)[1]
    session.close_all()
