"""PySide6 6.12.0 on Python 3.11 steals a reference to None on every void call and aborts the
app after a few hundred repaints; pyproject.toml keeps that release out. This guards the pin."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys
    {guard}
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
    image = QImage(8, 8, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    for _ in range(30000):
        painter.fillRect(QRectF(0, 0, 1, 1), 0)  # a void method
    painter.end()
    print("ok")
    """
)


def run(guard: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run(
        [sys.executable, "-c", SCRIPT.format(guard=guard)],
        capture_output=True, text=True, env=env, timeout=120,
    )


def test_installed_pyside_survives_many_void_calls() -> None:
    result = run("")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"
