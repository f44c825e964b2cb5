"""Kill soak (issue 15): the real app, offscreen, painted by a scripted annotator and killed
with SIGKILL at random moments; each restart must offer the recovery journal back (answered
yes) and bring back every stroke older than the journal interval, and no file the project
holds may ever fail to parse.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/kill_soak.py --kills 50

Prints kills=, strokes=, lost_strokes= (strokes older than the journal interval at the kill
that were not on disk after the restart), young_lost= (younger ones, allowed to go),
corrupt_files= (project.json, mask PNGs, journal files that fail to parse) and the time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segstudio.core.classes import ClassDef, ClassTable  # noqa: E402
from segstudio.core.project import Project  # noqa: E402
from segstudio.core.recovery import JOURNAL_NAME, RECOVERY_DIR  # noqa: E402
from segstudio.ui.project.autosave import JOURNAL_INTERVAL_MS  # noqa: E402

WIDTH, HEIGHT, CELL = 200, 150, 10
CELLS = (WIDTH // CELL) * (HEIGHT // CELL)
# Scheduling and write time on top of the journal interval before a stroke counts as owed.
SLACK_S = 0.5

DRIVER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    from PySide6.QtCore import QEvent, QPointF, QSettings, QSocketNotifier, Qt, QTimer
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    root, log_path, settings_dir, pace_ms = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    accept = sys.argv[5] == "1"
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, settings_dir)

    from segstudio.ui.app import create_app
    from segstudio.ui.main_window import MainWindow

    WIDTH, HEIGHT, CELL = {WIDTH}, {HEIGHT}, {CELL}
    PER_ROW, CELLS = WIDTH // CELL, {CELLS}
    app = create_app(["kill-soak"])
    window = MainWindow()
    window.resize(1000, 700)
    window.show()
    restored = []
    window.workspace.ask_restore = lambda found: restored.extend(found) or accept
    assert window.open_project(root)
    ids = [record.id for record in window.workspace.project.images]
    done = 0
    if os.path.exists(log_path):
        with open(log_path) as handle:
            done = sum(1 for line in handle if line.strip())
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    canvas = window.canvas
    canvas.set_brush_size(2)
    print(f"READY restored={{len(restored)}} next={{done}}", flush=True)

    def send(kind, x, y, button, buttons):
        pos = canvas.viewportTransform().map(QPointF(x + 0.5, y + 0.5))
        glob = QPointF(canvas.viewport().mapToGlobal(pos.toPoint()))
        QApplication.sendEvent(canvas.viewport(), QMouseEvent(kind, pos, glob, button, buttons, Qt.KeyboardModifier.NoModifier))

    def stroke():
        global done
        image_index, cell = divmod(done, CELLS)
        if image_index >= len(ids):
            return
        image_id = ids[image_index]
        if window.workspace.session.current_id != image_id:
            window.workspace.open_image(image_id)
            canvas.zoom_fit()
        cls = 1 + done % 2
        canvas.set_active_class(cls)
        cy, cx = divmod(cell, PER_ROW)
        x0, y0 = cx * CELL + 3, cy * CELL + 3
        left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
        send(QEvent.Type.MouseButtonPress, x0, y0, left, left)
        send(QEvent.Type.MouseMove, x0 + 2, y0 + 2, none, left)
        send(QEvent.Type.MouseMove, x0 + 4, y0 + 4, none, left)
        send(QEvent.Type.MouseButtonRelease, x0 + 4, y0 + 4, left, none)
        mask = window.workspace.session.document.mask
        landed = int(mask[y0 + 2, x0 + 2]) == cls
        os.write(log, f"{{done}} {{image_id}} {{x0 + 2}} {{y0 + 2}} {{cls}} {{time.time():.3f}} {{int(landed)}}\\n".encode())
        done += 1

    timer = QTimer()
    timer.timeout.connect(stroke)
    timer.start(pace_ms)
    notifier = QSocketNotifier(sys.stdin.fileno(), QSocketNotifier.Type.Read)
    notifier.activated.connect(lambda *_: (sys.stdin.readline(), timer.stop(), window.close(), app.quit()))
    app.exec()
    print("CLOSED", flush=True)
    """
).format(WIDTH=WIDTH, HEIGHT=HEIGHT, CELL=CELL, CELLS=CELLS)


@dataclass(frozen=True)
class Stroke:
    number: int
    image_id: str
    x: int
    y: int
    cls: int
    at: float
    landed: bool


def make_project(root: Path, images: int) -> Project:
    classes = ClassTable((ClassDef(0, "road", (128, 64, 128)), ClassDef(1, "car", (64, 0, 128)),
                          ClassDef(2, "sky", (70, 130, 180)), ClassDef(255, "unlabeled", (0, 0, 0), ignore=True)))
    project = Project.create(root, classes)
    rng = np.random.default_rng(3)
    (root / "images").mkdir()
    for index in range(images):
        path = root / "images" / f"scene{index:02d}.png"
        Image.fromarray(rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(path)
        project.add_image(path, split="train")
    project.save()
    return project


def read_strokes(log: Path) -> list[Stroke]:
    strokes = []
    if log.exists():
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) == 7:
                strokes.append(Stroke(int(parts[0]), parts[1], int(parts[2]), int(parts[3]), int(parts[4]),
                                      float(parts[5]), parts[6] == "1"))
    return strokes


