"""Child processes for crash tests: run one until it reports a state, then kill it there."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

# The start of a driver script: the real window in a child process, with its settings in
# argv[3], the project argv[1] open (a crash test adds what it does, then prints a marker).
WINDOW_DRIVER = """
import sys
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, QTimer

QSettings.setDefaultFormat(QSettings.Format.IniFormat)
QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, sys.argv[3])

from segstudio.core.recovery import RecoveryJournal
from segstudio.core.region import Region
from segstudio.ui.app import create_app
from segstudio.ui.main_window import MainWindow

app = create_app(["crash-driver"])
window = MainWindow()
window.show()
assert window.open_project(Path(sys.argv[1]))
workspace = window.workspace
"""


def run_until_then_kill(command: list[str], marker: str, timeout_s: float = 60, env: dict | None = None) -> None:
    """Start `command`, wait for a line holding `marker` on its output, then SIGKILL it (a
    crash at that moment); fails the test if it ends early or never says it."""
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + timeout_s
        line = ""
        while marker not in line:
            assert time.monotonic() < deadline, f"the child never printed {marker}"
            line = child.stdout.readline()  # type: ignore[union-attr]
            if not line and child.poll() is not None:
                pytest.fail(f"the child exited early: {child.stderr.read()}")  # type: ignore[union-attr]
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
