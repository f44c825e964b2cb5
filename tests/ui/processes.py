"""Child processes for crash tests: run one until it reports a state, then kill it there."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest


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
