"""This computer's side of a run on a host: launch it detached, stop it, bring its results home.

A remote run is recorded in PROJECT/runs/<run-id>/remote.json (host, mirror, launch folder),
beside the events received so far (events.jsonl, one line per event, exactly as the host
wrote them), so any later process (`segstudio runs attach`, the app after a restart) carries
on from the last event it has. When the run ends, its folder and model come back into
PROJECT/runs and PROJECT/models like a local run's (results.py).
"""

from __future__ import annotations

import json
import re
import shlex
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from segstudio.core.atomic import atomic_write_json
from segstudio.core.errors import TrainingError
from segstudio.core.project import Project
from segstudio.remote.hosts import HostConfig, HostRegistry
from segstudio.remote.probe import (
    HostReport,
    probe,
    require_device,
    require_disk,
    require_segstudio,
)
from segstudio.remote.ssh import Ssh, python_command
from segstudio.remote.sync import SyncResult, agent_error, plan_mirror, sync_project

RECORD_NAME = "remote.json"
EVENTS_NAME = "events.jsonl"


@dataclass(frozen=True)
class RemoteRun:
    """A run on a host, as this computer knows it."""

    run_id: str
    host: str
    mirror: str  # the mirror on the host, absolute
    project_root: Path  # the project here
    started: float
    gpus: int = 1

    @property
    def launch(self) -> str:
        return f"{self.mirror}/remote/{self.run_id}"

    @property
    def local_dir(self) -> Path:
        return self.project_root / "runs" / self.run_id

    @property
    def events_path(self) -> Path:
        return self.local_dir / EVENTS_NAME

    def to_dict(self) -> dict[str, Any]:
        return dict(asdict(self), project_root=None)

    def local_path(self, value: str) -> str:
        """A host path under the mirror as the same path under the project here."""
        if value == self.mirror or value.startswith(self.mirror + "/"):
            return str(self.project_root) + value[len(self.mirror):]
        return value

    def localize(self, event: Any) -> Any:
        """`event` with every host path under the mirror turned into this project's path."""
        if isinstance(event, str):
            return self.local_path(event)
        if isinstance(event, dict):
            return {k: self.localize(v) for k, v in event.items()}
        if isinstance(event, list):
            return [self.localize(v) for v in event]
        return event


def save_record(run: RemoteRun) -> None:
    run.local_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run.local_dir / RECORD_NAME, run.to_dict())


def load_record(project_root: Path, run_id: str) -> RemoteRun:
    path = Path(project_root) / "runs" / run_id / RECORD_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TrainingError(f"run {run_id} of {project_root} did not run on a host (no {path}); "
                            "give the id of a remote run from PROJECT/runs") from exc
    except (OSError, ValueError) as exc:
        raise TrainingError(f"cannot read {path} ({exc})") from exc
    return RemoteRun(run_id=str(data["run_id"]), host=str(data["host"]), mirror=str(data["mirror"]),
                     project_root=Path(project_root), started=float(data.get("started", 0.0)),
                     gpus=int(data.get("gpus", 1)))


def new_run_id(project_root: Path, name: str | None, host: str) -> str:
    """A run folder name unused here: the given name, or time + host."""
    slug = re.sub(r"[^A-Za-z0-9._+-]+", "-", host).strip("-.") or "host"
    base = re.sub(r"[^A-Za-z0-9._+-]+", "-", name or f"{time.strftime('%Y%m%d-%H%M%S')}-on-{slug}").strip("-.")
    candidate, n = base or "run", 2
    while (Path(project_root) / "runs" / candidate).exists():
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def trainer_argv(mirror: str, run_id: str, train_args: list[str], gpus: int) -> list[str]:
    """The host command: `segstudio train MIRROR --events jsonl ...`, under torchrun for gpus > 1."""
    train = ["segstudio", "train", mirror, "--events", "jsonl", *train_args, "--run-name", run_id]
    if gpus > 1:
        return ["python", "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}", "-m", *train]
    return ["python", "-m", *train]


@dataclass(frozen=True)
class Launch:
    run: RemoteRun
    report: HostReport
    sync: SyncResult


def launch_run(project: Project, host: HostConfig, train_args: list[str], *, device: str = "auto",
               gpus: int = 1, run_name: str | None = None, ssh: Ssh | None = None) -> Launch:
    """Check the host, sync the mirror, start the trainer there detached; returns at once."""
    ssh = ssh or Ssh(host.name)
    report = probe(host, ssh)
    require_segstudio(report)
    require_device(report, device, gpus)
    plan = plan_mirror(project, host)
    require_disk(report, host, plan.total_bytes)
    synced = sync_project(project, host, ssh, plan)
    mirror = synced.mirror
    if mirror.startswith("~/"):
        mirror = report.home.rstrip("/") + mirror[1:]
    run_id = new_run_id(project.root, run_name, host.name)
    argv = trainer_argv(mirror, run_id, train_args, gpus)
    agent = python_command(host.interpreter, ["-m", "segstudio.remote.agent", "start", mirror, run_id, "--", *argv])
    result = ssh.run(agent, check=False)
    if result.code != 0:
        raise agent_error(host.name, result.stderr, "starting the run")
    run = RemoteRun(run_id=run_id, host=host.name, mirror=mirror, project_root=project.root,
                    started=time.time(), gpus=gpus)
    save_record(run)
    run.events_path.touch()
    return Launch(run, report, synced)


def host_of(run: RemoteRun) -> HostConfig:
    """The host's settings from the registry (a host removed since: its defaults)."""
    return HostRegistry().find(run.host) or HostConfig(run.host)


def stop_run(run: RemoteRun, kill: bool = False, ssh: Ssh | None = None) -> str:
    """Ask the trainer to finish its step and save (SIGTERM); a second stop, or `kill`, kills it."""
    host = host_of(run)
    ssh = ssh or Ssh(host.name)
    args = ["-m", "segstudio.remote.agent", "stop", run.launch] + (["--kill"] if kill else [])
    result = ssh.run(python_command(host.interpreter, args), check=False)
    if result.code != 0:
        raise agent_error(run.host, result.stderr, "stopping the run")
    return str(json.loads(result.stdout.strip().splitlines()[-1])["action"])


def attach_command(run: RemoteRun) -> str:
    """The command that re-attaches to `run`, for messages."""
    return shlex.join(["segstudio", "runs", "attach", str(run.project_root), run.run_id])
