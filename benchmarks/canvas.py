"""The annotation canvas on an 8192 x 8192 RGB image with a 12-class mask, offscreen.

Drives the real Canvas with QMouseEvents sent to its viewport and times each action up
to "overlay ready to paint" (the document listener re-renders dirty tiles synchronously;
`flush()` renders any visible stale tile, so nothing is left for later). Prints key=value:

  dab_p95_ms    one brush dab (radius 20): press event -> overlay tiles updated   <= 8
  stroke_200_s  radius-30 drag of 200 pointer events, press to release (commit)  <= 1.5
  undo_ms       undo of that stroke incl. re-render of the dirty tiles           <= 50
  fill_ms       flood fill of a 4-Mpixel region via the fill tool               <= 200
  open_s        read JPEG image + PNG mask from disk, set_document, render      <= 1.5
  undo_mem_mb   history memory of 500 strokes (20 events each, radius 30)       <= 200

plus paint_*_ms (one synchronous full-viewport repaint at fit and at 100 %) and layer
memory. Usage: QT_QPA_PLATFORM=offscreen python benchmarks/canvas.py [--size 8192]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from segstudio.core.classes import ClassTable  # noqa: E402
from segstudio.core.imageio import read_image_rgb, read_mask, write_mask  # noqa: E402
from segstudio.core.mask_document import MaskDocument  # noqa: E402
from segstudio.ui.annotate.canvas import Canvas  # noqa: E402

CLASSES = ClassTable.from_names([f"class_{i}" for i in range(11)] + ["void"], ignore="void")
LEFT = Qt.MouseButton.LeftButton
NONE = Qt.MouseButton.NoButton
NOMOD = Qt.KeyboardModifier.NoModifier


def make_mask(size: int, seed: int = 0) -> np.ndarray:
    """Smooth random regions of 12 classes, plus an isolated 2048 x 2048 square to fill."""
    rng = np.random.default_rng(seed)
    low = max(64, size // 8)
    # Argmax of 12 smooth random fields gives blob-shaped regions with curved borders.
    fields = [cv2.resize(rng.random((12, 12), np.float32), (low, low), interpolation=cv2.INTER_CUBIC) for _ in range(12)]
    small = np.argmax(np.stack(fields), axis=0).astype(np.uint8)
    mask = cv2.resize(small, (size, size), interpolation=cv2.INTER_NEAREST)
    side = min(2048, size // 2)
    lo = size // 8
    mask[lo - 1 : lo + side + 1, lo - 1 : lo + side + 1] = 4
    mask[lo : lo + side, lo : lo + side] = 3
    return np.ascontiguousarray(mask)


def make_image(mask: np.ndarray, seed: int = 1) -> np.ndarray:
    """A photo-like RGB image: per-class colours, a gradient and noise."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(30, 190, (256, 3), dtype=np.uint8)
    image = colours[mask]
    size = mask.shape[0]
    ramp = cv2.resize(rng.integers(0, 40, (8, 8), dtype=np.uint8), (size, size), interpolation=cv2.INTER_LINEAR)
    image += ramp[:, :, None]
    noise = cv2.resize(rng.integers(0, 16, (size // 4, size // 4), dtype=np.uint8), (size, size))
    image += noise[:, :, None]
    return image


class Mouse:
    """Real QMouseEvents at image coordinates, sent to the canvas viewport."""

    def __init__(self, canvas: Canvas) -> None:
        self.canvas = canvas
        self.viewport = canvas.viewport()

    def _send(self, kind: QEvent.Type, x: float, y: float, button: Qt.MouseButton, buttons: Qt.MouseButton) -> None:
        pos = self.canvas.viewportTransform().map(QPointF(x, y))
        QApplication.sendEvent(self.viewport, QMouseEvent(kind, pos, pos, button, buttons, NOMOD))

    def press(self, x: float, y: float) -> None:
        self._send(QEvent.Type.MouseButtonPress, x, y, LEFT, LEFT)

    def move(self, x: float, y: float) -> None:
        self._send(QEvent.Type.MouseMove, x, y, NONE, LEFT)

    def release(self, x: float, y: float) -> None:
        self._send(QEvent.Type.MouseButtonRelease, x, y, LEFT, NONE)


def stroke_path(n: int, size: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    x = np.linspace(0.06 * size, 0.94 * size, n)
    phase = rng.uniform(0, 2 * math.pi)
    y = size / 2 + 0.3 * size * np.sin(np.linspace(0, 3 * math.pi, n) + phase)
    return list(zip(x.tolist(), y.tolist()))


class Clock:
    """Wall and the process CPU time of a block (the machine may be shared: report both)."""

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu

    def report(self, key: str, scale: float = 1.0, digits: int = 2) -> None:
        print(f"{key}={self.wall * scale:.{digits}f} {key.rsplit('_', 1)[0]}_cpu_{key.rsplit('_', 1)[1]}"
              f"={self.cpu * scale:.{digits}f}")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--view", default="1600x1000", help="viewport size WxH")
    args = parser.parse_args()
    size = args.size
    app = QApplication.instance() or QApplication([])
    rng = np.random.default_rng(2)

    with tempfile.TemporaryDirectory(prefix="segstudio-bench-") as tmp:
        mask0 = make_mask(size)
        image_path, mask_path = Path(tmp) / "image.jpg", Path(tmp) / "image.png"
        cv2.imwrite(str(image_path), cv2.cvtColor(make_image(mask0), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        write_mask(mask_path, mask0, CLASSES)
        del mask0

        canvas = Canvas()
        width, height = (int(v) for v in args.view.split("x"))
        canvas.resize(width, height)
        canvas.show()
        app.processEvents()

        # Open: decode both files, build the document, show it, render every visible tile.
        start, cpu0 = time.perf_counter(), time.process_time()
        image = read_image_rgb(image_path)
        t_image = time.perf_counter()
        doc = MaskDocument(read_mask(mask_path, CLASSES), CLASSES)
        t_mask = time.perf_counter()
        canvas.set_document(image, doc)
        canvas.flush()
        canvas.viewport().repaint()
        end = time.perf_counter()
        print(f"open_s={end - start:.3f} open_cpu_s={time.process_time() - cpu0:.3f}")
        print(f"open_read_image_s={t_image - start:.3f} open_read_mask_s={t_mask - t_image:.3f} "
              f"open_show_s={end - t_mask:.3f}")

        # Painting cost of one full-viewport repaint at fit and at 100 %.
        for label, setup in (("fit", canvas.zoom_fit), ("100", canvas.zoom_100)):
            setup()
            canvas.viewport().repaint()
            walls, cpus = [], []
            for _ in range(5):
                with Clock() as clock:
                    canvas.viewport().repaint()
                walls.append(clock.wall)
                cpus.append(clock.cpu)
            print(f"paint_{label}_ms={ms(float(np.median(walls)))} paint_{label}_cpu_ms={ms(float(np.median(cpus)))}")
        canvas.zoom_fit()
        canvas.flush()
        layer = canvas.mask_layer
        assert layer is not None and canvas.image_layer is not None
        print(f"fit_level={layer.pyramid.level_for(canvas.scale_factor)} "
              f"overlay_tiles_mb={layer.pyramid.nbytes / 2**20:.0f} "
              f"image_tiles_mb={canvas.image_layer.pyramid.nbytes / 2**20:.0f}")

        # Flood fill of the 2048 x 2048 square through the fill tool.
        mouse = Mouse(canvas)
        canvas.set_tool("fill")
        canvas.set_active_class(7)
        lo = size // 8
        before = doc.revision
        with Clock() as clock:
            mouse.press(lo + 10.5, lo + 10.5)
            canvas.flush()
        mouse.release(lo + 10.5, lo + 10.5)
        side = min(2048, size // 2)
        filled = int((doc.mask[lo : lo + side, lo : lo + side] == 7).sum())
        assert doc.revision != before and filled == side * side, "the fill did not fill the square"
        clock.report("fill_ms", scale=1000)
        print(f"fill_pixels={filled}")
        with Clock() as clock:
            doc.undo()
            canvas.flush()
        clock.report("fill_undo_ms", scale=1000)
        app.processEvents()

        # Dabs: a click each (the press paints the dab and re-renders it; release commits).
        # At 100 % (full-size tiles on screen, plus the fit level made above) and at fit.
        canvas.set_tool("brush")
        canvas.set_brush_size(20)
        for label, setup in (("", canvas.zoom_100), ("_fit", canvas.zoom_fit)):
            setup()
            canvas.flush()
            view = canvas.visible_scene_rect().intersected(QRectF(0, 0, size, size))
            press, press_cpu, click = [], [], []
            for i in range(300):
                x = rng.uniform(view.left(), view.right())
                y = rng.uniform(view.top(), view.bottom())
                canvas.set_active_class(i % 11)
                with Clock() as clock:
                    mouse.press(x, y)
                    canvas.flush()
                with Clock() as whole:
                    mouse.release(x, y)
                press.append(clock.wall)
                press_cpu.append(clock.cpu)
                click.append(clock.wall + whole.wall)
            print(f"dab{label}_p50_ms={ms(float(np.percentile(press, 50)))}")
            print(f"dab{label}_p95_ms={ms(float(np.percentile(press, 95)))}")
            print(f"dab{label}_p95_cpu_ms={ms(float(np.percentile(press_cpu, 95)))}")
            print(f"click{label}_p95_ms={ms(float(np.percentile(click, 95)))}")
            app.processEvents()

        # A 200-event stroke of radius 30 across the image (at fit: it crosses all of it).
        canvas.set_brush_size(30)
        canvas.set_active_class(5)
        points = stroke_path(200, size, rng)
        moves = []
        with Clock() as clock:
            mouse.press(*points[0])
            for x, y in points[1:-1]:
                t0 = time.perf_counter()
                mouse.move(x, y)
                canvas.flush()
                moves.append(time.perf_counter() - t0)
            mouse.release(*points[-1])
            canvas.flush()
        clock.report("stroke_200_s", digits=3)
        print(f"stroke_move_p95_ms={ms(float(np.percentile(moves, 95)))}")
        app.processEvents()

        layer.pyramid.reset_counters()
        with Clock() as clock:
            region = doc.undo()
            canvas.flush()
        clock.report("undo_ms", scale=1000)
        print(f"undo_region_px={region.area if region else 0} undo_rendered_px={layer.pyramid.rendered_pixels}")
        app.processEvents()

        # History memory of `steps` strokes (20 events, radius 30) made through the canvas.
        doc.clear_history()
        start = time.perf_counter()
        for _ in range(args.steps):
            x, y = rng.uniform(100, size - 100, 2)
            walk = np.cumsum(rng.normal(0, 25, size=(20, 2)), axis=0) + (x, y)
            # A class other than the one under the start, so every stroke changes pixels.
            canvas.set_active_class((int(doc.mask[int(y), int(x)]) + 1) % 11)
            mouse.press(*walk[0])
            for px, py in walk[1:]:
                mouse.move(px, py)
            mouse.release(*walk[-1])
        elapsed = time.perf_counter() - start
        print(f"undo_mem_mb={doc.history_bytes() / 2**20:.2f}")
        print(f"undo_mem_steps={doc.history.undo_depth} strokes_s={elapsed:.2f}")


if __name__ == "__main__":
    main()
