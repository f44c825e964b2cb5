"""A remote run's files coming home: previews as they appear, its folder and model at the end.

The host sends a tar stream (`agent pack`); it is unpacked into a staging folder inside the
project (PROJECT/.cache/remote/incoming/, the same disk, so placing is a rename), and only a
complete transfer is moved into PROJECT/runs and PROJECT/models: a model folder new here
appears in one rename, whole or not at all. A full disk here, or a broken stream, leaves the
project as it was and the files on the host, to be fetched again by a re-attach.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tarfile
from pathlib import Path
from typing import IO

from segstudio.remote.agent import PACK_INFO, free_bytes, is_disk_full
from segstudio.remote.runs import RemoteRun, attach_command, host_of
from segstudio.remote.ssh import RemoteError, Ssh, python_command
from segstudio.remote.sync import _size, agent_error

INCOMING = Path(".cache") / "remote" / "incoming"


class ResultsNotSaved(RemoteError):
    """The run's files could not be saved here (a full disk); the project is as it was."""


def _safe_parts(name: str) -> tuple[str, ...] | None:
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts:
        return None
    return parts


def _stage(stream: IO[bytes], staging: Path, info: dict[str, int]) -> list[str]:
    """Write the tar's regular files under `staging` (fsynced: they are renamed into the
    project next); returns their relative paths. `info` gets the sender's byte count."""
    staged: list[str] = []
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            parts = _safe_parts(member.name)
            source = tar.extractfile(member) if member.isfile() and parts else None
            if source is None or parts is None:
                continue
            if member.name == PACK_INFO:
                with contextlib.suppress(ValueError, TypeError):
                    info["bytes"] = int(json.loads(source.read())["bytes"])
                continue
            target = staging.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as handle:
                shutil.copyfileobj(source, handle, 1 << 20)
                handle.flush()
                os.fsync(handle.fileno())
            staged.append(Path(*parts).as_posix())
    return staged


def _place(staging: Path, root: Path, rels: list[str]) -> list[Path]:
    """Move the staged `rels` (files or folders, in order) to the same places under `root`.
    A folder that does not exist here moves in one rename; one that does, file by file."""
    placed: list[Path] = []
    for rel in rels:
        source, target = staging / rel, root / rel
        if not source.exists():
            continue
        if source.is_dir() and target.exists():
            for item in sorted(p for p in source.rglob("*") if p.is_file()):
                final = target / item.relative_to(source)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(item, final)
                placed.append(final)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            files = [target / p.relative_to(source) for p in source.rglob("*") if p.is_file()]
            os.replace(source, target)
            placed += sorted(files)
        else:
            os.replace(source, target)
            placed.append(target)
    return placed


def unpack_into(stream: IO[bytes], root: Path, rels: list[str], label: str,
                info: dict[str, int] | None = None) -> list[Path]:
    """Stage the tar, then place `rels` under `root`; the staging folder never outlives the call."""
    staging = root / INCOMING / f"{label}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        _stage(stream, staging, {} if info is None else info)
        return _place(staging, root, rels)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch_paths(run: RemoteRun, rels: list[str], checkpoints: bool = False, ssh: Ssh | None = None) -> list[Path]:
    """Copy files or folders of the mirror (relative paths) to the same places in the project."""
    host = host_of(run)
    ssh = ssh or Ssh(host.name)
    args = ["-m", "segstudio.remote.agent", "pack", run.mirror, *rels] + (["--checkpoints"] if checkpoints else [])
    process = ssh.popen(python_command(host.interpreter, args), stdout=-1, stderr=-1)
    assert process.stdout is not None and process.stderr is not None
    what = ", ".join(rels)
    info: dict[str, int] = {}
    try:
        written = unpack_into(process.stdout, run.project_root, rels, run.run_id, info)
    except BaseException as exc:
        process.kill()
        process.wait()
        error = _fetch_error(run, what, exc, info)
        if error is exc:
            raise
        raise error from exc
    err = process.stderr.read().decode("utf-8", "replace")
    if process.wait() != 0:
        raise agent_error(run.host, err, f"sending {what}")
    return written


def _fetch_error(run: RemoteRun, what: str, exc: BaseException, info: dict[str, int]) -> BaseException:
    if isinstance(exc, tarfile.TarError):
        return RemoteError(f"the results of run {run.run_id} from host {run.host} arrived damaged ({exc}); "
                           f"nothing of them was kept; fetch them again with '{attach_command(run)}'")
    if isinstance(exc, OSError) and is_disk_full(exc):
        free = free_bytes(run.project_root)
        figures = ([f"{_size(info['bytes'])} to save"] if "bytes" in info else []) + (
            [f"{_size(free)} free"] if free is not None else [])
        return ResultsNotSaved(
            f"the disk of this computer is full in {run.project_root} ({', '.join(figures)}): {what} of run "
            f"{run.run_id} from host {run.host} could not be saved. Nothing was half-saved and the project is "
            f"as it was; the files stay on {run.host}. Free space here, then fetch them with "
            f"'{attach_command(run)}'")
    return exc


def fetch_results(run: RemoteRun, checkpoints: bool = False, ssh: Ssh | None = None) -> list[Path]:
    """The run's folder (config, metrics, previews) and model, into PROJECT/runs and PROJECT/models."""
    rels = [f"runs/{run.run_id}", f"models/{run.run_id}"]
    return fetch_paths(run, rels, checkpoints, ssh)
