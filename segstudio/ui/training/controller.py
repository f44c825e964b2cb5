"""Training in the app: saves the masks, starts the child, feeds the dashboard, keeps the
runs history and the close guard. Widgets stay dumb; this is where the decisions are.

On a host ("Run on"), the child is `segstudio train PROJECT --host HOST --events jsonl` and
the dashboard fills as for a local run; when the child ends before the run does (connection
lost, app closed) the run goes on there and `runs attach --replay` follows it again."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from segstudio.core.project import Project
from segstudio.core.runs import data_snapshot, read_run, write_outcome, write_snapshot
from segstudio.core.saving import SaveResult
from segstudio.engine.config import TrainConfig
from segstudio.remote.hosts import HostRegistry
from segstudio.remote.ssh import RemoteError
from segstudio.remote.sync import SyncResult
from segstudio.ui.training.dashboard import Dashboard
from segstudio.ui.training.device_probe import DeviceProbe
from segstudio.ui.training.panel import TrainingPanel
from segstudio.ui.training.probe import DeviceReport
from segstudio.ui.training.process import CONNECTION_LOST, TrainingProcess
from segstudio.ui.training.recipe import attach_command, resume_command, summary, train_command
from segstudio.ui.training.remote_link import HostProbes, MirrorSync
from segstudio.ui.training.runs_view import RunsView, run_host

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
        self.host_probes = HostProbes(self)
        self.mirror_sync = MirrorSync(self)
        self.run_host: str | None = None  # the host of the current run (None: this computer)
        self.detached_run: str | None = None  # a run going on on a host, offered for re-attach
        self._attaching = False
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
        panel.run_on_changed.connect(self._on_panel_run_on_changed)
        panel.hosts_wanted.connect(self.refresh_hosts)
        panel.reattach_requested.connect(self._on_panel_reattach_requested)
        runs.resume_requested.connect(self.resume)
        runs.reattach_requested.connect(self.reattach)
        runs.message.connect(self.message)
        self.process.event_received.connect(self._on_process_event_received)
        self.process.finished.connect(self._on_process_finished)
        self.process.state_changed.connect(self._on_process_state_changed)
        self.probe.finished.connect(self._on_probe_finished)
        self.host_probes.finished.connect(self._on_host_probes_finished)
        self.mirror_sync.synced.connect(self._on_mirror_sync_synced)
        self.mirror_sync.failed.connect(self._on_mirror_sync_failed)
        self.refresh_hosts()

    # -- project --------------------------------------------------------------------------
    def set_project(self, project: Project | None, save_all: SaveAll | None = None) -> None:
        if project is self.project:
            self.save_all = save_all
            return
        self.project = project
        self.save_all = save_all
        self.runs.set_project(project)
        self.refresh_data()
        self._offer_detached()

    def refresh_data_soon(self) -> None:
        """Labelled counts change as the user marks images done; recount shortly after. During
        a live remote run, the saved masks also go to the host's mirror (debounced)."""
        self._data_timer.start()
        if self.process.is_running():
            self.mirror_sync.schedule()

    def refresh_data(self) -> None:
        self._snapshot = data_snapshot(self.project) if self.project is not None else {}
        self.panel.set_data(self._snapshot.get("counts") if self.project is not None else None)

    def start_probe(self) -> None:
        host = self.panel.host()
        if host:
            self.host_probes.start(host)
        else:
            self.probe.start()

    def _device_report(self) -> DeviceReport | None:
        """What the chosen place trains on: this machine's probe or the host's."""
        host = self.panel.host()
        return self.host_probes.reports.get(host) if host else self.probe.report

    def _on_probe_finished(self, report: object) -> None:
        if self.panel.host():
            return  # a host is chosen; this computer's answer is kept for later
        self.panel.set_device(report, self.probe.facts.get("choices"))  # type: ignore[arg-type]
        self._probed()

    def _on_host_probes_finished(self, host: str, report: DeviceReport) -> None:
        if self.panel.host() != host:
            return
        self.panel.set_device(report)
        self._probed()

    def _probed(self) -> None:
        if self._start_when_probed:
            self._start_when_probed = False
            self.start(self.panel.options())
        else:
            self._prewarm()

    # -- hosts ------------------------------------------------------------------------------
    def refresh_hosts(self) -> None:
        try:
            names = [host.name for host in HostRegistry().hosts()]
        except RemoteError as exc:
            names = []
            self.message.emit(str(exc))
        self.panel.set_hosts(names)

    def _on_panel_run_on_changed(self, host: str) -> None:
        self._start_when_probed = False
        report = self._device_report()
        if report is not None:
            self.panel.set_device(report)
        elif host:
            self.host_probes.start(host)
        elif self.probe.report is None:
            self.probe.start()

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
        host = self.panel.host()
        if self._device_report() is None and not self.panel.advanced.isChecked():
            # The one-click recipe depends on the device: wait for the probe, then start.
            self._start_when_probed = True
            self.start_probe()
            self.dashboard.reset(f"Asking host {host} what it can train on; training starts right after."
                                 if host else "Checking what this machine can train on; training starts right after.")
            return True
        options = options or self.panel.options()
        if not host:
            return self._launch(train_command(self.project.root, options), f"Starting: {summary(options)}...")
        started = self._launch(train_command(self.project.root, options, host=host),
                               f"Starting on {host} (sending the labelled images first): {summary(options)}...",
                               host=host)
        if started and options.refresh_data:
            self.mirror_sync.set_target(self.project.root, host)
        return started

    def reattach(self, run_id: str) -> bool:
        """Follow a run on a host again: its events so far (replayed), then the new ones."""
        if self.project is None or self.process.is_running():
            self.message.emit("A training run is already being followed; stop it first."
                              if self.project is not None else "Open a project first.")
            return False
        host = run_host(self.project.root / "runs" / run_id)
        if host is None:
            self.message.emit(f"Run {run_id} did not run on a host; nothing to re-attach.")
            return False
        started = self._launch(attach_command(self.project.root, run_id),
                               f"Re-attaching to run {run_id} on {host}...", host=host, attach=run_id)
        live = bool(read_run(self.project.root / "runs" / run_id).config.get("refresh_data"))
        if started and live:
            self.mirror_sync.set_target(self.project.root, host)
        return started

    def _on_panel_reattach_requested(self) -> None:
        if self.detached_run:
            self.reattach(self.detached_run)

    def _offer_detached(self) -> None:
        """Offer to follow the newest run going on on a host that nothing here follows."""
        detached = [] if self.process.is_running() else self.runs.detached_runs()
        self.detached_run = detached[0].run_id if detached else None
        if not detached:
            self.panel.show_detached(None)
            return
        host = run_host(detached[0].run_dir)
        self.panel.show_detached(f"Run {detached[0].run_id} on {host} goes on there (this app is not "
                                 "following it). Re-attach to see every epoch and get its model.")

    def resume(self, run_id: str, epochs: int | None = None) -> bool:
        """Continue a stopped run from its last checkpoint (optionally to `epochs` in all)."""
        if not self._prepare():
            return False
        assert self.project is not None
        host = run_host(self.project.root / "runs" / run_id)
        if host is not None:  # its checkpoint is on the host: it continues there
            return self._launch(resume_command(self.project.root, run_id, epochs=epochs, host=host),
                                f"Resuming run {run_id} on {host}...", host=host)
        device = self.panel.options().device
        return self._launch(resume_command(self.project.root, run_id, device=device, epochs=epochs),
                            f"Resuming run {run_id}...")

    def _launch(self, command: list[str], headline: str, host: str | None = None,
                attach: str | None = None) -> bool:
        assert self.project is not None
        self.run_project = self.project.root
        self.first_progress_at = None
        self.run_host = host
        self._attaching = attach is not None
        self.mirror_sync.set_target(None, None)
        self.panel.show_detached(None)
        self.dashboard.reset(headline)
        self.dashboard.set_running(True)
        self.runs.set_busy(True)
        self.process.remote = host is not None
        self.process.start(command, workdir=self.project.root)
        if attach is not None:
            self.process.remote_run_id = attach
            self.runs.running_id = attach
            self.runs.refresh()
        self.message.emit("Training started; keep annotating: saved masks are used by the next run."
                          if attach is None else f"Following run {attach} on {host} again.")
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
            if not self._attaching:  # a replayed start: the snapshot was taken when it began
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
        self.mirror_sync.set_target(None, None)
        if final.get("event") == CONNECTION_LOST:
            self._connection_lost(final)
            return
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
        self._offer_detached()
        self.run_ended.emit(final)
        self._prewarm()

    def _connection_lost(self, final: dict[str, Any]) -> None:
        """The child ended, the run did not: say so and offer to follow it again."""
        host, run_id = self.run_host or "the host", str(final.get("run_id"))
        text = f"Connection to {host} lost; the run goes on there."
        self.dashboard.add_message("warning", str(final.get("message") or text))
        self.dashboard.headline.setText(f"<b>{text}</b> Re-attach to follow run {run_id} again.")
        self.runs.refresh()
        self.detached_run = run_id
        self.panel.show_detached(f"{text} Re-attach to follow run {run_id} again (nothing is lost).")
        self.message.emit(text)
        self.run_ended.emit(final)
        self._prewarm()

    def _on_mirror_sync_synced(self, result: SyncResult) -> None:
        if result.files_sent:
            self.message.emit(f"Saved masks sent to {self.run_host}: {result.summary(self.run_host or '')}; "
                              "the run uses them from its next epoch.")

    def _on_mirror_sync_failed(self, text: str) -> None:
        self.dashboard.add_message("warning", f"Could not send the saved masks to the host: {text}")

    def _on_process_state_changed(self, state: str) -> None:
        self.panel.set_running(state)

    # -- closing ----------------------------------------------------------------------------
    def confirm_close(self, parent: QWidget | None = None) -> bool:
        """Closing the app during a run: ask whether to stop it. True: go on closing."""
        if not self.process.is_running():
            self.process.drop_warm()
            self.probe.cancel()
            return True
        if self.process.remote:  # the run lives on the host: only this side's link ends
            self.process.drop_warm()
            self.probe.cancel()
            self.process.kill()
            self.process.wait(5_000)
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
