"""The host side of remote training: `python -m segstudio.remote.agent COMMAND ...` over ssh.

Standard library only (plus core.atomic), so it starts in a blink on the host:

    receive MIRROR        files framed on stdin land atomically (temp name + rename, sha256
                          checked); the mirror's state file records each file's hash
    state MIRROR          the state file, each entry checked against the file on disk
    start MIRROR RUN -- ARGV   a detached supervisor (new session) runs ARGV with events
                          appended to MIRROR/remote/RUN/events.jsonl; with --resume (and
                          --launch NAME for a fresh launch folder) it continues RUN from its
                          checkpoint, refused while an earlier launch of RUN still runs
    supervise LAUNCH      (started by `start`) waits for the trainer, records how it ended and,
                          if it ended without a final event, appends an `error` event
    follow LAUNCH --from K    events from line K+1 as they are written; ends after the final one.
                          When supervisor and trainer are both gone without one (killed, the
                          host restarted), it appends the verdict: an `error` event with
                          `unfinished` (why), `run_id` and the last `checkpoint` and its epoch
    stop LAUNCH [--kill]  SIGTERM to the trainer (finish the step, save); a second stop kills
    pack ROOT PATH...     files or folders (a run's folder and model) as a tar stream on stdout

The trainer names its own run folder and never reuses one, so the launch folder with the
event file sits beside it: MIRROR/remote/RUN/ next to MIRROR/runs/RUN/.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

from segstudio.core.atomic import atomic_open, atomic_write_json

STATE_NAME = ".segstudio-sync.json"
FINAL_EVENTS = ("run_finished", "stopped", "error")
ERROR_MARKER = "SEGSTUDIO-ERROR "
PACK_INFO = ".segstudio-pack.json"  # the first member of a pack: {"bytes": N}
HEARTBEAT = b"~"  # a line no event file holds: "still here" on a quiet stream
HEARTBEAT_S = 5.0
POLL_S = 0.05


def fail(kind: str, message: str) -> int:
    """Tell this computer what went wrong in a form it parses (kind: disk_full, missing, ...)."""
    sys.stderr.write(ERROR_MARKER + json.dumps({"kind": kind, "message": message}) + "\n")
    sys.stderr.flush()
    return 2


def _safe_rel(mirror: Path, rel: str) -> Path:
    parts = Path(rel).parts
    if not rel or Path(rel).is_absolute() or ".." in parts:
        raise ValueError(f"refusing path {rel!r} outside the mirror")
    return mirror / rel


def is_disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)) or "No space left" in str(exc)


def free_bytes(path: Path) -> int | None:
    """Free space where `path` (or its nearest existing parent) lives; None if unknown."""
    while not path.exists() and path != path.parent:
        path = path.parent
    with contextlib.suppress(OSError):
        return shutil.disk_usage(path).free
    return None


def fail_disk_full(path: Path, message: str, needed: int | None = None, **extra: Any) -> int:
    """A full disk, with what this computer needs to say what to do: the folder, the bytes
    still to write (when known) and the space left."""
    sys.stderr.write(ERROR_MARKER + json.dumps({"kind": "disk_full", "message": message, "path": str(path),
                                                "needed": needed, "free": free_bytes(path), **extra}) + "\n")
    sys.stderr.flush()
    return 2


def _keep_state(mirror: Path, state: dict[str, dict[str, Any]]) -> None:
    """Record the files landed so far; on a full disk even that may fail, and then the next
    sync sends them again (they are whole, only unrecorded), which is safe."""
    with contextlib.suppress(OSError):
        write_state(mirror, state)


def read_state(mirror: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((mirror / STATE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data.get("files", {}) if isinstance(data, dict) else {}


def write_state(mirror: Path, files: dict[str, dict[str, Any]]) -> None:
    atomic_write_json(mirror / STATE_NAME, {"files": files})


# -- data ---------------------------------------------------------------------------------------
def cmd_state(mirror: Path) -> int:
    """The state file's entries whose file is still there with the recorded size."""
    verified = {rel: entry for rel, entry in read_state(mirror).items()
                if (mirror / rel).is_file() and (mirror / rel).stat().st_size == entry.get("size")}
    print(json.dumps({"files": verified}))
    return 0


