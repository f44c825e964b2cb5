"""A remote run's events, streamed over ssh as the host writes them, with nothing lost or doubled.

The host's event file and PROJECT/runs/<id>/events.jsonl hold the same lines in the same
order; a stream asks the host for the lines after those it already has (`agent follow
--from K`), appends each to the local file before handing it on, so a dropped connection,
a killed app or a second attach resumes exactly where the last one stopped. Paths in the
events are turned into this project's paths; previews are fetched as they appear and the
run's folder and model when it ends, before the final event is handed on.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from segstudio.core.atomic import atomic_write_json, atomic_write_text
from segstudio.core.runs import write_outcome
from segstudio.remote.agent import FINAL_EVENTS, HEARTBEAT
from segstudio.remote.results import ResultsNotSaved, fetch_paths, fetch_results
from segstudio.remote.runs import FETCHED_MARKER, RemoteRun, attach_command, host_of, stop_run
from segstudio.remote.ssh import SSH_EXIT_ERROR, RemoteError, Ssh, explain, python_command
from segstudio.remote.sync import agent_error

EventHandler = Callable[[dict[str, Any]], None]
STALE_S = 40.0  # no line, not even a heartbeat (every 5 s), for this long: the connection is dead
RETRY_WAITS_S = (2.0, 5.0, 10.0)


class ConnectionLost(RemoteError):
    """The stream from the host broke before the run's final event; the run goes on there."""


def received_lines(path: Path) -> int:
    """Complete lines in the local event file; a torn last line (a killed writer) is cut off."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with open(path, "r+b") as handle:
            handle.truncate(keep)
        data = data[:keep]
    return data.count(b"\n")


def received_events(run: RemoteRun) -> Iterator[dict[str, Any]]:
    """The events this computer already has, with this project's paths (for a replay)."""
    received_lines(run.events_path)
    try:
        lines = run.events_path.read_bytes().splitlines()
    except FileNotFoundError:
        return
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            yield run.present(event)


