"""This computer's side of a run on a host: launch it detached, stop it, bring its results home.

A remote run is recorded in PROJECT/runs/<run-id>/remote.json (host, mirror, launch folder),
beside the events received so far (events.jsonl, one line per event, exactly as the host
wrote them), so any later process (`segstudio runs attach`, the app after a restart) carries
on from the last event it has. When the run ends, its folder and model come back into
PROJECT/runs and PROJECT/models like a local run's (results.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from segstudio.core.atomic import atomic_write_json
from segstudio.core.errors import TrainingError
from segstudio.core.project import Project
from segstudio.core.runs import OUTCOME_NAME
from segstudio.remote.hosts import HostConfig, HostRegistry
from segstudio.remote.probe import (
    HostReport,
    probe,
    require_device,
    require_disk,
    require_segstudio,
)
from segstudio.remote.ssh import RemoteError, Ssh, python_command
from segstudio.remote.sync import SyncResult, agent_error, plan_mirror, sync_project

RECORD_NAME = "remote.json"
EVENTS_NAME = "events.jsonl"
FETCHED_MARKER = ".results-fetched"  # the run's folder and model came back from the host


@dataclass(frozen=True)
class RemoteRun:
    """A run on a host, as this computer knows it."""

    run_id: str
    host: str
    mirror: str  # the mirror on the host, absolute
    project_root: Path  # the project here
    started: float
    gpus: int = 1
    attempt: int = 1  # 2, 3...: the run resumed on the host after it ended unfinished

    @property
    def launch_name(self) -> str:
        """The launch folder under MIRROR/remote: one per start, the resumed ones inside the first."""
        return self.run_id if self.attempt == 1 else f"{self.run_id}/resume-{self.attempt}"

    @property
    def launch(self) -> str:
        return f"{self.mirror}/remote/{self.launch_name}"

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

    def present(self, event: dict[str, Any]) -> dict[str, Any]:
        """An event as the host wrote it, ready for this computer: paths made local, and a
        verdict on a run that ended without finishing told in words naming the host."""
        local = self.localize(event)
        if event.get("event") == "error" and event.get("unfinished"):
            local["message"] = unfinished_message(self, event)
        elif event.get("event") == "error" and isinstance(event.get("message"), str):
            local["message"] = host_error_message(self, event["message"])
        return local


UNFINISHED_WHY = {
    "restarted": "the host restarted, which ended it",
    "lost": "its processes are gone (the host restarted, or they were killed)",
    "killed": "the trainer was killed (out of memory, or by someone)",
    "crashed": "the trainer crashed",
    "disk_full": "the host's disk is full",
}


def resume_command(run: RemoteRun) -> str:
    args = ["segstudio", "train", str(run.project_root), "--host", run.host, "--resume", run.run_id]
    return shlex.join(args + (["--gpus", str(run.gpus)] if run.gpus > 1 else []))


def host_error_message(run: RemoteRun, message: str) -> str:
    """The trainer's own error, said on the host: which host, and a `--resume RUN` it suggests
    as the command that does it from this computer."""
    text = f"on host {run.host}: {message}"
    if f"--resume {run.run_id}" in message:
        text = text.rstrip(". ") + f" (from this computer: '{resume_command(run)}')."
    return text


def unfinished_message(run: RemoteRun, verdict: dict[str, Any]) -> str:
    """The host's verdict (agent `_unfinished`) in plain words: what happened on which host,
    the last checkpoint there, and the command that continues from it."""
    cause = str(verdict.get("unfinished"))
    text = f"the run {run.run_id} on host {run.host} ended without finishing: {UNFINISHED_WHY.get(cause, cause)}"
    if cause == "disk_full" and isinstance(verdict.get("free"), int):
        text += f" ({verdict['free'] / 1e6:.1f} MB free in {verdict.get('path')}; free space there first)"
    elif cause in ("killed", "crashed") and verdict.get("message"):
        text += f" ({verdict['message']})"
    if verdict.get("checkpoint"):
        epoch = verdict.get("checkpoint_epoch")
        text += (f". Its last checkpoint{f' is from epoch {epoch}' if epoch is not None else ''}, kept on "
                 f"{run.host} in {verdict['checkpoint']}; continue the run from it with '{resume_command(run)}'")
    else:
        text += (f". It had saved no checkpoint yet; start it again with "
                 f"'{shlex.join(['segstudio', 'train', str(run.project_root), '--host', run.host])}'")
    return text + ". Your annotations here are not affected."


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
                     gpus=int(data.get("gpus", 1)), attempt=int(data.get("attempt", 1)))


def new_run_id(project_root: Path, name: str | None, host: str) -> str:
    """A run folder name unused here: the given name, or time + host."""
    slug = re.sub(r"[^A-Za-z0-9._+-]+", "-", host).strip("-.") or "host"
    base = re.sub(r"[^A-Za-z0-9._+-]+", "-", name or f"{time.strftime('%Y%m%d-%H%M%S')}-on-{slug}").strip("-.")
    candidate, n = base or "run", 2
    while (Path(project_root) / "runs" / candidate).exists():
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def trainer_argv(mirror: str, run_id: str, train_args: list[str], gpus: int, resume: bool = False) -> list[str]:
    """The host command: `segstudio train MIRROR --events jsonl ...`, under torchrun for gpus > 1
    (a resumed run keeps its folder: train_args carry --resume RUN, no new name)."""
    train = ["segstudio", "train", mirror, "--events", "jsonl", *train_args]
    train += [] if resume else ["--run-name", run_id]
    if gpus > 1:
        return ["python", "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}", "-m", *train]
    return ["python", "-m", *train]


@dataclass(frozen=True)
class Launch:
    run: RemoteRun
    report: HostReport
    sync: SyncResult


def launch_run(project: Project, host: HostConfig, train_args: list[str], *, device: str | None = None,
               gpus: int | None = None, run_name: str | None = None, ssh: Ssh | None = None,
               resume: str | None = None) -> Launch:
    """Check the host, sync the mirror, start the trainer there detached; returns at once.
    With `resume` (a run id here that ran on `host`), continue that run from its checkpoint
    there (train_args carry --resume): a new launch of the same run, its events from here on."""
    ssh = ssh or Ssh(host.name)
    previous = _resumable(project, host, resume) if resume else None
    gpus = gpus or (previous.gpus if previous else 1)
    device = device or (_saved_device(previous) if previous else None) or "auto"
    report = probe(host, ssh)
    require_segstudio(report)
    require_device(report, device, gpus)
    plan = plan_mirror(project, host)
    require_disk(report, host, plan.total_bytes)
    synced = sync_project(project, host, ssh, plan)
    mirror = synced.mirror
    if mirror.startswith("~/"):
        mirror = report.home.rstrip("/") + mirror[1:]
    if previous is not None:
        run = replace(previous, mirror=mirror, gpus=gpus, attempt=previous.attempt + 1, started=time.time())
        options = ["--resume", "--launch", run.launch_name]
    else:
        run = RemoteRun(run_id=new_run_id(project.root, run_name, host.name), host=host.name, mirror=mirror,
                        project_root=project.root, started=time.time(), gpus=gpus)
        options = []
    argv = trainer_argv(mirror, run.run_id, train_args, gpus, resume=previous is not None)
    agent = python_command(host.interpreter, ["-m", "segstudio.remote.agent", "start", *options, mirror,
                                              run.run_id, "--", *argv])
    result = ssh.run(agent, check=False)
    if result.code != 0:
        raise agent_error(host.name, result.stderr, "resuming the run" if previous else "starting the run")
    if previous is not None:  # the last launch's events stay beside, as events-N.jsonl
        _archive_launch(previous)
    save_record(run)
    run.events_path.touch()
    return Launch(run, report, synced)


def _resumable(project: Project, host: HostConfig, run_id: str) -> RemoteRun:
    """The record of `run_id`, which must have run on `host`."""
    try:
        previous = load_record(project.root, run_id)
    except TrainingError as exc:
        raise TrainingError(f"run {run_id} did not run on a host (no {RECORD_NAME} in {project.root / 'runs' / run_id}); "
                            f"resume it on this computer: 'segstudio train {project.root} --resume {run_id}'") from exc
    if previous.host != host.name:
        raise RemoteError(f"run {run_id} ran on host {previous.host}, not {host.name}; its checkpoint is there: "
                          f"resume it with --host {previous.host}")
    return previous


def _saved_device(run: RemoteRun) -> str | None:
    """The device a run had (its config.json here, from its run_started): a resume without
    --device keeps it, so a run on a host's CPU is not refused for want of a GPU."""
    try:
        device = json.loads((run.local_dir / "config.json").read_text(encoding="utf-8")).get("device")
    except (OSError, ValueError, AttributeError):
        return None
    return str(device) if device else None


def _archive_launch(previous: RemoteRun) -> None:
    """Keep the ended launch's events as events-N.jsonl and forget that its results came home,
    so the resumed launch streams into a fresh events.jsonl and fetches the run again."""
    folder = previous.local_dir
    if previous.events_path.exists():
        os.replace(previous.events_path, folder / f"events-{previous.attempt}.jsonl")
    for name in (FETCHED_MARKER, OUTCOME_NAME):
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()


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