def _receive_file(stream: Any, target: Path, size: int, sha256: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with atomic_open(target, "wb") as handle:  # a partial file never takes the real name
        left = size
        while left:
            chunk = stream.read(min(left, 1 << 20))
            if not chunk:
                raise EOFError(f"the transfer ended {left} bytes before the end of {target.name}")
            digest.update(chunk)
            handle.write(chunk)
            left -= len(chunk)
        if digest.hexdigest() != sha256:
            raise ValueError(f"{target.name} arrived damaged (sha256 differs); sync again")


def cmd_receive(mirror: Path) -> int:
    stream = sys.stdin.buffer
    header = json.loads(stream.readline())
    mirror.mkdir(parents=True, exist_ok=True)
    state = read_state(mirror)
    missing = [p for p in header.get("mapped", []) if not os.path.isfile(os.path.expanduser(p))]
    if missing:
        return fail("missing", f"{len(missing)} mapped image(s) are not on the host, e.g. {missing[0]}")
    received = landed = 0
    last_write = time.monotonic()
    total = sum(int(item["size"]) for item in header["files"])
    try:
        for item in header["files"]:
            rel = item["path"]
            _receive_file(stream, _safe_rel(mirror, rel), int(item["size"]), item["sha256"])
            state[rel] = {"sha256": item["sha256"], "size": int(item["size"])}
            received += int(item["size"])
            landed += 1
            if time.monotonic() - last_write > 1.0:  # files landed so far survive an interruption
                write_state(mirror, state)
                last_write = time.monotonic()
        for rel in header.get("delete", []):
            with contextlib.suppress(FileNotFoundError):
                _safe_rel(mirror, rel).unlink()
            state.pop(rel, None)
        write_state(mirror, state)
    except OSError as exc:
        _keep_state(mirror, state)
        if is_disk_full(exc):
            return fail_disk_full(mirror, str(exc), needed=total - received, landed=landed)
        return fail("io", str(exc))
    except (EOFError, ValueError) as exc:
        _keep_state(mirror, state)
        return fail("transfer", str(exc))
    print(json.dumps({"received_bytes": received, "files": len(header["files"])}))
    return 0


def cmd_pack(root: Path, paths: list[str], checkpoints: bool) -> int:
    """Files or folders under `root` as an uncompressed tar on stdout (PNGs and weights do not
    shrink); a run's checkpoints only when asked (they are the bulk)."""
    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if not checkpoints and "/checkpoints" in info.name else info

    total = 0  # announced first, so a receiver out of space can say how much it needed
    for rel in paths:
        top = _safe_rel(root, rel)
        for item in [top] if top.is_file() else (top.rglob("*") if top.is_dir() else []):
            if item.is_file() and (checkpoints or "/checkpoints" not in "/" + item.relative_to(root).as_posix()):
                total += item.stat().st_size
    with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as tar:
        info = json.dumps({"bytes": total}).encode("utf-8")
        member = tarfile.TarInfo(PACK_INFO)
        member.size = len(info)
        tar.addfile(member, io.BytesIO(info))
        for rel in paths:
            if _safe_rel(root, rel).exists():
                tar.add(root / rel, arcname=rel, filter=keep)
    return 0


# -- runs ---------------------------------------------------------------------------------------
def boot_id() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie has finished
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    return True


def _start_ticks(pid: int) -> str:
    """When process `pid` started (clock ticks since boot, from /proc): with the boot id it
    tells the trainer from a later process that got the same pid. Empty where unknown."""
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[19]
    return ""


def identity(pid: int) -> dict[str, Any]:
    return {"pid": pid, "boot_id": boot_id(), "start": _start_ticks(pid)}


def _still_running(info: dict[str, Any]) -> bool:
    """Whether the process recorded in `info` (see identity) is still that process, running."""
    if info.get("boot_id", boot_id()) != boot_id():
        return False  # the host restarted since: every process of then is gone
    pid = int(info["pid"])
    if not _alive(pid):
        return False
    return not info.get("start") or _start_ticks(pid) in ("", info["start"])


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def cmd_start(mirror: Path, run_id: str, argv: list[str], resume: bool = False, launch_name: str | None = None) -> int:
    try:
        return _start(mirror, run_id, argv, resume, launch_name or run_id)
    except OSError as exc:  # the launch folder's few files did not fit
        if is_disk_full(exc):
            return fail_disk_full(mirror, str(exc))
        return fail("io", f"cannot start the run in {mirror}: {exc}")


def _start(mirror: Path, run_id: str, argv: list[str], resume: bool, launch_name: str) -> int:
    launch = mirror / "remote" / launch_name
    if resume:
        running = [p.parent for p in (mirror / "remote" / run_id).rglob("trainer.json")
                   if (info := _read_json(p)) and _still_running(info)]
        if running:
            return fail("running", f"run {run_id} is still running on this host (launch {running[0]}); "
                                   "follow it instead, or stop it first")
        if not (mirror / "runs" / run_id / "checkpoints" / "last.pt").is_file():
            return fail("missing", f"run {run_id} has no checkpoint in {mirror / 'runs' / run_id} on this host; "
                                   "start a new run instead")
        if launch.exists():
            return fail("exists", f"{launch} exists already")
    elif launch.exists() or (mirror / "runs" / run_id).exists():
        return fail("exists", f"a run {run_id} already exists in {mirror}")
    launch.mkdir(parents=True)
    if argv[:1] == ["python"]:  # the interpreter this agent runs under: the host's segstudio
        argv = [sys.executable, *argv[1:]]
    atomic_write_json(launch / "launch.json", {"argv": argv, "cwd": str(mirror), "boot_id": boot_id(),
                                               "started": time.time()})
    (launch / "events.jsonl").touch()
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "segstudio.remote.agent", "supervise", str(launch)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True, cwd=str(mirror))
    atomic_write_json(launch / "supervisor.json", identity(supervisor.pid))
    print(json.dumps({"launch": str(launch), "pid": supervisor.pid}))
    return 0


