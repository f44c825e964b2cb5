"""`segstudio remote add|list|check|remove|setup|sync` and `segstudio runs attach|stop`.

Training on a host is `segstudio train PROJECT --host HOST` (engine_cmds hands it to
`train_on_host` here). Messages go to stderr; with `--events jsonl` stdout carries the
run's events and nothing else, exactly as a local `segstudio train --events jsonl`.
Exit codes: 0 finished or stopped, 1 the run failed, 2 a usage or host problem, 3 the
connection was lost while the run goes on (re-attach with `segstudio runs attach`).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

EXIT_LOST = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    remote = subparsers.add_parser("remote", help="hosts to train on over SSH: add, list, check, set up",
                                   description="Hosts are names 'ssh NAME' reaches (aliases of ~/.ssh/config).")
    actions = remote.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a host (or change its settings)")
    add.add_argument("host", help="what 'ssh HOST' connects to: an alias of ~/.ssh/config or user@address")
    add.add_argument("--python", help="the host's interpreter with segstudio (default: ROOT/venv/bin/python)")
    add.add_argument("--root", help="the host's folder for mirrors and the venv (default ~/.segstudio)")
    add.add_argument("--map", action="append", default=[], metavar="HERE=THERE",
                     help="images under HERE are at THERE on the host and are not sent (repeatable)")
    add.add_argument("--min-free-gb", type=float, help="refuse a run when the host has less free disk (default 2)")
    actions.add_parser("list", help="the registered hosts")
    for name, text in (("check", "reachable? Python, segstudio, GPUs, free disk"), ("remove", "forget a host")):
        actions.add_parser(name, help=text).add_argument("host")
    setup = actions.add_parser("setup", help="install this segstudio into a venv on the host")
    setup.add_argument("host")
    setup.add_argument("--python", default="python3", help="the host interpreter that makes the venv")
    setup.add_argument("--base-python", help="a host interpreter whose packages (torch...) the venv uses "
                                             "instead of downloading them")
    setup.add_argument("--wheel", type=Path, help="a segstudio wheel to install (default: built here)")
    sync = actions.add_parser("sync", help="send the project's labelled images and masks to the host")
    sync.add_argument("project", type=Path)
    sync.add_argument("--host", required=True)
    remote.set_defaults(func=run_remote)

    runs = subparsers.add_parser("runs", help="follow or stop a run on a host")
    runs_actions = runs.add_subparsers(dest="action", metavar="ACTION", required=True)
    attach = runs_actions.add_parser("attach", help="stream a remote run's events from the last one received")
    attach.add_argument("project", type=Path)
    attach.add_argument("run", help="the run id (a folder under PROJECT/runs)")
    attach.add_argument("--events", choices=("jsonl",), help="JSON-lines events on stdout (for the app)")
    attach.add_argument("--replay", action="store_true", help="first repeat the events already received")
    attach.add_argument("-q", "--quiet", action="store_true")
    attach.add_argument("--retries", type=int, default=3, help="reconnections before giving up (default 3)")
    stop = runs_actions.add_parser("stop", help="stop a remote run (it saves); with --kill, at once")
    stop.add_argument("project", type=Path)
    stop.add_argument("run")
    stop.add_argument("--kill", action="store_true")
    runs.set_defaults(func=run_runs)


def run_remote(args: argparse.Namespace) -> int:
    from segstudio.remote.hosts import HostConfig, HostRegistry

    registry = HostRegistry()
    if args.action == "add":
        host = registry.find(args.host) or HostConfig(args.host)
        changes: dict[str, Any] = {}
        if args.python is not None:
            changes["python"] = args.python
        if args.root is not None:
            changes["root"] = args.root
        if args.min_free_gb is not None:
            changes["min_free_gb"] = args.min_free_gb
        if args.map:
            changes["path_map"] = tuple(_mapping(text) for text in args.map)
        registry.put(HostConfig.from_dict(dict(host.to_dict(), **changes)))
        print(f"host {args.host} saved in {registry.path}; 'segstudio remote check {args.host}' tests it")
        return 0
    if args.action == "list":
        hosts = registry.hosts()
        if not hosts:
            print("no hosts yet; add one with 'segstudio remote add HOST'")
        for host in hosts:
            maps = ", ".join(f"{a} -> {b}" for a, b in host.path_map)
            print(f"{host.name}: python {host.interpreter}, folder {host.root}" + (f", maps {maps}" if maps else ""))
        return 0
    if args.action == "remove":
        registry.remove(args.host)
        print(f"host {args.host} removed (its files on the host stay)")
        return 0
    if args.action == "check":
        from segstudio.remote.probe import probe

        report = probe(registry.get(args.host))
        print("\n".join(report.lines()))
        return 0 if report.same_version else 1
    if args.action == "setup":
        from segstudio.remote.install import setup_host
        from segstudio.remote.probe import probe

        host = registry.find(args.host) or HostConfig(args.host)
        host = setup_host(host, python=args.python, base_python=args.base_python, wheel=args.wheel,
                          log=lambda text: print(text, file=sys.stderr))
        print("\n".join(probe(host).lines()))
        return 0
    from segstudio.core.project import Project
    from segstudio.remote.sync import sync_project

    result = sync_project(Project.open(args.project), registry.get(args.host))
    print(result.summary(args.host))
    return 0


def _mapping(text: str) -> tuple[str, str]:
    here, sep, there = text.partition("=")
    if not sep or not here or not there:
        from segstudio.remote.ssh import RemoteError

        raise RemoteError(f"--map wants HERE=THERE (a folder here and where the host sees it), got {text!r}")
    return here, there


# -- following a run ----------------------------------------------------------------------------
def _writer(events: str | None, quiet: bool) -> Any:
    from segstudio.engine.console import ConsoleWriter
    from segstudio.engine.events import JsonlWriter

    if events == "jsonl":
        return JsonlWriter(sys.stdout)
    return ConsoleWriter(sys.stderr, quiet=quiet)


def _follow(run: Any, writer: Any, retries: int) -> int:
    """Stream to the end; SIGINT/SIGTERM stop the run there (it saves), a second one kills it."""
    from segstudio.engine.events import make_event
    from segstudio.remote.stream import ConnectionLost, EventStream, attach

    stream = EventStream(run, writer)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stream.request_stop()
        what = "stopping the run on" if stream._stop_requests == 1 else "killing the run on"
        print(f"signal {signum}: {what} {run.host} (it saves and the results come back)", file=sys.stderr)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        final = attach(run, writer, retries=retries, stream=stream,
                       on_retry=lambda text: print(f"warning: {text}", file=sys.stderr))
    except ConnectionLost as exc:
        if isinstance(writer, _jsonl_type()):
            writer(make_event("warning", message=str(exc)))
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LOST
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not stream.latencies:  # it had ended before: only its results were fetched (or were here)
        print(f"run {run.run_id} on {run.host} had ended ({final['event']}); its folder is {run.local_dir}",
              file=sys.stderr)
    else:
        ordered = sorted(stream.latencies)
        print(f"event latency from {run.host}: median {ordered[len(ordered) // 2] * 1000:.0f} ms, "
              f"max {ordered[-1] * 1000:.0f} ms over {len(ordered)} events", file=sys.stderr)
    return 1 if final["event"] == "error" else 0


def _jsonl_type() -> type:
    from segstudio.engine.events import JsonlWriter

    return JsonlWriter


def remote_train_args(args: argparse.Namespace) -> list[str]:
    """The training options given here, as `segstudio train` flags for the host (its own
    defaults fill the rest, resolved for its machine); the run's name is set by the launch."""
    from segstudio.engine.config import TrainConfig, config_to_argv, given_options

    given = given_options(args)
    given.pop("run_name", None)
    return config_to_argv(TrainConfig(**given))


