"""The Assist tool: clicks and a box become a mask proposal from a Segment-Anything-family
model; Enter or a double click accepts it as one undoable edit.

Left click: positive point; right click or Alt+click: negative point; left drag: a box.
Tab cycles the alternatives, Backspace drops the last point, Esc drops the proposal.
Clicks made while the image is still being encoded are kept and answered when it is ready.

Which assist runs is the host's `assist_mode`: "sam" (the Segment-Anything-family model of
`assist_session`) or "project" (a box is predicted with the project's active model through
`assist_box`, a ProjectBoxAssist); hosts without these attributes get "sam".
"""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter

from segstudio.assist import AssistResult, Box, Point, Prompt
from segstudio.core import tools as core_tools
from segstudio.core.errors import SegstudioError
from segstudio.core.grabcut import Selection
from segstudio.core.region import Region
from segstudio.ui.annotate.assist_box_model import BoxProposal, ProjectBoxAssist
from segstudio.ui.annotate.assist_session import AssistSession
from segstudio.ui.annotate.canvas_tools import (
    BG_COLOR,
    FG_COLOR,
    Pointer,
    Tool,
    ToolHost,
    cosmetic_pen,
)
from segstudio.ui.jobs import JobCancelled, error_text

FILL_ALPHA = 90
MIN_BOX_SIDE = 4.0
ASSIST_WINDOW = 1024  # side of the window of a gigapixel image one prompt works on
SAM, PROJECT = "sam", "project"