def _final_seen(events: Path) -> bool:
    try:
        lines = events.read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    for line in reversed(lines):
        with contextlib.suppress(ValueError):
            return json.loads(line).get("event") in FINAL_EVENTS
    return False


def _append_event(events: Path, kind: str, **fields: Any) -> None:
    line = json.dumps({"event": kind, "time": time.time(), **fields}, separators=(",", ":")) + "\n"
    with open(events, "a+b") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell():  # a trainer killed mid-line: end that torn line first
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                line = "\n" + line
        handle.write(line.encode("utf-8"))


def _log_tail(launch: Path, lines: int = 4) -> str:
    with contextlib.suppress(OSError):
        text = (launch / "stderr.log").read_text(encoding="utf-8", errors="replace")
        return " | ".join(text.strip().splitlines()[-lines:])
    return ""


def cmd_supervise(launch: Path) -> int:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    info = json.loads((launch / "launch.json").read_text(encoding="utf-8"))
    with open(launch / "events.jsonl", "ab") as out, open(launch / "stderr.log", "ab") as err:
        trainer = subprocess.Popen(info["argv"], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                   cwd=info["cwd"], start_new_session=True, close_fds=True)
    atomic_write_json(launch / "trainer.json", identity(trainer.pid))
    code = trainer.wait()
    with contextlib.suppress(OSError):  # a full disk must not cost the verdict below
        atomic_write_json(launch / "exit.json", {"code": code, "time": time.time()})
    if not _final_seen(launch / "events.jsonl"):
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        tail = _log_tail(launch)
        cause = "disk_full" if _disk_nearly_full(launch) else "killed" if code < 0 else "crashed"
        with contextlib.suppress(OSError):
            _append_event(launch / "events.jsonl", "error", **_unfinished(launch, cause),
                          message=f"the trainer {how} without finishing"
                                  + (f"; its last words: {tail}" if tail else "")
                                  + f" (log: {launch / 'stderr.log'})")
    return 0


def _disk_nearly_full(path: Path) -> bool:
    free = free_bytes(path)
    return free is not None and free < 1 << 20


def _unfinished(launch: Path, cause: str) -> dict[str, Any]:
    """What a verdict on a run that ended without its final event tells this computer: why
    (cause: killed, crashed, lost, restarted, disk_full), the run's id and its last checkpoint
    (from the trainer's own `checkpoint` events, if the file is still there)."""
    fields: dict[str, Any] = {"unfinished": cause, "run_id": None, "checkpoint": None, "checkpoint_epoch": None}
    with contextlib.suppress(OSError):
        for line in (launch / "events.jsonl").read_text(encoding="utf-8").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            if event.get("event") == "run_started":
                fields["run_id"] = event.get("run_id")
            elif event.get("event") == "checkpoint" and event.get("kind") == "last" and event.get("path"):
                if Path(str(event["path"])).is_file():
                    fields["checkpoint"], fields["checkpoint_epoch"] = event["path"], event.get("epoch")
    if cause == "disk_full":
        fields["free"] = free_bytes(launch)
        fields["path"] = str((_read_json(launch / "launch.json") or {}).get("cwd") or launch)
    return fields


def _run_gone(launch: Path) -> str | None:
    """Why the run of `launch` can no longer write its final event ("restarted", "lost"), or
    None while its supervisor or its trainer still runs (either alone may finish the file)."""
    supervisor = _read_json(launch / "supervisor.json")
    if supervisor is None:
        return None  # being started
    if supervisor.get("boot_id") != boot_id():
        return "restarted"
    trainer = _read_json(launch / "trainer.json")
    if _still_running(supervisor) or (trainer is not None and _still_running(trainer)):
        return None
    return "disk_full" if _disk_nearly_full(launch) else "lost"


def cmd_follow(launch: Path, skip: int) -> int:
    """Complete lines after the first `skip`, flushed as written; a heartbeat line on
    silence, so a dead connection ends this process at its next write."""
    events = launch / "events.jsonl"
    if not events.is_file():
        return fail("missing", f"no run was started in {launch}")
    out = sys.stdout.buffer
    seen, buffer, final = 0, b"", False
    last_out = last_check = time.monotonic()
    with open(events, "rb") as handle:
        while True:
            chunk = handle.read(1 << 16)
            if chunk:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    seen += 1
                    with contextlib.suppress(ValueError, AttributeError):
                        final = final or json.loads(line).get("event") in FINAL_EVENTS
                    if seen > skip:
                        out.write(line + b"\n")
                out.flush()
                last_out = time.monotonic()
                continue
            if final:  # sent (or already had by this computer): the stream is complete
                return 0
            now = time.monotonic()
            if now - last_check > 1.0:
                last_check = now
                cause = _run_gone(launch)
                if cause and not _final_seen(events):
                    verdict = _verdict(launch, cause)
                    marker = launch / "lost.marker"
                    try:
                        with open(marker, "x"):  # one follower writes the verdict
                            pass
                        _append_event(events, "error", **verdict)
                    except FileExistsError:  # another is writing it; one that died leaves an old marker
                        with contextlib.suppress(OSError):
                            if time.time() - marker.stat().st_mtime > 10:
                                marker.unlink()
                    except OSError:  # not even that fits on the disk: say it all the same, and let a
                        with contextlib.suppress(OSError):  # later follower write it once there is room
                            marker.unlink()
                        out.write(json.dumps({"event": "error", "time": time.time(), **verdict}).encode() + b"\n")
                        out.flush()
                        return 0
                    continue
            if now - last_out > HEARTBEAT_S:
                out.write(HEARTBEAT + b"\n")
                out.flush()
                last_out = now
            time.sleep(POLL_S)


