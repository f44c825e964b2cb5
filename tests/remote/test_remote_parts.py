"""The remote pieces without a network: the host agent's atomic receive and its event follower,
the hosts registry and path mapping, and event paths turned into this project's paths."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from segstudio.remote.agent import HEARTBEAT, STATE_NAME
from segstudio.remote.hosts import HostConfig, HostRegistry
from segstudio.remote.runs import RemoteRun
from segstudio.remote.ssh import RemoteError, explain
from segstudio.remote.stream import received_lines


def _agent(*args: str, stdin: bytes = b"", timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "segstudio.remote.agent", *args], input=stdin,
                          capture_output=True, timeout=timeout, check=False)


def _frame(files: list[tuple[str, bytes]], claimed: dict[str, tuple[int, str]] | None = None) -> bytes:
    claimed = claimed or {}
    header = [{"path": rel, "size": claimed.get(rel, (len(data), ""))[0],
               "sha256": claimed.get(rel, (0, hashlib.sha256(data).hexdigest()))[1] or hashlib.sha256(data).hexdigest()}
              for rel, data in files]
    return json.dumps({"files": header, "delete": []}).encode() + b"\n" + b"".join(d for _, d in files)


def test_receive_lands_files_and_records_their_hashes(tmp_path: Path) -> None:
    files = [("masks/a.png", b"A" * 3000), ("project.json", b'{"x": 1}\n')]
    done = _agent("receive", str(tmp_path / "m"), stdin=_frame(files))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "m" / "masks" / "a.png").read_bytes() == b"A" * 3000
    state = json.loads((tmp_path / "m" / STATE_NAME).read_text())["files"]
    assert state["masks/a.png"] == {"sha256": hashlib.sha256(b"A" * 3000).hexdigest(), "size": 3000}
    listed = json.loads(_agent("state", str(tmp_path / "m")).stdout)["files"]
    assert set(listed) == {"masks/a.png", "project.json"}
    (tmp_path / "m" / "masks" / "a.png").write_bytes(b"short")  # changed behind our back: not trusted
    assert set(json.loads(_agent("state", str(tmp_path / "m")).stdout)["files"]) == {"project.json"}


def test_a_cut_transfer_or_a_damaged_file_never_takes_the_real_name(tmp_path: Path) -> None:
    good = ("masks/ok.png", b"ok" * 10)
    cut = _frame([good, ("masks/cut.png", b"C" * 500)], claimed={"masks/cut.png": (1000, "")})
    done = _agent("receive", str(tmp_path / "m"), stdin=cut)
    assert done.returncode == 2 and b"transfer" in done.stderr
    assert (tmp_path / "m" / "masks" / "ok.png").is_file()
    assert not (tmp_path / "m" / "masks" / "cut.png").exists()
    assert [p.name for p in (tmp_path / "m" / "masks").iterdir()] == ["ok.png"]  # no temp file left
    damaged = _frame([("masks/bad.png", b"B" * 100)], claimed={"masks/bad.png": (100, "0" * 64)})
    assert _agent("receive", str(tmp_path / "m"), stdin=damaged).returncode == 2
    assert not (tmp_path / "m" / "masks" / "bad.png").exists()
    state = json.loads((tmp_path / "m" / STATE_NAME).read_text())["files"]
    assert set(state) == {"masks/ok.png"}


def test_receive_refuses_paths_outside_the_mirror(tmp_path: Path) -> None:
    done = _agent("receive", str(tmp_path / "m"), stdin=_frame([("../escape.txt", b"x")]))
    assert done.returncode == 2
    assert not (tmp_path / "escape.txt").exists()


def _launch(tmp_path: Path, lines: list[str], supervisor_pid: int) -> Path:
    launch = tmp_path / "remote" / "run1"
    launch.mkdir(parents=True)
    (launch / "events.jsonl").write_text("".join(line + "\n" for line in lines))
    from segstudio.remote.agent import boot_id

    (launch / "supervisor.json").write_text(json.dumps({"pid": supervisor_pid, "boot_id": boot_id()}))
    return launch


def test_follow_sends_the_lines_after_k_and_ends_after_the_final_event(tmp_path: Path) -> None:
    lines = [json.dumps({"event": "run_started", "n": 0}), json.dumps({"event": "progress", "n": 1}),
             json.dumps({"event": "run_finished", "n": 2})]
    launch = _launch(tmp_path, lines, supervisor_pid=1)
    assert _agent("follow", str(launch), "--from", "1").stdout.decode().splitlines() == lines[1:]
    assert _agent("follow", str(launch), "--from", "3").stdout == b""  # all had: ends at once


def test_follow_streams_new_lines_and_reports_a_vanished_run(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    launch = _launch(tmp_path, [json.dumps({"event": "run_started"})], supervisor_pid=sleeper.pid)
    follower = subprocess.Popen([sys.executable, "-m", "segstudio.remote.agent", "follow", str(launch)],
                                stdout=subprocess.PIPE)
    assert follower.stdout is not None
    assert json.loads(follower.stdout.readline())["event"] == "run_started"
    with open(launch / "events.jsonl", "a") as handle:
        handle.write('{"event":"progress","step":1')  # half a line: not sent until complete
        handle.flush()
        time.sleep(0.3)
        handle.write("}\n")
    assert json.loads(follower.stdout.readline()) == {"event": "progress", "step": 1}
    sleeper.kill()  # the host's supervisor dies without a final event (a reboot, a kill -9)
    sleeper.wait()
    last = json.loads(follower.stdout.readline())
    assert last["event"] == "error" and last["unfinished"] == "lost" and "ended without finishing" in last["message"]
    assert follower.wait(timeout=10) == 0
    assert len((launch / "events.jsonl").read_text().splitlines()) == 3  # the verdict is in the file too
    assert HEARTBEAT not in (launch / "events.jsonl").read_bytes()


def test_received_lines_cuts_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"a":1}\n{"b":2}\n{"c":')
    assert received_lines(path) == 2
    assert path.read_bytes() == b'{"a":1}\n{"b":2}\n'
    assert received_lines(tmp_path / "none.jsonl") == 0


def test_registry_and_path_mapping(tmp_path: Path) -> None:
    registry = HostRegistry(tmp_path / "hosts.json")
    registry.put(HostConfig("gpu1", path_map=(("/data/shared", "/mnt/lab"),)))
    registry.put(HostConfig("gpu2", python="/opt/py/bin/python", root="/scratch/me"))
    assert [h.name for h in registry.hosts()] == ["gpu1", "gpu2"]
    gpu1 = registry.get("gpu1")
    assert gpu1.interpreter == "~/.segstudio/venv/bin/python"
    assert gpu1.host_path(Path("/data/shared/a/b.png")) == "/mnt/lab/a/b.png"
    assert gpu1.host_path(Path("/data/sharedX/b.png")) is None
    assert registry.get("gpu2").mirror("p-1") == "/scratch/me/mirrors/p-1"
    registry.remove("gpu1")
    with pytest.raises(RemoteError, match="no host 'gpu1'.*remote add gpu1"):
        registry.get("gpu1")


def test_event_paths_become_this_projects_paths(tmp_path: Path) -> None:
    run = RemoteRun("r1", "gpu1", "/host/mirrors/p", tmp_path, 0.0)
    event = {"event": "preview", "images": ["/host/mirrors/p/runs/r1/previews/a.png", "/elsewhere/b.png"],
             "run_dir": "/host/mirrors/p/runs/r1", "epoch": 2, "nested": {"model": "/host/mirrors/p/models/r1"}}
    local = run.localize(event)
    assert local["images"] == [str(tmp_path / "runs/r1/previews/a.png"), "/elsewhere/b.png"]
    assert local["run_dir"] == str(tmp_path / "runs" / "r1")
    assert local["nested"]["model"] == str(tmp_path / "models" / "r1")
    assert run.localize({"p": "/host/mirrors/pp/x"})["p"] == "/host/mirrors/pp/x"  # a prefix, not a folder


@pytest.mark.parametrize(("stderr", "words"), [
    ("root@127.0.0.1: Permission denied (publickey).", "rejected the SSH key"),
    ("ssh: connect to host 127.0.0.1 port 1: Connection refused", "cannot reach host"),
    ("ssh: Could not resolve hostname nowhere: Name or service not known", "cannot find host"),
    ("Host key verification failed.", "host key"),
])
def test_ssh_failures_in_plain_words(stderr: str, words: str) -> None:
    message = explain("gpu1", stderr)
    assert words in message and "gpu1" in message


def test_stop_asks_first_and_kills_the_second_time(tmp_path: Path) -> None:
    stubborn = subprocess.Popen(  # a trainer busy finishing its step: it notes SIGTERM, goes on
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, lambda *a: None); "
                               "print('ready', flush=True); time.sleep(60)"],
        start_new_session=True, stdout=subprocess.PIPE)
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
    launch = tmp_path / "launch"
    launch.mkdir()
    (launch / "trainer.json").write_text(json.dumps({"pid": stubborn.pid}))
    assert json.loads(_agent("stop", str(launch)).stdout)["action"] == "stop"
    time.sleep(0.3)
    assert stubborn.poll() is None
    assert json.loads(_agent("stop", str(launch)).stdout)["action"] == "kill"
    assert stubborn.wait(timeout=10) == -9
    assert json.loads(_agent("stop", str(launch)).stdout)["action"] == "none"


def test_more_than_one_gpu_runs_under_torchrun() -> None:
    from segstudio.remote.runs import trainer_argv

    assert trainer_argv("/m", "r1", ["--epochs", "2"], 1) == [
        "python", "-m", "segstudio", "train", "/m", "--events", "jsonl", "--epochs", "2", "--run-name", "r1"]
    assert trainer_argv("/m", "r1", [], 4)[:6] == [
        "python", "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4", "-m"]
