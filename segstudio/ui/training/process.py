"""The training child process: a QProcess running `segstudio train ... --events jsonl`.

Its stdout is one JSON event per line (engine/events.py); lines are split as bytes arrive
and each parsed event is emitted on the UI thread. A line that is not an event (a stray
print, a torn write) becomes a warning, never an exception. Stderr is kept as a short tail
so that a worker that dies (killed, CUDA error, out of memory) can be explained.

Stop is graceful first (SIGTERM: the trainer finishes its step, saves a checkpoint and
reports `stopped`); asking again kills the process.

A remote child (`segstudio train --host` / `runs attach`, `remote` set) forwards stops to
the host, so a second Stop is a second SIGTERM (the host kills its trainer) rather than the
end of the local child. When it ends without a final event the run goes on on the host: the
final event is then `connection_lost` (never shown as a failure), with the run's id.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal

from segstudio.cli.remote_cmds import EXIT_LOST
from segstudio.core.events_schema import FINAL_EVENTS, ErrorEvent, Event, WarningEvent, event_time

STDERR_TAIL_LINES = 60
CONNECTION_LOST = "connection_lost"  # the app's own final event: a remote child ended, the run did not
_REMOTE_STARTED = re.compile(r"^run (\S+) started on (\S+);")  # train_on_host's line on stderr
MAX_LINE_BYTES = 4 * 2**20  # a "line" longer than this is garbage, not an event


def parse_event_line(line: bytes | str) -> Event:
    """One stdout line -> an event dict. Anything that is not a JSON object with an `event`
    field comes back as a `warning` event quoting the line, so the dashboard shows it."""
    text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
    text = text.strip()
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict) and isinstance(value.get("event"), str):
        return cast(Event, value)
    shown = text if len(text) <= 200 else text[:200] + "..."
    return WarningEvent(event="warning", time=event_time(), malformed=True,
                        message=f"unexpected output from the training process: {shown}")


class LineSplitter:
    """Bytes in, complete lines out; a partial last line waits for the rest."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[bytes]:
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        if len(self._pending) > MAX_LINE_BYTES:
            lines.append(self._pending)
            self._pending = b""
        return [line for line in lines if line.strip()]

    def flush(self) -> list[bytes]:
        rest, self._pending = self._pending, b""
        return [rest] if rest.strip() else []