def corrupt_files(root: Path) -> list[str]:
    """Every project file that a reader would trip over (temp files are never read)."""
    from segstudio.core import imageio
    from segstudio.core.atomic import is_temp_name

    bad = []
    try:
        data = json.loads((root / "project.json").read_text(encoding="utf-8"))
        assert isinstance(data.get("images"), list)
    except (OSError, ValueError, AssertionError):
        bad.append("project.json")
    pngs = list((root / "masks").glob("*.png")) + list((root / RECOVERY_DIR).rglob("*.png"))
    for path in pngs:
        if is_temp_name(path.name):
            continue
        try:
            imageio.read_mask_array(path)
        except Exception:  # noqa: BLE001 - any failure to decode is corruption here
            bad.append(str(path.relative_to(root)))
    for journal in (root / RECOVERY_DIR).rglob(JOURNAL_NAME):  # one per app process
        try:
            json.loads(journal.read_text(encoding="utf-8"))["entries"]
        except (OSError, ValueError, KeyError, TypeError):
            bad.append(str(journal.relative_to(root)))
    return bad


def missing(root: Path, strokes: list[Stroke]) -> list[Stroke]:
    """The strokes whose pixel is not its class in the mask on disk now."""
    from segstudio.core import imageio

    masks: dict[str, np.ndarray | None] = {}
    gone = []
    for stroke in strokes:
        if stroke.image_id not in masks:
            path = root / "masks" / f"{stroke.image_id}.png"
            masks[stroke.image_id] = imageio.read_mask_array(path)[0] if path.exists() else None
        mask = masks[stroke.image_id]
        if mask is None or int(mask[stroke.y, stroke.x]) != stroke.cls:
            gone.append(stroke)
    return gone


class App:
    """One life of the app in a child process."""

    def __init__(self, root: Path, work: Path, pace_ms: int, accept: bool = True) -> None:
        script = work / "driver.py"
        script.write_text(DRIVER)
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        self.stderr = open(work / "driver.stderr", "a")  # noqa: SIM115 - closed in finish()
        self.child = subprocess.Popen(
            [sys.executable, str(script), str(root), str(work / "strokes.log"), str(work / "qsettings"), str(pace_ms),
             "1" if accept else "0"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env, cwd=str(ROOT))
        line = self.child.stdout.readline()
        if not line.startswith("READY"):
            self.child.kill()
            raise SystemExit(f"the app did not start: {line!r}; see {work / 'driver.stderr'}")
        self.ready = line.strip()

    def kill(self) -> float:
        at = time.time()
        os.kill(self.child.pid, signal.SIGKILL)
        self.child.wait(30)
        self.stderr.close()
        return at

    def close(self) -> None:
        self.child.stdin.write("quit\n")
        self.child.stdin.flush()
        self.child.stdout.readline()
        self.child.wait(60)
        self.stderr.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--pace-ms", type=int, default=150, help="one brush stroke every this many ms")
    parser.add_argument("--min-life", type=float, default=1.0, help="seconds painted before a kill, at least")
    parser.add_argument("--max-life", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--decline", action="store_true",
                        help="negative control: answer no to the recovery offer (strokes must be lost)")
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep it (default: a temp folder)")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kill-soak-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        root = work / "project"
        lives = max(2, (args.kills * int((args.max_life + 3) * 1000 / args.pace_ms)) // CELLS + 2)
        make_project(root, images=lives)
        owed = interval_s = JOURNAL_INTERVAL_MS / 1000 + SLACK_S
        lost, young_lost, corrupt, restored = 0, 0, set(), 0
        app = App(root, work, args.pace_ms, not args.decline)
        for kill in range(args.kills):
            before = len(read_strokes(work / "strokes.log"))
            time.sleep(rng.uniform(args.min_life, args.max_life))
            killed_at = app.kill()
            corrupt.update(corrupt_files(root))
            strokes = read_strokes(work / "strokes.log")[before:]
            app = App(root, work, args.pace_ms, not args.decline)  # recovers (journal offered back, answered yes)
            restored += int(app.ready.split("restored=")[1].split()[0])
            gone = missing(root, [s for s in strokes if s.landed])
            old = [s for s in gone if s.at < killed_at - owed]
            lost += len(old)
            young_lost += len(gone) - len(old)
            if old:
                print(f"kill {kill + 1}: lost {[s.number for s in old]}", flush=True)
        app.close()
        corrupt.update(corrupt_files(root))
        strokes = read_strokes(work / "strokes.log")
        print(f"kills={args.kills} strokes={len(strokes)} not_landed={sum(not s.landed for s in strokes)} "
              f"recoveries={restored} lost_strokes={lost} young_lost={young_lost} "
              f"corrupt_files={len(corrupt)} journal_interval_s={interval_s - SLACK_S:g} "
              f"slack_s={SLACK_S:g} seconds={time.monotonic() - started:.0f}")
        for name in sorted(corrupt):
            print(f"corrupt: {name}")
    return 0 if lost == 0 and not corrupt else 1


if __name__ == "__main__":
    raise SystemExit(main())
