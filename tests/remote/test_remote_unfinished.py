"""A run whose host restarts, or whose processes are killed, mid-run: the host agent notices
that nothing is left to write the final event and writes a verdict naming the last checkpoint;
this computer tells it in words naming the host and the command that resumes; the resume
continues the same run on the host. The agent alone first (fast), then through the test sshd."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import HOST  # at import: in a whole-suite run, 'conftest' later means tests/ui's

from segstudio.remote.agent import boot_id, identity
from segstudio.remote.runs import RemoteRun, unfinished_message

AGENT = [sys.executable, "-m", "segstudio.remote.agent"]


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)


def _launch(tmp_path: Path, supervisor: dict, trainer: dict | None) -> tuple[Path, Path]:
    """A launch folder as `agent start` leaves it, for a run that saved a checkpoint at epoch 2."""
    checkpoint = tmp_path / "runs" / "r1" / "checkpoints" / "last.safetensors"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"weights")
    launch = tmp_path / "remote" / "r1"
    launch.mkdir(parents=True)
    lines = [{"event": "run_started", "run_id": "r1"},
             {"event": "checkpoint", "epoch": 1, "kind": "last", "path": str(checkpoint)},
             {"event": "checkpoint", "epoch": 2, "kind": "best", "path": str(checkpoint.parent / "best.safetensors")},
             {"event": "checkpoint", "epoch": 2, "kind": "last", "path": str(checkpoint)},
             {"event": "epoch_end", "epoch": 3}]
    (launch / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    (launch / "supervisor.json").write_text(json.dumps(supervisor))
    if trainer is not None:
        (launch / "trainer.json").write_text(json.dumps(trainer))
    return launch, checkpoint


def test_a_trainer_outliving_its_supervisor_is_followed_and_its_death_named(tmp_path: Path) -> None:
    supervisor, trainer = _sleeper(), _sleeper()
    launch, checkpoint = _launch(tmp_path, identity(supervisor.pid), identity(trainer.pid))
    supervisor.kill()  # the agent alone is killed: the trainer goes on writing events
    supervisor.wait()
    follower = subprocess.Popen([*AGENT, "follow", str(launch), "--from", "5"], stdout=subprocess.PIPE)
    try:
        time.sleep(2.5)  # the follower looks every second
        assert len(_events(launch / "events.jsonl")) == 5  # no verdict on a run that still runs
        assert follower.poll() is None
        os.killpg(trainer.pid, signal.SIGKILL)  # now the trainer too, without a word
        trainer.wait()
        assert follower.stdout is not None
        verdict = json.loads(follower.stdout.readline())
        assert follower.wait(timeout=10) == 0
    finally:
        follower.kill()
    assert verdict["event"] == "error" and verdict["unfinished"] == "lost"
    assert verdict["run_id"] == "r1" and verdict["checkpoint"] == str(checkpoint)
    assert verdict["checkpoint_epoch"] == 2  # the last 'last' checkpoint, not the best one
    assert _events(launch / "events.jsonl")[-1] == verdict  # in the host's file too


def test_after_a_restart_a_pid_that_lives_again_is_not_the_trainer(tmp_path: Path) -> None:
    stranger = _sleeper()  # a process that got the old pid after the reboot
    try:
        old_boot = {"pid": stranger.pid, "boot_id": "0-before-the-reboot", "start": ""}
        launch, _ = _launch(tmp_path, old_boot, old_boot)
        done = subprocess.run([*AGENT, "follow", str(launch), "--from", "5"], capture_output=True, timeout=30)
        assert json.loads(done.stdout)["unfinished"] == "restarted"
        stop = subprocess.run([*AGENT, "stop", str(launch), "--kill"], capture_output=True, timeout=30)
        assert json.loads(stop.stdout)["action"] == "none" and stranger.poll() is None  # never shot
    finally:
        stranger.kill()
    assert boot_id()  # this test needs /proc; Linux hosts have it


def test_the_supervisor_names_the_checkpoint_of_a_killed_trainer_and_resume_waits_for_it(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    script = (  # a trainer that saves epoch 1, says so, then works on until killed
        "import json, pathlib, sys, time\n"
        f"ck = pathlib.Path({str(mirror / 'runs' / 'r1' / 'checkpoints')!r})\n"
        "ck.mkdir(parents=True); (ck / 'last.pt').write_bytes(b's'); (ck / 'last.safetensors').write_bytes(b'w')\n"
        "print(json.dumps({'event': 'run_started', 'run_id': 'r1'}), flush=True)\n"
        "print(json.dumps({'event': 'checkpoint', 'epoch': 1, 'kind': 'last', 'path': str(ck / 'last.safetensors')}), flush=True)\n"
        "time.sleep(120)\n")
    started = subprocess.run([*AGENT, "start", str(mirror), "r1", "--", sys.executable, "-c", script],
                             capture_output=True, timeout=30, text=True)
    assert started.returncode == 0, started.stderr
    launch = mirror / "remote" / "r1"
    deadline = time.monotonic() + 30
    while len(_events(launch / "events.jsonl")) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    resume = [*AGENT, "start", "--resume", "--launch", "r1/resume-2", str(mirror), "r1", "--", "true"]
    refused = subprocess.run(resume, capture_output=True, timeout=30, text=True)
    assert refused.returncode == 2 and "run r1 is still running on this host" in refused.stderr
    pid = json.loads((launch / "trainer.json").read_text())["pid"]
    os.killpg(pid, signal.SIGKILL)  # the out-of-memory killer, say
    while len(_events(launch / "events.jsonl")) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    verdict = _events(launch / "events.jsonl")[-1]
    assert verdict["unfinished"] == "killed" and "killed by signal 9" in verdict["message"]
    assert verdict["checkpoint"].endswith("r1/checkpoints/last.safetensors") and verdict["checkpoint_epoch"] == 1
    again = subprocess.run(resume, capture_output=True, timeout=30, text=True)
    assert again.returncode == 0, again.stderr
    assert (mirror / "remote" / "r1" / "resume-2" / "launch.json").is_file()
    fresh = subprocess.run([*AGENT, "start", "--resume", str(mirror), "r9", "--", "true"], capture_output=True,
                           timeout=30, text=True)
    assert fresh.returncode == 2 and "run r9 has no checkpoint" in fresh.stderr


def test_the_verdict_in_words_names_the_host_the_checkpoint_and_the_resume(tmp_path: Path) -> None:
    run = RemoteRun("r1", "gpubox", "/srv/m", tmp_path / "proj", 0.0, gpus=2)
    verdict = {"event": "error", "time": 1.0, "unfinished": "restarted", "run_id": "r1", "checkpoint_epoch": 7,
               "checkpoint": "/srv/m/runs/r1/checkpoints/last.safetensors", "message": "host words"}
    text = unfinished_message(run, verdict)
    assert text.startswith("the run r1 on host gpubox ended without finishing: the host restarted")
    assert "last checkpoint is from epoch 7, kept on gpubox in /srv/m/runs/r1/checkpoints/last.safetensors" in text
    assert f"'segstudio train {tmp_path / 'proj'} --host gpubox --resume r1 --gpus 2'" in text
    assert run.present(verdict)["message"] == text
    assert run.present(verdict)["checkpoint"] == verdict["checkpoint"].replace("/srv/m", str(tmp_path / "proj"))
    early = unfinished_message(run, dict(verdict, unfinished="lost", checkpoint=None))
    assert "(the host restarted, or they were killed)" in early and "saved no checkpoint yet" in early
    own = run.present({"event": "error", "message": "could not write the checkpoint; continue with --resume r1"})
    assert own["message"] == ("on host gpubox: could not write the checkpoint; continue with --resume r1 (from this "
                              f"computer: 'segstudio train {tmp_path / 'proj'} --host gpubox --resume r1 --gpus 2').")


def _wait_for(path: Path, test, timeout_s: float = 300) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events = _events(path) if path.exists() else []
        if test(events):
            return events
        time.sleep(0.2)
    pytest.fail(f"waited {timeout_s:.0f} s in vain; events so far: {[e.get('event') for e in events]}")


@pytest.mark.slow
def test_a_host_going_down_mid_run_is_named_at_once_and_the_run_resumes_there(
        host, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from remote_builders import TINY_TRAIN, make_project

    from segstudio.cli.main import main
    from segstudio.core.runs import read_run
    from segstudio.engine.modelfile import load_model
    from segstudio.remote.runs import launch_run, load_record

    project = make_project(tmp_path / "proj", n_train=4, n_val=2)
    run = launch_run(project, host, [*TINY_TRAIN, "--epochs", "4", "--checkpoint-every-s", "0"], device="cpu").run
    launch = Path(run.launch)
    _wait_for(launch / "events.jsonl", lambda ev: any(e.get("kind") == "last" for e in ev))
    supervisor = json.loads((launch / "supervisor.json").read_text())["pid"]
    trainer = json.loads((launch / "trainer.json").read_text())["pid"]
    os.kill(supervisor, signal.SIGKILL)  # the host goes down: every process of the run at once,
    os.killpg(trainer, signal.SIGKILL)  # nothing written on the way out
    capsys.readouterr()
    asked = time.monotonic()
    assert main(["runs", "attach", str(project.root), run.run_id]) == 1
    waited = time.monotonic() - asked
    err = capsys.readouterr().err
    verdict = _events(launch / "events.jsonl")[-1]
    epoch = verdict["checkpoint_epoch"]
    assert verdict["unfinished"] == "lost" and epoch >= 1
    assert f"the run {run.run_id} on host {HOST} ended without finishing: its processes are gone" in err
    assert f"last checkpoint is from epoch {epoch}, kept on {HOST} in {run.mirror}/runs/{run.run_id}/" in err
    assert f"--host {HOST} --resume {run.run_id}'" in err
    assert waited < 30  # a verdict in seconds, not a wait for a run that is gone
    said = next(line for line in err.splitlines() if "ended without finishing" in line)

    assert main(["train", str(project.root), "--host", HOST, "--resume", run.run_id, "--workers", "0"]) == 0
    err = capsys.readouterr().err
    assert f"run {run.run_id} started on {HOST}; resumed from its checkpoint there (start 2)" in err
    resumed = load_record(project.root, run.run_id)
    assert resumed.attempt == 2 and resumed.launch == f"{run.launch}/resume-2"
    events = _events(resumed.events_path)
    assert events[0]["event"] == "run_started" and events[0]["start_epoch"] == epoch
    assert [e["epoch"] for e in events if e["event"] == "epoch_end"] == list(range(epoch + 1, 5))
    assert events[-1]["event"] == "run_finished"
    assert _events(run.local_dir / "events-1.jsonl")[-1]["unfinished"] == "lost"  # the first start, kept
    info = read_run(run.local_dir)
    assert info.status == "finished" and info.completed_epochs == 4
    model, _ = load_model(project.root / "models" / run.run_id)
    assert sum(p.numel() for p in model.parameters()) > 0
    print(f"\n{said}\nkilled after the epoch-{epoch} checkpoint; verdict here in {waited:.1f} s; resumed to epoch 4")
