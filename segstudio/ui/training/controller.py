"""Training in the app: saves the masks, starts the child, feeds the dashboard, keeps the
runs history and the close guard. Widgets stay dumb; this is where the decisions are."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from segstudio.core.project import Project
from segstudio.core.runs import data_snapshot, write_outcome, write_snapshot
from segstudio.core.saving import SaveResult
from segstudio.engine.config import TrainConfig
from segstudio.ui.training.dashboard import Dashboard
from segstudio.ui.training.device_probe import DeviceProbe
from segstudio.ui.training.panel import TrainingPanel
from segstudio.ui.training.process import TrainingProcess
from segstudio.ui.training.recipe import resume_command, summary, train_command
from segstudio.ui.training.runs_view import RunsView

SaveAll = Callable[[], SaveResult]


class TrainingController(QObject):
    """One run at a time for the open project."""

    message = Signal(str)  # a short note for the status bar
    run_ended = Signal(dict)  # the final event

    def __init__(self, panel: TrainingPanel, dashboard: Dashboard, runs: RunsView,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.panel, self.dashboard, self.runs = panel, dashboard, runs
        self.project: Project | None = None
        self.save_all: SaveAll | None = None
        self.run_project: Path | None = None  # the project the current run trains on
        self.process = TrainingProcess(self)
        self.probe = DeviceProbe(self)
        self.ask: Callable[[str, str], bool] = self._ask_dialog  # replaceable in tests
        self._snapshot: dict[str, Any] = {}
        self.first_progress_at: float | None = None
        self._start_when_probed = False
        self.prewarm = True  # keep a warm child (torch imported) waiting for the next run
        self._data_timer = QTimer(self)
        self._data_timer.setSingleShot(True)
        self._data_timer.setInterval(300)
        self._data_timer.timeout.connect(self.refresh_data)
        panel.train_requested.connect(self.start)
        panel.stop_requested.connect(self.stop)
        runs.resume_requested.connect(self.resume)
        runs.message.connect(self.message)
        self.process.event_received.connect(self._on_process_event_received)
        self.process.finished.connect(self._on_process_finished)
        self.process.state_changed.connect(self._on_process_state_changed)
        self.probe.finished.connect(self._on_probe_finished)

    # -- project --------------------------------------------------------------------------
    def set_project(self, project: Project | None, save_all: SaveAll | None = None) -> None:
        if project is self.project:
            self.save_all = save_all
            return
        self.project = project
        self.save_all = save_all
        self.runs.set_project(project)
        self.refresh_data()

    def refresh_data_soon(self) -> None:
        """Labelled counts change as the user marks images done; recount shortly after."""
        self._data_timer.start()

    def refresh_data(self) -> None:
        self._snapshot = data_snapshot(self.project) if self.project is not None else {}
        self.panel.set_data(self._snapshot.get("counts") if self.project is not None else None)

    def start_probe(self) -> None:
        self.probe.start()

    def _on_probe_finished(self, report: object) -> None:
        self.panel.set_device(report, self.probe.facts.get("choices"))  # type: ignore[arg-type]
        if self._start_when_probed:
            self._start_when_probed = False
            self.start(self.panel.options())
        else:
            self._prewarm()

    def _prewarm(self) -> None:
        """Have a child import torch now, so that Train shows progress seconds sooner."""
        report = self.probe.report
        if self.prewarm and report is not None and report.ok and not self.process.is_running():
            self.process.prewarm()

    # -- runs -------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.process.is_running()

    def _prepare(self) -> bool:
        """Save dirty masks first: the run reads masks from disk."""
        if self.project is None:
            self.message.emit("Open a project to train.")
            return False
        if self.process.is_running():
            self.message.emit("A training run is already going; stop it first.")
            return False
        if self.save_all is not None and not self.save_all().saved and not self.ask(
                "Some masks were not saved",
                "Some masks could not be saved (see the status bar); the run would train without "
                "those edits. Train anyway?"):
            return False
        self.refresh_data()
        return True

    def start(self, options: TrainConfig | None = None) -> bool:
        if not self._prepare():
            return False
        assert self.project is not None
        if not self._snapshot.get("counts", {}).get("train"):
            self.message.emit("No labelled images to train on: mark some images done first.")
            return False
        if self.probe.report is None and not self.panel.advanced.isChecked():
            # The one-click recipe depends on the device: wait for the probe, then start.
            self._start_when_probed = True
            self.probe.start()
            self.dashboard.reset("Checking what this machine can train on; training starts right after.")
            return True
        options = options or self.panel.options()
        return self._launch(train_command(self.project.root, options),
                            f"Starting: {summary(options)}...")

    def resume(self, run_id: str, epochs: int | None = None) -> bool:
        """Continue a stopped run from its last checkpoint (optionally to `epochs` in all)."""
        if not self._prepare():
            return False
        assert self.project is not None
        device = self.panel.options().device
        return self._launch(resume_command(self.project.root, run_id, device=device, epochs=epochs),
                            f"Resuming run {run_id}...")

    def _launch(self, command: list[str], headline: str) -> bool:
        assert self.project is not None
        self.run_project = self.project.root
        self.first_progress_at = None
        self.dashboard.reset(headline)
        self.dashboard.set_running(True)
        self.runs.set_busy(True)
        self.process.start(command, workdir=self.project.root)
        self.message.emit("Training started; keep annotating: saved masks are used by the next run.")
        return True

    def stop(self) -> str:
        done = self.process.stop()
        if done == "stopping":
            self.message.emit("Stopping after this step; the checkpoint is kept. Press Stop again to kill.")
        elif done == "killed":
            self.message.emit("Training process killed.")
        return done

    # -- events -----------------------------------------------------------------------------
    def _on_process_event_received(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "run_started" and event.get("run_dir"):
            with contextlib.suppress(OSError):
                write_snapshot(Path(event["run_dir"]), self._snapshot, started=event)
            self.runs.running_id = Path(event["run_dir"]).name
            self.runs.refresh()
        elif kind == "progress" and self.first_progress_at is None:
            self.first_progress_at = time.monotonic()
        self.dashboard.handle_event(event)

    def _on_process_finished(self, final: dict[str, Any]) -> None:
        self.dashboard.set_running(False)
        self.runs.set_busy(False)
        self.runs.running_id = None
        run_dir = self.process.run_dir
        if run_dir:
            with contextlib.suppress(OSError):
                write_outcome(Path(run_dir), final)
        if final.get("event") == "error":
            checkpoint = self.process.last_checkpoint
            self.message.emit("Training failed: see the Training dock. Your annotations are untouched."
                              + (f" Last checkpoint: {checkpoint}" if checkpoint else ""))
        elif final.get("event") == "stopped":
            self.message.emit("Training stopped; the checkpoint is kept (Runs > Resume).")
        else:
            self.message.emit("Training finished: make its model active in Runs.")
        self.runs.refresh()
        if run_dir:
            self.runs.select_runs([Path(run_dir).name])
        self.refresh_data()
        self.run_ended.emit(final)
        self._prewarm()

    def _on_process_state_changed(self, state: str) -> None:
        self.panel.set_running(state)

    # -- closing ----------------------------------------------------------------------------
    def confirm_close(self, parent: QWidget | None = None) -> bool:
        """Closing the app during a run: ask whether to stop it. True: go on closing."""
        if not self.process.is_running():
            self.process.drop_warm()
            self.probe.cancel()
            return True
        if not self.ask("Training is running",
                        "A training run is still going. Stop it (its last checkpoint is kept, and it "
                        "can be resumed later) and quit?"):
            return False
        self.process.drop_warm()
        self.probe.cancel()
        self.process.stop()
        if not self.process.wait(15_000):
            self.process.kill()
            self.process.wait(5_000)
        return True

    def _ask_dialog(self, title: str, text: str) -> bool:
        parent = self.panel.window()
        answer = QMessageBox.question(parent, title, text,
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes
