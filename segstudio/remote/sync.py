"""The project mirror on a host: what a run there reads, sent once and then only what changed.

The mirror holds the images a run trains and validates on (labelled or reviewed, with a
mask, in train/unassigned/val), their masks, the project's active model (a run may start
from it, as locally) and a manifest listing only those images. Every file is known by its
sha256 on both sides (a hash cache here, a state file there), so a second sync sends only
new or changed files and removes the ones gone. Files land on the host under a temp name
and are renamed once complete and verified, so a half-sent file never joins the mirror.
Images the host already has (the host's path mapping) are referred to in place, not sent.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segstudio.core.atomic import atomic_write_json
from segstudio.core.project import MANIFEST_NAME, Project
from segstudio.core.runs import ACTIVE_MODEL_KEY, active_model
from segstudio.core.vocabulary import TRAIN_SPLITS, TRAINING_STATUSES
from segstudio.remote.agent import ERROR_MARKER
from segstudio.remote.hosts import HostConfig
from segstudio.remote.ssh import SSH_EXIT_ERROR, RemoteError, Ssh, explain, python_command

HASH_CACHE = Path(".cache") / "remote" / "hashes.json"
MIRROR_SPLITS = (*TRAIN_SPLITS, "val")


@dataclass(frozen=True)
class MirrorFile:
    """One file of the mirror: its path there, its source here (or its bytes), size, sha256."""

    rel: str
    size: int
    sha256: str
    source: Path | None = None
    data: bytes | None = None


@dataclass(frozen=True)
class SyncPlan:
    files: tuple[MirrorFile, ...]
    mapped: tuple[str, ...]  # host paths of images used in place

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class SyncResult:
    """What a sync did: files and bytes sent (payload + framing), of how many in the mirror."""

    mirror: str
    files_sent: int
    bytes_sent: int
    files_total: int
    bytes_total: int
    deleted: int
    mapped: int
    seconds: float

    def summary(self, host: str) -> str:
        if not self.files_sent and not self.deleted:
            return f"{host}: mirror up to date ({self.files_total} files, nothing sent)"
        return (f"{host}: sent {self.files_sent} of {self.files_total} files, {_size(self.bytes_sent)}"
                + (f", removed {self.deleted}" if self.deleted else "")
                + (f", {self.mapped} images used in place" if self.mapped else "")
                + f" ({self.seconds:.1f} s)")


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def project_key(project: Project) -> str:
    """The mirror's folder name: the project's name and a hash of where it lives here."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", project.name).strip("-.")[:40] or "project"
    where = hashlib.sha1(os.path.abspath(project.root).encode("utf-8")).hexdigest()[:10]
    return f"{slug}-{where}"


class HashCache:
    """sha256 of local files, recomputed only when size or mtime changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.entries: dict[str, list[Any]] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.entries = {}
        self.dirty = False

    def sha256(self, path: Path) -> tuple[int, str]:
        stat = path.stat()
        key = os.path.abspath(path)
        cached = self.entries.get(key)
        if cached and cached[0] == stat.st_size and cached[1] == stat.st_mtime_ns:
            return stat.st_size, str(cached[2])
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        self.entries[key] = [stat.st_size, stat.st_mtime_ns, digest.hexdigest()]
        self.dirty = True
        return stat.st_size, digest.hexdigest()

    def save(self) -> None:
        if self.dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, self.entries)


def plan_mirror(project: Project, host: HostConfig) -> SyncPlan:
    """Every file the mirror must hold, hashed; the manifest last."""
    cache = HashCache(project.root / HASH_CACHE)
    files: list[MirrorFile] = []
    mapped: list[str] = []
    images: list[dict[str, Any]] = []

    def add(rel: str, source: Path) -> None:
        size, sha = cache.sha256(source)
        files.append(MirrorFile(rel, size, sha, source=source))

    for record in project.images:
        if record.status not in TRAINING_STATUSES or record.split not in MIRROR_SPLITS:
            continue
        if not project.has_mask(record):
            continue
        source = project.image_path(record)
        there = host.host_path(source)
        if there is not None:
            mapped.append(there)
            path = there
        else:
            path = f"images/{record.id}{source.suffix.lower()}"
            add(path, source)
        add(f"masks/{record.id}.png", project.mask_path(record))
        images.append(dict(record.to_dict(), path=path))
    manifest = project.to_dict()
    manifest["images"] = images
    settings = dict(manifest.get("settings") or {})
    model = active_model(project)
    settings.pop(ACTIVE_MODEL_KEY, None)
    if model is not None and model.is_dir() and model.parent == project.root / "models":
        for item in sorted(p for p in model.rglob("*") if p.is_file()):
            add(item.relative_to(project.root).as_posix(), item)
        settings[ACTIVE_MODEL_KEY] = f"models/{model.name}"
    manifest["settings"] = settings
    data = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    files.append(MirrorFile(MANIFEST_NAME, len(data), hashlib.sha256(data).hexdigest(), data=data))
    cache.save()
    return SyncPlan(tuple(files), tuple(mapped))


def remote_state(ssh: Ssh, host: HostConfig, mirror: str) -> dict[str, dict[str, Any]]:
    result = ssh.run(python_command(host.interpreter, ["-m", "segstudio.remote.agent", "state", mirror]))
    return dict(json.loads(result.stdout.strip().splitlines()[-1])["files"])


def disk_full_message(host: str, doing: str, info: dict[str, Any]) -> str:
    """The host's full disk in words: where, how much is missing (when known), what to do."""
    where = f" in {info['path']}" if info.get("path") else ""
    figures = []
    if isinstance(info.get("needed"), int) and info["needed"] > 0:
        figures.append(f"{_size(info['needed'])} still to write")
    if isinstance(info.get("free"), int):
        figures.append(f"{_size(info['free'])} free")
    kept = ""
    if isinstance(info.get("landed"), int):
        kept = (f"; the {info['landed']} whole files that arrived are kept and not sent again, "
                "nothing half-written was kept")
    return (f"the disk of host {host} is full{where} while {doing}"
            + (f" ({', '.join(figures)})" if figures else "")
            + f"; free space on {host} (or move its folder: 'segstudio remote add {host} --root DIR'), "
              f"then try again{kept}. The project on this computer is untouched")


