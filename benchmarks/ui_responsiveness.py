"""Is the window still fluid while a CPU training run goes? The real MainWindow, offscreen.

Opens a project of CamVid frames (half size) plus one 4096 x 4096 image, opens that big
image on the canvas, presses Train in the Training dock (CPU, U-Net/ResNet-18, no
pretrained download) and measures, while the child process trains:

  first_event_s        Train pressed -> first `progress` event on the UI thread      <= 10
  timer_late_p99_ms    lateness of a 10 ms QTimer over 60 s of training (p99)         <= 50
  dab_p95_ms_training  one brush dab on the 4096 image (press -> tiles updated)       <= 16

plus dab_p95_ms_idle (the same dabs before training) and timer_late_p50/max, the load
average first (figures on a shared machine follow it). After the device probe the app starts
a warm child that imports torch while the user looks at the panel; the idle dabs give it
that time here too (warm_child_waiting says whether Train found one). The run is stopped gracefully at the
end (stop_s: Stop pressed -> `stopped` received).

    QT_QPA_PLATFORM=offscreen python benchmarks/ui_responsiveness.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QEvent, QPointF, QRectF, Qt, QTimer  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

import segstudio.ui  # noqa: E402,F401  (applies the Qt compatibility guard first)
from segstudio.core.classes import load_class_file  # noqa: E402
from segstudio.core.project import Project  # noqa: E402

CAMVID = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "camvid"
LEFT = Qt.MouseButton.LeftButton


def make_project(root: Path, n_train: int, n_val: int, big: int) -> tuple[Project, str]:
    project = Project.create(root, load_class_file(CAMVID / "classes.json"), name="bench")
    (root / "images").mkdir()
    for folder, count in (("train", n_train), ("val", n_val)):
        for name in sorted(p.name for p in (CAMVID / folder).glob("*.png"))[:count]:
            image = cv2.imread(str(CAMVID / folder / name))
            mask = cv2.imread(str(CAMVID / f"{folder}annot" / name), cv2.IMREAD_GRAYSCALE)
            size = (image.shape[1] // 2, image.shape[0] // 2)
            target = root / "images" / f"{folder}_{name}"
            cv2.imwrite(str(target), cv2.resize(image, size, interpolation=cv2.INTER_AREA))
            record = project.add_image(target, split=folder)
            project.write_mask(record, cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST),
                               status="labeled", save_manifest=False)
    frame = cv2.imread(str(next((CAMVID / "train").glob("*.png"))))
    big_path = root / "images" / "big.png"
    cv2.imwrite(str(big_path), cv2.resize(frame, (big, big), interpolation=cv2.INTER_CUBIC))
    record = project.add_image(big_path, split="unassigned")  # unlabelled: not trained on
    project.save()
    return project, record.id


def wait(app: QApplication, condition, timeout: float) -> bool:  # noqa: ANN001
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        app.processEvents()
        time.sleep(0.005)
    return True


def dabs(app: QApplication, canvas, count: int, rng: np.random.Generator, size: int) -> list[float]:  # noqa: ANN001
    """Brush dabs (press -> dirty tiles rendered), each followed by its release."""
    viewport = canvas.viewport()
    view = canvas.visible_scene_rect().intersected(QRectF(0, 0, size, size))
    times = []
    for _ in range(count):
        x, y = rng.uniform(view.left(), view.right()), rng.uniform(view.top(), view.bottom())
        pos = canvas.viewportTransform().map(QPointF(x, y))
        glob = QPointF(viewport.mapToGlobal(pos.toPoint()))
        start = time.perf_counter()
        QApplication.sendEvent(viewport, QMouseEvent(QEvent.Type.MouseButtonPress, pos, glob, LEFT, LEFT,
                                                     Qt.KeyboardModifier.NoModifier))
        canvas.flush()
        times.append(time.perf_counter() - start)
        QApplication.sendEvent(viewport, QMouseEvent(QEvent.Type.MouseButtonRelease, pos, glob, LEFT,
                                                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier))
        # Let the event loop (and the training events) run between dabs, as between clicks.
        end = time.monotonic() + 0.1
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.005)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to watch the 10 ms timer")
    parser.add_argument("--dabs", type=int, default=150)
    parser.add_argument("--big", type=int, default=4096)
    parser.add_argument("--train-images", type=int, default=48)
    args = parser.parse_args()
    if not (CAMVID / "classes.json").is_file():
        raise SystemExit(f"CamVid not found at {CAMVID}")
    print(f"loadavg_1m={os.getloadavg()[0]:.2f}")
    app = QApplication.instance() or QApplication(["bench"])
    from segstudio.ui.main_window import MainWindow

    folder = Path(tempfile.mkdtemp(prefix="segstudio-bench-"))
    try:
        project, big_id = make_project(folder / "project", args.train_images, 12, args.big)
        window = MainWindow()
        window.resize(1400, 900)
        window.show()
        assert window.open_project(project.root)
        session = window.workspace.session
        session.open_image(big_id)
        assert wait(app, lambda: session.current_id == big_id and window.canvas.document is not None, 120)
        canvas = window.canvas
        canvas.set_tool("brush")
        canvas.set_brush_size(20)
        canvas.zoom_fit()
        canvas.flush()
        rng = np.random.default_rng(0)
        controller = window.training.show()
        assert wait(app, lambda: controller.probe.report is not None, 300), "device probe did not answer"
        idle = dabs(app, canvas, args.dabs, rng, args.big)
        print(f"dab_p95_ms_idle={1000 * np.percentile(idle, 95):.2f}")

        panel = window.training.dock.panel
        panel.advanced.setChecked(True)
        defaults = panel.default_options()
        # The one-click CPU recipe, minus the ImageNet download (this machine is offline).
        panel.advanced.load(replace(defaults, pretrained=None, epochs=200))
        print(f"warm_child_waiting={controller.process.is_warm()}")
        pressed = time.monotonic()
        panel.train_button.click()
        assert wait(app, lambda: controller.first_progress_at is not None or not controller.is_running(), 300)
        if controller.first_progress_at is None:
            raise SystemExit(f"training ended early: {controller.process.final_event}")
        print(f"first_event_s={controller.first_progress_at - pressed:.2f}")

        lateness: list[float] = []
        clock = QElapsedTimer()
        timer = QTimer()
        timer.setTimerType(Qt.TimerType.PreciseTimer)
        timer.setInterval(10)

        def tick() -> None:
            elapsed = clock.nsecsElapsed() / 1e6
            lateness.append(max(0.0, elapsed - 10.0))
            clock.restart()

        timer.timeout.connect(tick)
        clock.start()
        timer.start()
        wait(app, lambda: False, args.seconds)
        timer.stop()
        late = np.asarray(lateness[1:])
        print(f"timer_ticks={late.size}")
        print(f"timer_late_p50_ms={np.percentile(late, 50):.2f}")
        print(f"timer_late_p99_ms={np.percentile(late, 99):.2f}")
        print(f"timer_late_max_ms={late.max():.2f}")
        training = dabs(app, canvas, args.dabs, rng, args.big)
        print(f"dab_p95_ms_training={1000 * np.percentile(training, 95):.2f}")
        epochs = len(window.training.dock.dashboard.epoch_records)
        print(f"epochs_during_benchmark={epochs}")
        print(f"still_training={controller.is_running()}")
        stop_at = time.monotonic()
        controller.stop()
        stopped = wait(app, lambda: not controller.is_running(), 120)
        print(f"stop_s={time.monotonic() - stop_at:.2f}" if stopped else "stop_s=timeout")
        if not stopped:
            controller.process.kill()
            wait(app, lambda: not controller.is_running(), 30)
        final = controller.process.final_event or {}
        print(f"final_event={final.get('event')}")
        session.save_all()
        window.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
