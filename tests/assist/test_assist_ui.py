"""The Assist tool on the canvas with a stand-in model: open an image, click, see the
proposal, Tab through alternatives, accept as one undoable edit, undo."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from segstudio.ui.annotate.assist_session import AssistSession  # noqa: E402
from segstudio.ui.annotate.canvas import Canvas  # noqa: E402
from tests.assist.stand_ins import OFFSETS, expected_disc, iou  # noqa: E402
from tests.ui.test_canvas import UNLABELED, Driver, make_classes, open_doc  # noqa: E402

HEIGHT, WIDTH = 240, 320


@pytest.fixture
def assisted(qtbot, pair):  # noqa: ANN001
    canvas = Canvas()
    canvas.resize(480, 400)
    qtbot.addWidget(canvas)
    canvas.show()
    qtbot.waitExposed(canvas)
    image = np.full((HEIGHT, WIDTH, 3), 120, np.uint8)  # plain grey: the tint is measurable
    doc = open_doc(canvas, image, np.full((HEIGHT, WIDTH), UNLABELED, np.uint8), make_classes())
    canvas.assist_session = AssistSession.from_files(*pair("sam1"), parent=canvas)
    canvas.set_active_class(2)
    canvas.set_tool("assist")
    return canvas, doc, Driver(canvas)


def _tool(canvas: Canvas):  # noqa: ANN202
    return canvas._tools["assist"]


def test_click_shows_a_proposal_then_accept_and_undo(assisted, qtbot) -> None:  # noqa: ANN001
    canvas, doc, drive = assisted
    session = canvas.assist_session
    with qtbot.waitSignal(session.ready, timeout=5000):
        drive.move(10, 10)
        canvas.viewport().repaint()  # the first paint with the tool starts the encode
    drive.click(150, 110)
    tool = _tool(canvas)
    proposal = tool.proposal()
    assert proposal is not None and (doc.mask == UNLABELED).all(), "a proposal is not an edit"
    assert iou(proposal, expected_disc(HEIGHT, WIDTH, "sam1", [(150.5, 110.5)], OFFSETS["sam1"][2])) >= 0.97
    shown = canvas.viewport().grab().toImage()
    centre = drive.view_pos(150, 120).toPoint()
    colour = shown.pixelColor(centre)
    assert colour.blue() > colour.green(), "the proposal is tinted with the car class colour (64, 0, 128)"
    drive.key(Qt.Key.Key_Tab)
    assert tool.rank == 1 and tool.result.candidates[1].output_index == 0
    drive.key(Qt.Key.Key_Tab)
    drive.key(Qt.Key.Key_Tab)
    drive.key(Qt.Key.Key_Tab)
    assert tool.rank == 0
    with qtbot.waitSignal(canvas.edited, timeout=1000):
        drive.key(Qt.Key.Key_Return)
    painted = doc.mask == 2
    assert (painted == proposal).all()
    assert doc.history.undo_depth == 1 and doc.undo_label == "Assist"
    assert tool.proposal() is None
    doc.undo()
    assert (doc.mask == UNLABELED).all()


def test_negative_click_box_backspace_escape(assisted, qtbot) -> None:  # noqa: ANN001
    canvas, doc, drive = assisted
    with qtbot.waitSignal(canvas.assist_session.ready, timeout=5000):
        canvas.viewport().repaint()
    tool = _tool(canvas)
    drive.drag([(60, 50), (120, 100), (200, 160)])  # a box
    assert tool.prompt.box is not None and tool.result.candidates[0].output_index == 0
    box_mask = tool.proposal()
    assert box_mask[100, 130] and not box_mask[20, 20]
    drive.click(130, 100, button=Qt.MouseButton.RightButton)  # not this
    assert not tool.proposal()[100, 130]
    drive.key(Qt.Key.Key_Backspace)
    assert tool.proposal()[100, 130]
    drive.key(Qt.Key.Key_Escape)
    assert tool.proposal() is None and not tool.busy()
    assert (doc.mask == UNLABELED).all()


def test_accept_respects_protect_labelled(assisted, qtbot) -> None:  # noqa: ANN001
    canvas, doc, drive = assisted
    with qtbot.waitSignal(canvas.assist_session.ready, timeout=5000):
        canvas.viewport().repaint()
    doc.begin_stroke("setup")
    doc.mask  # noqa: B018
    from segstudio.core.region import Region

    doc.write(Region(100, 140, 120, 160), 1, np.ones((20, 20), bool))
    doc.end_stroke()
    canvas.set_protect(True)
    drive.click(150, 110)
    drive.key(Qt.Key.Key_Return)
    assert (doc.mask[100:120, 140:160] == 1).all()
    assert doc.mask[110, 130] == 2


def test_clicks_before_the_embedding_is_ready_are_answered_when_it_is(assisted, qtbot) -> None:  # noqa: ANN001
    canvas, doc, drive = assisted
    tool = _tool(canvas)
    session = canvas.assist_session
    with qtbot.waitSignal(session.ready, timeout=5000):
        drive.click(150, 110)  # starts the encode; the answer is delivered by the event loop
        assert tool.result is None and len(tool.prompt.points) == 1
    assert tool.proposal() is not None and tool.proposal()[110, 150]


def test_no_registered_model_is_a_status_note(qtbot, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("SEGSTUDIO_DATA_DIR", str(tmp_path))
    canvas = Canvas()
    qtbot.addWidget(canvas)
    image = np.zeros((50, 60, 3), np.uint8)
    open_doc(canvas, image, np.full((50, 60), UNLABELED, np.uint8), make_classes())
    canvas.set_tool("assist")
    with qtbot.waitSignal(canvas.tool_error, timeout=1000) as note:
        Driver(canvas).click(20, 20)
    assert "no assist model is registered" in note.args[0]
    assert (canvas.document.mask == UNLABELED).all()


def _fresh_canvas(qtbot) -> tuple[Canvas, object]:  # noqa: ANN001
    canvas = Canvas()
    canvas.resize(480, 400)
    qtbot.addWidget(canvas)
    canvas.show()
    qtbot.waitExposed(canvas)
    doc = open_doc(canvas, np.full((HEIGHT, WIDTH, 3), 120, np.uint8),
                   np.full((HEIGHT, WIDTH), UNLABELED, np.uint8), make_classes())
    canvas.set_active_class(2)
    return canvas, doc


def test_the_model_loads_off_the_ui_thread_and_clicks_wait_for_it(qtbot, pair, monkeypatch) -> None:  # noqa: ANN001
    import threading

    from segstudio.ui.annotate import assist_session

    gate, loaded_on = threading.Event(), []
    real = assist_session.ClickAssistant

    def gated(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        loaded_on.append(threading.current_thread())
        assert gate.wait(10), "the test never opened the gate"
        return real(*args, **kwargs)

    monkeypatch.setattr(assist_session, "ClickAssistant", gated)
    canvas, doc = _fresh_canvas(qtbot)
    # returns at once although the model cannot load until the gate opens
    session = AssistSession.from_files(*pair("sam1"), parent=canvas, name="stand-in", background=True)
    assert session.loading and session.describe() == "stand-in (loading)"
    canvas.assist_session = session
    canvas.set_tool("assist")
    drive = Driver(canvas)
    drive.click(150, 110)  # made while the model loads: kept, answered later
    tool = _tool(canvas)
    assert tool.result is None and len(tool.prompt.points) == 1 and session.encoding
    with qtbot.waitSignal(session.ready, timeout=10_000):
        gate.set()
    assert loaded_on and loaded_on[0] is not threading.main_thread()
    assert not session.loading and "stand-in (SAM 1" in session.describe()
    assert tool.proposal() is not None and tool.proposal()[110, 150]
    drive.key(Qt.Key.Key_Return)
    assert (doc.mask[100:120, 140:160] == 2).all()


def test_a_model_that_fails_to_load_says_so_and_is_let_go(qtbot, pair, tmp_path) -> None:  # noqa: ANN001
    canvas, doc = _fresh_canvas(qtbot)
    broken = tmp_path / "encoder.onnx"
    broken.write_bytes(b"not onnx at all")
    session = AssistSession.from_files(broken, pair("sam1")[1], parent=canvas, name="broken", background=True)
    canvas.assist_session = session
    canvas.set_tool("assist")
    tool = _tool(canvas)
    tool.session()  # what the first paint with the tool does: hands it the image
    with qtbot.waitSignal(session.load_failed, timeout=10_000) as failed:
        pass
    assert "could not load broken" in failed.args[0] and session.load_error == failed.args[0]
    assert session.describe() == "broken (not loaded)" and not session.loading and not session.encoding
    Driver(canvas).click(150, 110)
    assert tool.proposal() is None and (doc.mask == UNLABELED).all()


def test_assist_on_a_gigapixel_image_works_in_a_window(qtbot, pair, tmp_path) -> None:  # noqa: ANN001
    """A gigapixel image has no whole array: a prompt's first click reads a 1,024 px window
    of the file around it (moved inside the image at an edge), the model sees that window,
    and the accepted proposal lands at the window's place in the mask."""
    import sys
    from pathlib import Path

    from segstudio.core.gigapixel import GigapixelImage
    from segstudio.core.mask_document import MaskDocument
    from segstudio.core.tiled_mask import allocate
    from segstudio.ui.annotate.canvas_tools import Pointer

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
    from gigapixel_builders import write_pyramid

    def at(x: float, y: float) -> Pointer:
        return Pointer(x, y, 0.0, 0.0, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)

    h, w = 3_000, 2_600
    with GigapixelImage(write_pyramid(tmp_path / "slide.tif", h, w)) as image:
        canvas = Canvas()
        canvas.resize(480, 400)
        qtbot.addWidget(canvas)
        doc = MaskDocument(allocate(h, w, fill=UNLABELED), make_classes())
        canvas.set_document(image, doc)
        canvas.assist_session = AssistSession.from_files(*pair("sam1"), parent=canvas)
        canvas.set_active_class(2)
        canvas.set_tool("assist")
        tool = _tool(canvas)
        said: list[str] = []
        canvas.tool_error.connect(said.append)
        tool.press(at(2_500.5, 2_900.5))
        tool.release(at(2_500.5, 2_900.5))
        qtbot.waitUntil(lambda: tool.result is not None, timeout=10_000)
        assert tool.proposal_offset == (h - 1024, w - 1024)
        proposal = tool.proposal()
        assert proposal.shape == (1024, 1024)
        want = expected_disc(1024, 1024, "sam1", [(2_500.5 - (w - 1024), 2_900.5 - (h - 1024))], OFFSETS["sam1"][2])
        assert iou(proposal, want) >= 0.97
        tool.press(at(100.5, 100.5))  # outside the window: refused, the proposal stays
        tool.release(at(100.5, 100.5))
        assert "outside the part of the image" in said[-1] and len(tool.prompt.points) == 1
        tool.key(Qt.Key.Key_Return)
        painted = doc.mask == 2
        assert painted.sum() == proposal.sum()
        assert np.array_equal(painted[h - 1024:, w - 1024:], proposal)
        assert doc.can_undo and tool.proposal() is None and tool.proposal_offset == (0, 0)
        canvas.set_document(None, None)
