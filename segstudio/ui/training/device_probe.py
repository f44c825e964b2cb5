"""Runs the device probe (probe.py) as a child process and reports a DeviceReport.

Importing torch takes seconds; doing it in a child keeps the window responsive at startup
and keeps torch out of the UI process altogether (the ui reaches the engine only through
child processes). The answer is cached for the life of the app: GPUs do not come and go.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from PySide6.QtCore import QObject, QProcess, Signal

from segstudio.ui.training.probe import DeviceReport, explain

PROBE_TIMEOUT_MS = 120_000


class DeviceProbe(QObject):
    """`start()` once; `finished(DeviceReport)` follows; `report` and `facts` keep the answer."""

    finished = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.report: DeviceReport | None = None
        self.facts: dict[str, Any] = {}
        self._process: QProcess | None = None

    def start(self) -> None:
        if self._process is not None or self.report is not None:
            return
        process = QProcess(self)
        process.finished.connect(self._on_process_finished)
        process.errorOccurred.connect(self._on_process_error)
        self._process = process
        process.start(sys.executable, ["-m", "segstudio.ui.training.probe"])

    def cancel(self) -> None:
        """The app is closing: end a probe still importing torch."""
        process, self._process = self._process, None
        if process is not None:
            process.finished.disconnect(self._on_process_finished)
            process.kill()
            process.waitForFinished(2000)
            process.deleteLater()

    def is_running(self) -> bool:
        return self._process is not None

    def wait(self, msecs: int = PROBE_TIMEOUT_MS) -> bool:
        if self._process is not None:
            self._process.waitForFinished(msecs)
        return self.report is not None

    def _on_process_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._done({"torch_error": f"cannot start {sys.executable}"})

    def _on_process_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        if self._process is None:
            return
        out = bytes(self._process.readAllStandardOutput().data()).decode("utf-8", errors="replace")
        err = bytes(self._process.readAllStandardError().data()).decode("utf-8", errors="replace")
        facts: dict[str, Any] = {}
        for line in reversed(out.splitlines()):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                facts = value
                break
        if not facts:
            last = [line for line in err.splitlines() if line.strip()][-1:] or [f"exit code {exit_code}"]
            facts = {"torch_error": last[0]}
        self._done(facts)

    def _done(self, facts: dict[str, Any]) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.deleteLater()
        self.facts = facts
        self.report = explain(facts)
        self.finished.emit(self.report)
