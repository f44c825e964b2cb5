"""The app's side of training on a host: what the host can train on, and the live mirror.

`HostProbes` asks a host what it offers (`segstudio remote check`'s probe, one ssh round trip
on a pool thread through ui/jobs) and turns the answer into the DeviceReport the panel
shows for this computer. `MirrorSync` sends masks saved during a remote run to the host's
mirror, debounced and in the background, so a run started with --refresh-data picks them up
at its next epoch. Both go through segstudio.remote (no Qt there), as the command line does.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from segstudio.remote.hosts import HostConfig, HostRegistry
from segstudio.remote.probe import HostReport, probe
from segstudio.remote.sync import SyncResult
from segstudio.ui.jobs import Job, error_text, run_in_background
from segstudio.ui.training.probe import DeviceReport

SYNC_DEBOUNCE_MS = 1500  # a burst of saves (a few strokes, then Done) travels as one sync


def host_device_report(report: HostReport) -> DeviceReport:
    """The host's first GPU (or its CPU, saying why) as the panel's device line."""
    if not report.same_version:
        found = report.segstudio if report.configured_python and report.segstudio else "not installed"
        return DeviceReport("cpu", f"host {report.host}", ok=False,
                            reason=f"segstudio on host {report.host}: {found}, this computer has another "
                                   f"version or none there.",
                            advice=f"Run 'segstudio remote setup {report.host}' to install this version there.")
    disk = f"; {report.disk_free / 1e9:.0f} GB free there"
    if report.gpus:
        name, memory_mb = report.gpus[0]
        more = f" (+{len(report.gpus) - 1} more)" if len(report.gpus) > 1 else ""
        return DeviceReport("cuda", f"{name}{more} on {report.host}", float(memory_mb),
                            torch_version=report.torch or "", advice=disk.lstrip("; "))
    return DeviceReport("cpu", f"CPU of {report.host}", torch_version=report.torch or "",
                        reason=f"Host {report.host} has no GPU that torch can use: a run there uses its CPU.",
                        advice="Install a CUDA build of torch in the host's venv, or train on this computer"
                               + disk + ".")


def unreachable_report(host: str, message: str) -> DeviceReport:
    return DeviceReport("cpu", f"host {host}", ok=False, reason=message,
                        advice="Fix the connection, then pick the host again to re-check it.")


class HostProbes(QObject):
    """One probe per host at a time; answers kept for the life of the app (re-probe on demand)."""

    finished = Signal(str, object)  # host, DeviceReport

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.reports: dict[str, DeviceReport] = {}
        self.host_reports: dict[str, HostReport] = {}
        self._jobs: dict[str, Job[HostReport]] = {}

    def start(self, name: str, again: bool = False) -> None:
        if name in self._jobs or (name in self.reports and not again):
            return
        config = HostRegistry().find(name) or HostConfig(name)
        self._jobs[name] = run_in_background(
            lambda _job: probe(config), lambda report: self._on_job_done(name, report),
            lambda exc: self._on_job_failed(name, exc), owner=self)

    def is_running(self, name: str) -> bool:
        return name in self._jobs

    def _on_job_done(self, name: str, report: HostReport) -> None:
        self._jobs.pop(name, None)
        self.host_reports[name] = report
        self.reports[name] = host_device_report(report)
        self.finished.emit(name, self.reports[name])

    def _on_job_failed(self, name: str, exc: BaseException) -> None:
        self._jobs.pop(name, None)
        self.reports[name] = unreachable_report(name, error_text(exc))
        self.finished.emit(name, self.reports[name])


def _sync(project_root: Path, host_name: str) -> SyncResult:
    from segstudio.core.project import Project
    from segstudio.remote.sync import sync_project

    host = HostRegistry().find(host_name) or HostConfig(host_name)
    # No deletions while the run reads the mirror: an image unlabelled meanwhile leaves the
    # manifest (so the next epoch drops it) but its file stays until the next run's sync.
    return sync_project(Project.open(project_root), host, prune=False)


class MirrorSync(QObject):
    """`schedule()` after each save; one sync runs at a time, a save during it queues one more."""

    synced = Signal(object)  # SyncResult
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.target: tuple[Path, str] | None = None  # project root, host
        self.results: list[SyncResult] = []
        self._job: Job[SyncResult] | None = None
        self._again = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SYNC_DEBOUNCE_MS)
        self._timer.timeout.connect(self._on_timer_timeout)

    def set_target(self, project_root: Path | None, host: str | None) -> None:
        """Where saves go (None: nowhere; a pending sync is dropped, one in flight finishes)."""
        self.target = (Path(project_root), host) if project_root is not None and host else None
        if self.target is None:
            self._timer.stop()
            self._again = False

    def schedule(self) -> None:
        if self.target is not None:
            self._timer.start()

    def is_busy(self) -> bool:
        return self._job is not None or self._timer.isActive()

    def _on_timer_timeout(self) -> None:
        if self.target is None:
            return
        if self._job is not None:
            self._again = True
            return
        root, host = self.target
        self._job = run_in_background(lambda _job: _sync(root, host), self._on_job_done, self._on_job_failed,
                                      owner=self)

    def _on_job_done(self, result: SyncResult) -> None:
        self._job = None
        self.results.append(result)
        self.synced.emit(result)
        self._follow_up()

    def _on_job_failed(self, exc: BaseException) -> None:
        self._job = None
        self.failed.emit(error_text(exc))
        self._follow_up()

    def _follow_up(self) -> None:
        if self._again:
            self._again = False
            self._on_timer_timeout()