def train_on_host(args: argparse.Namespace) -> int:
    """`segstudio train PROJECT --host HOST`: check, sync, start detached there, stream here."""
    from segstudio.core.project import Project
    from segstudio.remote.hosts import HostRegistry
    from segstudio.remote.runs import attach_command, launch_run

    host = HostRegistry().get(args.host)
    project = Project.open(args.project)
    launched = launch_run(project, host, remote_train_args(args), device=args.device, gpus=args.gpus,
                          run_name=args.run_name, resume=args.resume)
    print(launched.sync.summary(host.name), file=sys.stderr)
    resumed = f"; resumed from its checkpoint there (start {launched.run.attempt})" if args.resume else ""
    print(f"run {launched.run.run_id} started on {host.name}{resumed}; it goes on if this ends: "
          f"'{attach_command(launched.run)}' re-attaches", file=sys.stderr)
    return _follow(launched.run, _writer(args.events, args.quiet), getattr(args, "retries", 3))


def run_runs(args: argparse.Namespace) -> int:
    from segstudio.remote.runs import load_record, stop_run

    run = load_record(args.project.resolve(), args.run)
    if args.action == "stop":
        action = stop_run(run, kill=args.kill)
        print({"stop": f"asked run {run.run_id} on {run.host} to stop (it finishes its step and saves)",
               "kill": f"killed run {run.run_id} on {run.host}",
               "none": f"run {run.run_id} on {run.host} is not running"}[action])
        return 0
    from segstudio.remote.stream import received_events

    writer = _writer(args.events, args.quiet)
    if args.replay:
        for event in received_events(run):
            writer(event)
    return _follow(run, writer, args.retries)
