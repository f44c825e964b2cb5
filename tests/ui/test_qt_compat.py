"""PySide6 6.12 on Python 3.11 steals references to None; segstudio.ui must survive that."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

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


def test_importing_ui_keeps_many_void_qt_calls_from_crashing() -> None:
    result = run("import segstudio.ui")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal on Python 3.12+")
def test_singletons_get_headroom_on_311() -> None:
    import segstudio.ui  # noqa: F401

    assert sys.getrefcount(None) > 2**39
    assert sys.getrefcount(True) > 2**39