def _verdict(launch: Path, cause: str) -> dict[str, Any]:
    why = {"restarted": "the host restarted", "disk_full": "the host's disk is full",
           "lost": "its processes were killed, or the host restarted"}.get(cause, cause)
    return dict(_unfinished(launch, cause),
                message=f"the run ended without finishing ({why}); resume it from its last checkpoint")


def cmd_stop(launch: Path, kill: bool) -> int:
    info = _read_json(launch / "trainer.json")
    if info is None or "pid" not in info:
        return fail("missing", f"no trainer started in {launch}")
    pid = int(info["pid"])
    if not _still_running(info):  # ended, or the pid is another process's now
        print(json.dumps({"action": "none", "reason": "not running"}))
        return 0
    marker = launch / "stop-requested"
    kill = kill or marker.exists()
    # torchrun starts each worker in a session of its own, and on SIGTERM gives them a fixed
    # time (30 s) to end before killing them: a slow save would be cut. So a stop goes to the
    # workers themselves (they finish the step, save, exit 0, and torchrun ends as after a
    # run); a kill to every group, torchrun's last, so no worker is left behind.
    workers = _children(pid) if _under_torchrun(launch) else []
    groups = ([*workers, pid] if kill else workers) or [pid]
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL if kill else signal.SIGTERM)
    marker.touch()
    print(json.dumps({"action": "kill" if kill else "stop", "pid": pid, "signalled": groups}))
    return 0


def _under_torchrun(launch: Path) -> bool:
    argv = (_read_json(launch / "launch.json") or {}).get("argv") or []
    return "torch.distributed.run" in argv


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc; none where there is no /proc)."""
    found = []
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int(Path(f"/proc/{entry}/stat").read_text().rsplit(") ", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m segstudio.remote.agent")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("receive", "state"):
        sub.add_parser(name).add_argument("mirror", type=Path)
    pack = sub.add_parser("pack")
    pack.add_argument("mirror", type=Path)
    pack.add_argument("paths", nargs="+")
    pack.add_argument("--checkpoints", action="store_true")
    start = sub.add_parser("start")
    start.add_argument("--resume", action="store_true", help="continue the run RUN_ID from its checkpoint")
    start.add_argument("--launch", dest="launch_name", help="the launch folder under MIRROR/remote (default: RUN_ID)")
    start.add_argument("mirror", type=Path)
    start.add_argument("run_id")
    start.add_argument("argv", nargs=argparse.REMAINDER)
    sub.add_parser("supervise").add_argument("launch", type=Path)
    follow = sub.add_parser("follow")
    follow.add_argument("launch", type=Path)
    follow.add_argument("--from", dest="skip", type=int, default=0)
    stop = sub.add_parser("stop")
    stop.add_argument("launch", type=Path)
    stop.add_argument("--kill", action="store_true")
    args = parser.parse_args(argv)
    for name in ("mirror", "launch"):
        if hasattr(args, name):
            setattr(args, name, getattr(args, name).expanduser())
    if args.command == "receive":
        return cmd_receive(args.mirror)
    if args.command == "state":
        return cmd_state(args.mirror)
    if args.command == "pack":
        return cmd_pack(args.mirror, args.paths, args.checkpoints)
    if args.command == "start":
        return cmd_start(args.mirror, args.run_id, args.argv[1:] if args.argv[:1] == ["--"] else args.argv,
                         resume=args.resume, launch_name=args.launch_name)
    if args.command == "supervise":
        return cmd_supervise(args.launch)
    if args.command == "follow":
        try:
            return cmd_follow(args.launch, args.skip)
        except BrokenPipeError:  # this computer went away; the run goes on
            return 0
    return cmd_stop(args.launch, args.kill)


if __name__ == "__main__":
    sys.exit(main())