class TrainingProcess(QObject):
    """One training child at a time. Signals arrive on the UI thread."""

    event_received = Signal(dict)
    started = Signal()
    finished = Signal(dict)  # the final event (synthesised as `error` when the worker died)
    state_changed = Signal(str)  # idle / running / stopping / killing

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._process: QProcess | None = None
        self._warm: QProcess | None = None
        self._stdout = LineSplitter()
        self._stderr = LineSplitter()
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self.final_event: dict[str, Any] | None = None
        self.last_checkpoint: str | None = None
        self.run_dir: str | None = None
        self.command: list[str] = []
        self._state = "idle"
        self.nice = 10  # the UI process keeps priority on a shared CPU
        self.remote = False  # the child follows a run on a host (set before start)
        self.remote_run_id: str | None = None  # that run, once known (launch line or run_started)
        self.lost_message = ""  # the child's own words when the connection went

    # -- state ------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    def is_running(self) -> bool:
        return self._process is not None and self._process.state() != QProcess.ProcessState.NotRunning

    def pid(self) -> int | None:
        return int(self._process.processId()) if self.is_running() and self._process is not None else None

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.state_changed.emit(state)

    # -- start / stop -------------------------------------------------------------------------
    def _new_process(self, env: dict[str, str] | None) -> QProcess:
        process = QProcess(self)
        environment = QProcessEnvironment.systemEnvironment()
        environment.insert("PYTHONUNBUFFERED", "1")
        environment.insert("PYTHONIOENCODING", "utf-8")
        # The child runs this checkout of segstudio even when it is not installed.
        package_root = str(Path(__file__).resolve().parents[3])
        existing = environment.value("PYTHONPATH", "")
        environment.insert("PYTHONPATH", package_root + (os.pathsep + existing if existing else ""))
        for key, value in (env or {}).items():
            environment.insert(key, value)
        process.setProcessEnvironment(environment)
        return process

    def _connect(self, process: QProcess) -> None:
        process.readyReadStandardOutput.connect(self._on_process_stdout)
        process.readyReadStandardError.connect(self._on_process_stderr)
        process.finished.connect(self._on_process_finished)
        process.errorOccurred.connect(self._on_process_error)

    def prewarm(self, env: dict[str, str] | None = None) -> None:
        """Start a child that imports torch and the engine now and waits for a `train`
        command (warm.py), so that Train shows progress seconds sooner."""
        if self._warm is not None or self.is_running():
            return
        warm = self._new_process(env)
        warm.finished.connect(self._on_warm_finished)
        warm.started.connect(self._on_warm_started)
        self._warm = warm
        warm.start(sys.executable, ["-m", "segstudio.ui.training.warm"])

    def drop_warm(self) -> None:
        warm, self._warm = self._warm, None
        if warm is not None:
            warm.finished.disconnect(self._on_warm_finished)
            warm.closeWriteChannel()  # empty stdin: the warm child exits by itself
            if not warm.waitForFinished(2000):
                warm.kill()
                warm.waitForFinished(2000)
            warm.deleteLater()

    def _on_warm_started(self) -> None:
        if self._warm is not None:
            self._lower_priority(self._warm)

    def is_warm(self) -> bool:
        return self._warm is not None and self._warm.state() == QProcess.ProcessState.Running

    def _on_warm_finished(self, *_: object) -> None:
        warm, self._warm = self._warm, None  # it died while waiting: the next run starts cold
        if warm is not None:
            warm.deleteLater()

    def start(self, command: Sequence[str], workdir: Path | None = None,
              env: dict[str, str] | None = None) -> None:
        """Run `command`. A `python -m segstudio ...` command goes to the warm child when one
        is waiting (same CLI entry point and arguments), else to a new process."""
        if self.is_running():
            raise RuntimeError("a training run is already going")
        self.command = list(command)
        self.final_event = None
        self.last_checkpoint = None
        self.run_dir = None
        self.lost_message = ""
        self.remote_run_id = None  # an attach knows it already and sets it after start()
        self.stderr_tail.clear()
        self._stdout, self._stderr = LineSplitter(), LineSplitter()
        cli = self.command[1:3] == ["-m", "segstudio"] and self.command[0] == sys.executable
        if cli and not env and self.is_warm():
            process = self._warm
            assert process is not None
            self._warm = None
            process.finished.disconnect(self._on_warm_finished)
            self._connect(process)
            self._process = process
            self._set_state("running")
            request = {"argv": self.command[3:], "cwd": str(workdir) if workdir is not None else ""}
            process.write((json.dumps(request) + "\n").encode("utf-8"))
            process.closeWriteChannel()
            self.started.emit()
            return
        self.drop_warm()  # one child at a time
        process = self._new_process(env)
        if workdir is not None:
            process.setWorkingDirectory(str(workdir))
        self._connect(process)
        process.started.connect(self._on_process_started)
        self._process = process
        self._set_state("running")
        process.start(self.command[0], self.command[1:])

    def stop(self) -> str:
        """First call: ask for a graceful stop; a second call kills. Returns what was done."""
        if not self.is_running() or self._process is None:
            return "idle"
        if self._state == "running":
            self._set_state("stopping")
            if sys.platform == "win32" and not self.remote:
                # QProcess.terminate posts WM_CLOSE, which a console child ignores: killing is
                # the only stop there; the last periodic checkpoint is kept.
                self._process.kill()
                self._set_state("killing")
                return "killed"
            self._process.terminate()
            return "stopping"
        if self._state == "stopping" and self.remote:
            self._set_state("killing")
            self._process.terminate()  # the child's second signal: it kills the trainer on the host
            return "killed"
        self._set_state("killing")
        self._process.kill()
        return "killed"

    def kill(self) -> None:
        if self.is_running() and self._process is not None:
            self._set_state("killing")
            self._process.kill()

    def wait(self, msecs: int) -> bool:
        return self._process is None or self._process.waitForFinished(msecs)

    # -- process signals ----------------------------------------------------------------------
    def _on_process_started(self) -> None:
        if self._process is not None:
            self._lower_priority(self._process)
        self.started.emit()

    def _lower_priority(self, process: QProcess) -> None:
        pid = int(process.processId())
        if pid and self.nice and hasattr(os, "setpriority"):
            try:
                os.setpriority(os.PRIO_PROCESS, pid, self.nice)
            except OSError:  # not permitted here: train at normal priority
                pass

    def _on_process_stdout(self) -> None:
        if self._process is None:
            return
        for line in self._stdout.feed(bytes(self._process.readAllStandardOutput().data())):
            self._dispatch(parse_event_line(line))

    def _on_process_stderr(self) -> None:
        if self._process is None:
            return
        for line in self._stderr.feed(bytes(self._process.readAllStandardError().data())):
            self._keep_stderr(line)

    def _keep_stderr(self, line: bytes) -> None:
        text = line.decode("utf-8", errors="replace").rstrip()
        self.stderr_tail.append(text)
        started = _REMOTE_STARTED.match(text) if self.remote else None
        if started:
            self.remote_run_id = started.group(1)

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "run_started":
            self.run_dir = event.get("run_dir")
            if self.remote and self.run_dir and not self.remote_run_id:
                self.remote_run_id = Path(str(self.run_dir)).name
            # A resumed run already has the checkpoint it started from.
            kept = Path(str(self.run_dir)) / "checkpoints" / "last.safetensors"
            if self.run_dir and kept.is_file():
                self.last_checkpoint = str(kept)
        elif kind == "checkpoint" and event.get("kind") == "last":
            self.last_checkpoint = event.get("path")
        elif kind == "stopped":
            self.last_checkpoint = event.get("checkpoint") or self.last_checkpoint
        elif kind == "warning" and self.remote and "lost the connection" in str(event.get("message")):
            self.lost_message = str(event.get("message"))
        if kind in FINAL_EVENTS and self.final_event is None:
            self.final_event = event
        self.event_received.emit(event)

    def _on_process_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._finish(dict(ErrorEvent(event="error", time=event_time(),
                                         message=f"could not start the training process "
                                                 f"({self.command[0]}): {self._process_error_text()}")))

    def _process_error_text(self) -> str:
        return self._process.errorString() if self._process is not None else "unknown error"

    def _on_process_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        if self._process is None:
            return
        self._on_process_stdout()
        self._on_process_stderr()
        for line in self._stdout.flush():
            self._dispatch(parse_event_line(line))
        for line in self._stderr.flush():
            self._keep_stderr(line)
        if self.final_event is not None:
            final = dict(self.final_event)
        elif self.remote and self.remote_run_id:
            # Killed, crashed or out of retries (EXIT_LOST): only the link ended; the run goes on.
            final = {"event": CONNECTION_LOST, "time": event_time(), "run_id": self.remote_run_id,
                     "message": self.lost_message or self._death_message(exit_code, exit_status),
                     "lost": exit_code == EXIT_LOST}
        else:
            final = dict(ErrorEvent(event="error", time=event_time(), died=True,
                                    message=self._death_message(exit_code, exit_status)))
            self.event_received.emit(final)
        final["exit_code"] = exit_code
        self._finish(final)

    def _death_message(self, exit_code: int, exit_status: QProcess.ExitStatus) -> str:
        crashed = exit_status == QProcess.ExitStatus.CrashExit
        said = [line[len("error: "):] for line in self.stderr_tail if line.startswith("error: ")]
        if self.remote and said and not crashed:  # the host check or the launch refused: its own words
            return said[-1] + "\nYour annotations are not affected."
        if self._state == "killing":
            what = "The training process was killed on request."
        elif crashed:
            what = "The training process died (killed by the system, perhaps out of memory, or a crash)."
        else:
            what = f"The training process ended with exit code {exit_code} without finishing its run."
        tail = [line for line in self.stderr_tail if line.strip()][-3:]
        detail = ("\nLast output:\n" + "\n".join(tail)) if tail else ""
        checkpoint = (f"\nThe last checkpoint is kept: {self.last_checkpoint} (Resume continues from it)."
                      if self.last_checkpoint else "\nNo checkpoint had been written yet.")
        return what + checkpoint + detail + "\nYour annotations are not affected."

    def _finish(self, final: dict[str, Any]) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.deleteLater()
        self.final_event = final
        self._set_state("idle")
        self.finished.emit(final)