class AssistTool(Tool):
    name = "assist"

    def __init__(self, host: ToolHost) -> None:
        super().__init__(host)
        self.prompt = Prompt()
        self.result: AssistResult | BoxProposal | None = None
        self.rank = 0
        self._press: tuple[float, float, bool] | None = None
        self._drag_end: tuple[float, float] | None = None
        self._picture: QImage | None = None
        self._session: AssistSession | None = None
        self._image: np.ndarray | None = None
        self._load_failed = False
        self._asked = 0  # the project model's answers for older boxes are dropped
        # A gigapixel image has no whole array: a prompt works on a window of it read from
        # the file (ASSIST_WINDOW around the first click, or around the box), fixed until
        # the proposal is accepted or dropped.
        self._window: Region | None = None
        self._window_pixels: np.ndarray | None = None

    @property
    def mode(self) -> str:
        return str(getattr(self.host, "assist_mode", SAM))

    def _box_assist(self) -> ProjectBoxAssist | None:
        return getattr(self.host, "assist_box", None)

    # -- the model ------------------------------------------------------------------------
    def session(self) -> AssistSession | None:
        """The host's assist session (loaded from the registered models on first use), told
        about the open image, which starts its encode in the background."""
        if not hasattr(self.host, "assist_session"):
            return None
        session = self.host.assist_session
        if session is None:
            if self._load_failed:
                return None
            try:
                session = AssistSession.from_store(parent=self.host if isinstance(self.host, QObject) else None,
                                                   background=True)
                session.load_failed.connect(lambda _message, failed=session: self._on_session_load_failed(failed))
            except SegstudioError as exc:
                self._load_failed = True
                self.host.report_error(f"Assist: {exc}")
                return None
            self.host.assist_session = session
        if session is not self._session:
            if self._session is not None:
                self._session.ready.disconnect(self._on_session_ready)
                self._session.note.disconnect(self.host.report_error)
            self._session = session
            session.ready.connect(self._on_session_ready)
            session.note.connect(self.host.report_error)
            self._image = None
        image = self.host.image if self.host.image is not None else self._window_pixels
        if image is not self._image:
            self._image = image
            session.set_image(image)
        return session

    # -- gigapixel images: a window per prompt ----------------------------------------------
    def _tiled(self) -> bool:
        return self.host.image is None and getattr(self.host, "pixel_source", None) is not None

    def _take_window(self, x0: float, y0: float, x1: float, y1: float) -> bool:
        """For a gigapixel image: make sure the prompt's window holds (x0, y0)-(x1, y1),
        reading a new one for a new prompt; False (and a message) when it cannot."""
        if not self._tiled():
            return True
        doc = self.host.document
        assert doc is not None
        want = Region(int(min(y0, y1)), int(min(x0, x1)), int(max(y0, y1)) + 1, int(max(x0, x1)) + 1)
        if self._window is not None:
            if want.intersect(self._window) == want:
                return True
            self.host.report_error("Assist: that is outside the part of the image this proposal works on; "
                                   "Enter accepts it, Esc drops it and the next click starts anew")
            return False
        side = max(ASSIST_WINDOW, int(1.5 * max(want.height, want.width)))
        cy, cx = (want.y0 + want.y1) // 2, (want.x0 + want.x1) // 2
        window = Region(cy - side // 2, cx - side // 2, cy - side // 2 + side, cx - side // 2 + side)
        height, width = doc.shape  # moved inside the image where it sticks out, then clipped
        window = window.shifted(min(0, height - window.y1) - min(0, window.y0),
                                min(0, width - window.x1) - min(0, window.x0)).clip(height, width)
        self._window = window
        self._window_pixels = self.host.pixel_source.read_scaled(0, window)  # type: ignore[attr-defined]
        return True

    def _offset(self) -> tuple[int, int]:
        return (0, 0) if self._window is None else (self._window.y0, self._window.x0)

    def _local(self, prompt: Prompt) -> Prompt:
        """The prompt in the coordinates of the pixels the model sees (the window's)."""
        dy, dx = self._offset()
        if (dy, dx) == (0, 0):
            return prompt
        points = tuple(Point(p.x - dx, p.y - dy, p.positive) for p in prompt.points)
        box = prompt.box
        return Prompt(points, None if box is None else Box(box.x0 - dx, box.y0 - dy, box.x1 - dx, box.y1 - dy))

    def _on_session_load_failed(self, session: AssistSession) -> None:
        if getattr(self.host, "assist_session", None) is session:
            self._load_failed = True  # said once in the status bar (the note); not retried each paint
            self.host.assist_session = None

    def _on_session_ready(self) -> None:
        if not self.prompt.is_empty and self.mode == SAM:
            self._update(refine=False)

    # -- pointer --------------------------------------------------------------------------
    def press(self, p: Pointer) -> None:
        if self.host.document is None:
            return
        negative = p.button == Qt.MouseButton.RightButton or (
            p.button == Qt.MouseButton.LeftButton and bool(p.modifiers & Qt.KeyboardModifier.AltModifier))
        if p.button in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            self._press = (p.x, p.y, negative)
            self._drag_end = None

    def move(self, p: Pointer, buttons: Qt.MouseButton) -> None:
        if self._press is not None and not self._press[2]:
            self._drag_end = (p.x, p.y)
            self.host.request_repaint()

    def release(self, p: Pointer) -> None:
        if self._press is None:
            return
        x0, y0, negative = self._press
        self._press, self._drag_end = None, None
        h, w = self.host.document.shape if self.host.document is not None else (0, 0)
        is_box = not negative and abs(p.x - x0) >= MIN_BOX_SIDE and abs(p.y - y0) >= MIN_BOX_SIDE
        if self.mode == PROJECT and self._tiled():
            self.host.report_error("Assist (project model) is not available on gigapixel images; use Segment "
                                   "Anything, the magic wand or the GrabCut box")
            return
        if self.mode == PROJECT:
            if is_box:
                self._ask_project_model(Box(_clamp(x0, w), _clamp(y0, h), _clamp(p.x, w), _clamp(p.y, h)))
            else:
                self.host.report_error("Assist (project model): drag a box around the object")
            return
        if is_box:
            box = Box(_clamp(x0, w), _clamp(y0, h), _clamp(p.x, w), _clamp(p.y, h))
            if not self._take_window(box.x0, box.y0, box.x1, box.y1):
                return
            self.prompt = Prompt(self.prompt.points, box)
            self._update(refine=False)
        elif 0 <= x0 < w and 0 <= y0 < h:
            if not self._take_window(x0, y0, x0, y0):
                return
            self.prompt = self.prompt.with_point(Point(x0, y0, positive=not negative))
            self._update(refine=True)

    def double_click(self, p: Pointer) -> None:
        self.accept()

    def key(self, key: int) -> bool:
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.accept()
            return True
        if key == Qt.Key.Key_Escape and self.busy():
            self.cancel()
            return True
        if key == Qt.Key.Key_Tab and self.result is not None and len(self.result.candidates) > 1:
            self.rank = (self.rank + 1) % len(self.result.candidates)
            self._picture = None
            cand = self.result.candidates[self.rank]
            self.host.report_error(f"Assist: mask {self.rank + 1} of {len(self.result.candidates)} "
                                   f"(predicted IoU {cand.iou:.2f})")
            self.host.request_repaint()
            return True
        if key == Qt.Key.Key_Backspace and self.prompt.points:
            self.prompt = self.prompt.without_last_point()
            self._update(refine=False)
            return True
        return False

    # -- proposal -------------------------------------------------------------------------
    def _ask_project_model(self, box: Box) -> None:
        runner, doc, image = self._box_assist(), self.host.document, self.host.image
        if runner is None or not runner.available or doc is None or image is None:
            self.host.report_error("Assist: the project has no active model yet; train one, "
                                   "or pick Segment Anything in the tool bar")
            return
        self.prompt, self.result, self.rank, self._picture = Prompt((), box), None, 0, None
        self._asked += 1
        asked = self._asked

        def done(proposal: BoxProposal | None) -> None:
            if asked != self._asked or self.prompt.box != box:
                return  # the user moved on meanwhile
            if proposal is None:
                self.host.report_error("Assist (project model): the model finds no class in this box")
                self.cancel()
                return
            self.result, self.rank, self._picture = proposal, 0, None
            name = doc.classes.by_id(proposal.class_id).name
            self.host.report_error(f"Assist (project model): {name}, {proposal.share:.0%} of the box; "
                                   "Enter accepts")
            self.host.request_repaint()

        def failed(exc: BaseException) -> None:
            if asked == self._asked and not isinstance(exc, JobCancelled):
                self.host.report_error(f"Assist (project model): {error_text(exc)}")

        self.host.report_error("Assist (project model): predicting the box...")
        runner.propose(image, box, doc.classes, self._value(), done, failed)
        self.host.request_repaint()

    def _update(self, refine: bool) -> None:
        self._picture = None
        if self.prompt.is_empty:
            self.result = None
            self.host.request_repaint()
            return
        session = self.session()
        if session is None:
            self.host.report_error(
                "Assist: no model loaded; register one with `segstudio assist-models` and pick it")
            return
        feedback = self.result.feedback(self.rank) if (refine and self.result is not None) else None
        try:
            result = session.predict(self._local(self.prompt), feedback)
        except SegstudioError as exc:
            self.host.report_error(f"Assist: {exc}")
            return
        if result is None:
            self.host.report_error("Assist: the image is still being prepared; your clicks are kept")
        else:
            self.result, self.rank = result, 0
        self.host.request_repaint()

    def proposal(self) -> np.ndarray | None:
        """The bool mask now proposed, or None: the image's size, or on a gigapixel image the
        window's (placed at `proposal_offset`)."""
        return None if self.result is None else self.result.mask(self.rank)

    @property
    def proposal_offset(self) -> tuple[int, int]:
        """(row, column) of the proposal's top left corner in the image."""
        return self._offset()

    def accept(self) -> None:
        """Paint the proposal in the active class as one undoable edit (Protect respected)."""
        mask, doc, offset = self.proposal(), self.host.document, self.proposal_offset
        self.cancel()
        if mask is None or doc is None or not mask.any():
            return
        ys, xs = np.nonzero(mask)
        region = Region(int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1)
        selection = Selection(region.shifted(*offset), mask[region.slices])
        self._one_shot(core_tools.apply_selection, doc, "Assist", selection, self._value(), self.host.protect)

    def cancel(self) -> None:
        self._asked += 1
        self.prompt, self.result, self.rank = Prompt(), None, 0
        self._window = self._window_pixels = None
        self._press = self._drag_end = None
        self._picture = None
        self.host.request_repaint()

    def busy(self) -> bool:
        return not self.prompt.is_empty or self._press is not None

    def preview(self, painter: QPainter, scale: float) -> None:
        if self.mode != PROJECT and self.session() is None and self.prompt.is_empty:
            return
        mask = self.proposal()
        if mask is not None:
            if self._picture is None:
                self._picture = _proposal_image(mask, self._colour())
            dy, dx = self._offset()
            painter.drawImage(QRectF(dx, dy, mask.shape[1], mask.shape[0]), self._picture)
        box = self.prompt.box
        if self._drag_end is not None and self._press is not None:
            box = Box(self._press[0], self._press[1], *self._drag_end)
        if box is not None:
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(cosmetic_pen(QColor(255, 255, 0), 1.5, Qt.PenStyle.DashLine))
            b = box.normalised()
            painter.drawRect(QRectF(QPointF(b.x0, b.y0), QPointF(b.x1, b.y1)))
        r = 4.0 / max(scale, 1e-6)
        painter.setPen(cosmetic_pen(QColor(0, 0, 0), 1.0))
        for point in self.prompt.points:
            painter.setBrush(FG_COLOR if point.positive else BG_COLOR)
            painter.drawEllipse(QPointF(point.x, point.y), r, r)

    def _colour(self) -> tuple[int, int, int]:
        doc = self.host.document
        try:
            colour = doc.classes.by_id(self._value()).color  # type: ignore[union-attr]
            return int(colour[0]), int(colour[1]), int(colour[2])
        except (AttributeError, KeyError, SegstudioError):
            return 255, 255, 0


def _clamp(value: float, limit: int) -> float:
    return min(max(value, 0.0), float(limit))


def _proposal_image(mask: np.ndarray, colour: tuple[int, int, int]) -> QImage:
    """Translucent fill plus an opaque outline in `colour`, as a premultiplied-free ARGB image."""
    h, w = mask.shape
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[mask] = (*colour, FILL_ALPHA)
    eroded = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    rgba[mask & ~eroded] = (*colour, 255)
    image = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
    return image.copy()  # own the pixels: rgba is freed after this call