class EventStream:
    """One attachment to a remote run: `follow()` hands each new event to `on_event` and
    returns the final one; `request_stop()` (from a signal handler, say) asks the host to stop
    the run, a second request kills it."""

    def __init__(self, run: RemoteRun, on_event: EventHandler, *, checkpoints: bool = False,
                 stale_s: float = STALE_S) -> None:
        self.run = run
        self.on_event = on_event
        self.checkpoints = checkpoints
        self.stale_s = stale_s
        self.host = host_of(run)
        self.ssh = Ssh(self.host.name)
        self.latencies: list[float] = []  # host event time -> here, seconds
        self.process: subprocess.Popen[bytes] | None = None
        self._stop_requests = 0
        self._stops_sent = 0

    def request_stop(self) -> None:
        self._stop_requests += 1

    def _send_stops(self) -> None:
        while self._stops_sent < self._stop_requests:
            self._stops_sent += 1
            stop_run(self.run, kill=self._stops_sent >= 2, ssh=self.ssh)

    def follow(self) -> dict[str, Any]:
        """Stream until the run's final event (returned, results fetched); ConnectionLost if
        the connection breaks first."""
        count = received_lines(self.run.events_path)
        had = [e for e in received_events(self.run) if e.get("event") in FINAL_EVENTS]
        if had:  # the run ended while this computer listened; make sure its results are here
            if not (self.run.local_dir / FETCHED_MARKER).exists():
                self._fetch_results(had[-1])
            return had[-1]
        args = ["-m", "segstudio.remote.agent", "follow", self.run.launch, "--from", str(count)]
        process = self.ssh.popen(python_command(self.host.interpreter, args),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.process = process
        assert process.stdout is not None
        fd = process.stdout.fileno()
        buffer, last_data, final = b"", time.monotonic(), None
        try:
            with open(self.run.events_path, "ab") as local:
                while final is None:
                    self._send_stops()
                    ready, _, _ = select.select([fd], [], [], 0.25)
                    if not ready:
                        if time.monotonic() - last_data > self.stale_s:
                            raise self._lost(count, "no word from the host for "
                                             f"{self.stale_s:.0f} s")
                        continue
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        raise self._lost(count, None)
                    last_data = time.monotonic()
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line == HEARTBEAT:
                            continue
                        local.write(line + b"\n")
                        local.flush()
                        count += 1
                        event = self._handle(line)
                        if event is not None and event["event"] in FINAL_EVENTS:
                            final = event
                            break
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            self.process = None
        return final

    def _lost(self, count: int, why: str | None) -> RemoteError:
        process = self.process
        assert process is not None
        if process.poll() is None:
            process.kill()
        code = process.wait()
        err = process.stderr.read().decode("utf-8", "replace") if process.stderr else ""
        if "SEGSTUDIO-ERROR" in err:  # the host answered: no such run, say; retrying will not help
            return agent_error(self.host.name, err, "streaming the run's events")
        if why is None and code == SSH_EXIT_ERROR and err.strip():
            why = explain(self.host.name, err)
        return ConnectionLost(
            f"lost the connection to host {self.host.name} after {count} events of run {self.run.run_id} "
            f"({why or 'the connection closed'}); the run goes on there: re-attach with "
            f"'{attach_command(self.run)}'")

    def _fetch_results(self, final: dict[str, Any]) -> None:
        fetch_results(self.run, self.checkpoints, ssh=self.ssh)
        write_outcome(self.run.local_dir, final)
        (self.run.local_dir / FETCHED_MARKER).touch()

    def _handle(self, line: bytes) -> dict[str, Any] | None:
        try:
            event = json.loads(line)
        except ValueError:
            return None
        if not isinstance(event, dict) or "event" not in event:
            return None
        if isinstance(event.get("time"), (int, float)):
            self.latencies.append(time.time() - float(event["time"]))
        kind = event["event"]
        local = self.run.present(event)
        if kind == "run_started":
            config = self.run.local_dir / "config.json"
            if not config.exists() and isinstance(event.get("config"), dict):
                atomic_write_json(config, dict(event["config"], host=self.run.host))
            if isinstance(event.get("start_epoch"), int):  # resumed: epochs after its checkpoint come again
                _cut_metrics(self.run.local_dir / "metrics.jsonl", event["start_epoch"])
        elif kind == "epoch_end":
            with open(self.run.local_dir / "metrics.jsonl", "a", encoding="utf-8") as metrics:
                metrics.write(json.dumps(local, separators=(",", ":")) + "\n")
        elif kind == "preview":
            rels = [p[len(self.run.mirror) + 1:] for p in event.get("images") or []
                    if isinstance(p, str) and p.startswith(self.run.mirror + "/")]
            if rels:
                try:
                    fetch_paths(self.run, rels, ssh=self.ssh)
                except ResultsNotSaved as exc:  # a preview is not worth ending the stream for
                    self.on_event({"event": "warning", "time": time.time(), "message": str(exc)})
        elif kind in FINAL_EVENTS:
            self._fetch_results(local)
        self.on_event(local)
        return local


def _cut_metrics(path: Path, last_epoch: int) -> None:
    """Keep the metrics of epochs up to `last_epoch` (a resumed run repeats those after it)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return
    keep = []
    for line in lines:
        try:
            epoch = json.loads(line).get("epoch")
        except (ValueError, AttributeError):
            continue
        if isinstance(epoch, int) and epoch <= last_epoch:
            keep.append(line + "\n")
    if len(keep) != len(lines):
        atomic_write_text(path, "".join(keep))


def attach(run: RemoteRun, on_event: EventHandler, *, retries: int = len(RETRY_WAITS_S),
           checkpoints: bool = False, on_retry: Callable[[str], None] | None = None,
           stream: EventStream | None = None) -> dict[str, Any]:
    """Follow `run` to its end, reconnecting up to `retries` times when the connection drops."""
    stream = stream or EventStream(run, on_event, checkpoints=checkpoints)
    attempt = 0
    while True:
        try:
            return stream.follow()
        except ConnectionLost as exc:
            if attempt >= retries:
                raise
            wait = RETRY_WAITS_S[min(attempt, len(RETRY_WAITS_S) - 1)]
            attempt += 1
            if on_retry is not None:
                on_retry(f"{exc}; trying again in {wait:.0f} s ({attempt}/{retries})")
            time.sleep(wait)