def agent_error(host: str, stderr: str, doing: str) -> RemoteError:
    """The agent's typed failure (or its raw stderr) as a message naming the host."""
    for line in stderr.splitlines():
        if line.startswith(ERROR_MARKER):
            info = json.loads(line[len(ERROR_MARKER):])
            if info["kind"] == "disk_full":
                return RemoteError(disk_full_message(host, doing, info))
            return RemoteError(f"host {host}, {doing}: {info['message']}")
    return RemoteError(f"host {host}, {doing}, failed: {stderr.strip()[-500:] or 'no message'}; "
                       f"'segstudio remote check {host}' tells what is missing")


def sync_project(project: Project, host: HostConfig, ssh: Ssh | None = None,
                 plan: SyncPlan | None = None, prune: bool = True) -> SyncResult:
    """Bring the host's mirror of `project` up to date; only changed files travel. Without
    `prune`, files no longer wanted stay (a run reading the mirror may still hold them)."""
    start = time.monotonic()
    ssh = ssh or Ssh(host.name)
    plan = plan or plan_mirror(project, host)
    mirror = host.mirror(project_key(project))
    there = remote_state(ssh, host, mirror)
    wanted = {f.rel for f in plan.files}
    send = [f for f in plan.files if there.get(f.rel, {}).get("sha256") != f.sha256]
    delete = sorted(rel for rel in there if rel not in wanted) if prune else []
    sent = 0
    if send or delete or plan.mapped:
        header = json.dumps({"files": [{"path": f.rel, "size": f.size, "sha256": f.sha256} for f in send],
                             "delete": delete, "mapped": list(plan.mapped)}).encode("utf-8") + b"\n"
        errors = tempfile.TemporaryFile()  # a file, not a pipe: a chatty host cannot block the upload
        process = ssh.popen(python_command(host.interpreter, ["-m", "segstudio.remote.agent", "receive", mirror]),
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors)
        assert process.stdin is not None
        try:
            process.stdin.write(header)
            sent += len(header)
            for item in send:
                if item.data is not None:
                    process.stdin.write(item.data)
                else:
                    assert item.source is not None
                    with open(item.source, "rb") as handle:
                        for chunk in iter(lambda h=handle: h.read(1 << 20), b""):  # type: ignore[misc]
                            process.stdin.write(chunk)
                sent += item.size
            process.stdin.close()
        except BrokenPipeError:
            pass  # the host stopped reading: its message says why
        code = process.wait(timeout=600)
        errors.seek(0)
        err = errors.read().decode("utf-8", "replace")
        errors.close()
        if code == SSH_EXIT_ERROR and ERROR_MARKER not in err:
            raise RemoteError(explain(host.name, err))
        if code != 0:
            raise agent_error(host.name, err, "receiving the project's files")
    return SyncResult(mirror=mirror, files_sent=len(send), bytes_sent=sent, files_total=len(plan.files),
                      bytes_total=plan.total_bytes, deleted=len(delete), mapped=len(plan.mapped),
                      seconds=time.monotonic() - start)
