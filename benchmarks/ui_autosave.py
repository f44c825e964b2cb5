"""How long autosave and the recovery journal hold the UI thread, by mask size.

Prints key=value lines: ui_ms is the time the call blocks the UI thread, disk_ms the time
until the mask is on disk. Run: QT_QPA_PLATFORM=offscreen python benchmarks/ui_autosave.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PIL import Image  # noqa: E402
from PySide6.QtCore import QCoreApplication  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from segstudio.core.classes import ClassTable  # noqa: E402
from segstudio.core.project import Project  # noqa: E402
from segstudio.core.region import Region  # noqa: E402
from segstudio.ui.project.session import EditingSession  # noqa: E402


def measure(project: Project, image_id: str, side: int) -> None:
    session = EditingSession(project)
    session.open_image(image_id, background=False)
    document = session.document
    for mode in ("sync", "background"):
        document.apply_edit("paint", Region(10, 10, side // 2, side // 2), 1 if mode == "sync" else 2)
        done: list[float] = []
        session.saved.connect(lambda _id, done=done: done.append(time.perf_counter()))
        start = time.perf_counter()
        session.save(background=(mode == "background"))
        ui_ms = (time.perf_counter() - start) * 1000
        while not done:
            QCoreApplication.processEvents()
            time.sleep(0.001)
        disk_ms = (done[0] - start) * 1000
        session.saved.disconnect()
        print(f"size={side}x{side} mode={mode} ui_ms={ui_ms:.0f} disk_ms={disk_ms:.0f}")
    document.apply_edit("paint", Region(0, 0, side // 3, side // 3), 0)
    start = time.perf_counter()
    session.write_journal()
    print(f"size={side}x{side} journal_ui_ms={(time.perf_counter() - start) * 1000:.0f}")
    session.close_all()


def main() -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    root = Path(tempfile.mkdtemp())
    project = Project.create(root / "bench", ClassTable.from_names(["a", "b", "c"]))
    for side in (1000, 4000, 8000):
        path = root / f"img{side}.png"
        Image.new("RGB", (side, side), (90, 90, 90)).save(path, compress_level=1)
        project.add_image(path)
    project.save()
    for side in (1000, 4000, 8000):
        measure(project, f"img{side}", side)
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
