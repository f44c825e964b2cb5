"""A disk that really fills up (a 2 MB tmpfs mounted by the test) on either end of a transfer:
the project's mirror on the host, and the project here when a run's results come home. No
half-written file joins either project, the message names the host, the folder and the bytes,
and once space is freed the same command finishes the job."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import HOST

from segstudio.cli.main import main
from segstudio.core.atomic import is_temp_name
from segstudio.core.project import Project
from segstudio.core.runs import read_run
from segstudio.remote.agent import STATE_NAME
from segstudio.remote.hosts import HostConfig, HostRegistry
from segstudio.remote.results import ResultsNotSaved
from segstudio.remote.runs import RemoteRun, save_record
from segstudio.remote.ssh import RemoteError
from segstudio.remote.stream import EventStream
from segstudio.remote.sync import project_key, sync_project

sys.path.insert(0, str(Path(__file__).resolve().parent))
from remote_builders import make_project  # noqa: E402


def _mount(folder: Path, size: str, remount: bool = False) -> subprocess.CompletedProcess[str]:
    options = f"remount,size={size}" if remount else f"size={size}"
    command = ["mount", "-o", options, str(folder)] if remount else ["mount", "-t", "tmpfs", "-o", options,
                                                                      "tmpfs", str(folder)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on its own 2 MB file system, to fill for real; skipped where mounting is not allowed."""
    folder = tmp_path / "small"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("filling a disk for real needs a small tmpfs, and mounting one needs root")
    done = _mount(folder, "2m")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}); a container without "
                    "CAP_SYS_ADMIN cannot, so this fault is not tested")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def _grow(folder: Path) -> None:
    done = _mount(folder, "64m", remount=True)
    assert done.returncode == 0, done.stderr


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_host_disk_filling_up_mid_sync_keeps_only_whole_files(host: HostConfig, small_disk: Path,
                                                                tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    project = make_project(tmp_path / "proj", n_train=4, n_val=2, size=(400, 400))  # ~2.4 MB of noise
    here_before = {k: v for k, v in _files(project.root).items() if not k.startswith(".cache")}
    small = HostConfig(HOST, python=host.python, root=str(small_disk), min_free_gb=0.0)
    HostRegistry().put(small)
    mirror = Path(small.mirror(project_key(project)))
    with pytest.raises(RemoteError) as caught:
        sync_project(project, small)
    message = str(caught.value)
    assert f"the disk of host {HOST} is full in {mirror} while receiving the project's files" in message
    assert "MB still to write" in message and "free)" in message
    assert f"free space on {HOST} (or move its folder: 'segstudio remote add {HOST} --root DIR')" in message
    assert "nothing half-written was kept" in message

    landed = _files(mirror)
    assert not [p for p in mirror.rglob("*") if is_temp_name(p.name)]  # the cut file's temp is gone
    sources = {f"images/{r.id}.png": project.image_path(r) for r in project.images}
    sources |= {f"masks/{r.id}.png": project.mask_path(r) for r in project.images}
    arrived = [rel for rel in landed if rel in sources]
    assert 0 < len(arrived) < len(sources)  # it filled up part way
    for rel in arrived:  # whatever is in the mirror is whole
        assert landed[rel] == hashlib.sha256(sources[rel].read_bytes()).hexdigest(), rel
    assert "project.json" not in landed  # the manifest goes last: the mirror never lists a missing image
    state = json.loads((mirror / STATE_NAME).read_text())["files"]
    assert set(state) == set(arrived)

    assert main(["remote", "sync", str(project.root), "--host", HOST]) == 2  # the command line says the same
    assert f"error: the disk of host {HOST} is full in {mirror}" in capsys.readouterr().err
    after = {k: v for k, v in _files(project.root).items() if not k.startswith(".cache")}
    assert after == here_before  # the laptop's project is untouched

    _grow(small_disk)  # the user frees space on the host
    done = sync_project(project, small)
    assert done.files_sent == done.files_total - len(state)  # what had landed is not sent again
    copy = Project.open(mirror)
    assert [r.id for r in copy.images] == [r.id for r in project.images]
    for rel, source in sources.items():
        assert (mirror / rel).read_bytes() == source.read_bytes()
    print(f"\n{message}\nfilled after {len(arrived)} of {len(sources)} files; then sent {done.files_sent} "
          f"({done.bytes_sent} bytes)")


def _finished_run_on_host(host: HostConfig, project: Project, run_id: str, weights: bytes) -> RemoteRun:
    """A run as a finished trainer leaves it in the host's mirror, with its launch folder."""
    mirror = Path(host.mirror(project_key(project)))
    run_dir, model_dir, launch = mirror / "runs" / run_id, mirror / "models" / run_id, mirror / "remote" / run_id
    for folder in (run_dir / "previews", model_dir, launch):
        folder.mkdir(parents=True)
    (run_dir / "config.json").write_text('{"arch": "unet"}\n')
    (run_dir / "previews" / "epoch1.png").write_bytes(b"\x89PNG preview")
    (model_dir / "config.json").write_text('{"arch": "unet"}\n')
    (model_dir / "model.safetensors").write_bytes(weights)
    now = time.time()
    events = [{"event": "run_started", "time": now - 2, "run_id": run_id, "run_dir": str(run_dir)},
              {"event": "run_finished", "time": now, "epochs": 1, "model": str(model_dir), "run_dir": str(run_dir)}]
    (launch / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    run = RemoteRun(run_id, HOST, str(mirror), project.root, now - 3)
    save_record(run)
    run.events_path.touch()
    return run


def test_results_that_do_not_fit_here_leave_the_project_as_it_was(host: HostConfig, small_disk: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    project = make_project(small_disk / "proj", n_train=2, n_val=1)  # ~70 kB on a 2 MB disk
    weights = os.urandom(3_000_000)  # the model does not fit
    run = _finished_run_on_host(host, project, "r1", weights)
    before = {k: v for k, v in _files(project.root).items() if not k.startswith(("runs/", ".cache"))}
    got: list[dict] = []
    with pytest.raises(ResultsNotSaved) as caught:
        EventStream(run, got.append).follow()
    message = str(caught.value)
    assert f"the disk of this computer is full in {project.root} (3.0 MB to save, " in message
    assert f"runs/r1, models/r1 of run r1 from host {HOST} could not be saved" in message
    assert f"the files stay on {HOST}. Free space here, then fetch them with 'segstudio runs attach" in message
    assert not (project.root / "models" / "r1").exists()  # no half model among the project's models
    assert not (project.root / "runs" / "r1" / "config.json").exists()
    assert not [p for p in project.root.rglob("*") if is_temp_name(p.name)]
    assert not list((project.root / ".cache").rglob("incoming/*"))  # the staging folder went too
    after = {k: v for k, v in _files(project.root).items() if not k.startswith(("runs/", ".cache"))}
    assert after == before
    Project.open(project.root)  # still opens

    capsys.readouterr()
    assert main(["runs", "attach", str(project.root), "r1"]) == 2  # a later attach: the same words
    assert "error: the disk of this computer is full" in capsys.readouterr().err
    _grow(small_disk)
    assert main(["runs", "attach", str(project.root), "r1"]) == 0
    assert "run r1 on segtest had ended (run_finished)" in capsys.readouterr().err
    assert (project.root / "models" / "r1" / "model.safetensors").read_bytes() == weights
    assert (project.root / "runs" / "r1" / "previews" / "epoch1.png").is_file()
    info = read_run(run.local_dir)
    assert info.status == "finished" and info.model_dir == project.root / "models" / "r1"
    assert not list((project.root / ".cache").rglob("incoming/*"))
    print(f"\n{message}")


def _fill(folder: Path) -> Path:
    """Fill the file system of `folder` to the last byte, as another program might."""
    ballast = folder / "ballast"
    with open(ballast, "wb", buffering=0) as handle:
        for size in (1 << 20, 4096, 1):  # the last partial block too
            with contextlib.suppress(OSError):
                while handle.write(b"\0" * size):
                    pass
    return ballast


def test_a_verdict_that_no_longer_fits_on_the_host_disk_is_still_sent(small_disk: Path) -> None:
    from segstudio.remote.agent import boot_id

    mirror = small_disk / "mirror"
    launch, checkpoint = mirror / "remote" / "r1", mirror / "runs" / "r1" / "checkpoints" / "last.safetensors"
    for folder in (launch, checkpoint.parent):
        folder.mkdir(parents=True)
    checkpoint.write_bytes(b"weights")
    (launch / "launch.json").write_text(json.dumps({"cwd": str(mirror)}))
    lines = [{"event": "run_started", "run_id": "r1"},
             {"event": "checkpoint", "epoch": 3, "kind": "last", "path": str(checkpoint)}]
    text = "".join(json.dumps(e) + "\n" for e in lines)
    pad = '{"event":"progress","pad":""}\n'
    text += pad[:-3] + " " * (4096 - len(text) - len(pad)) + pad[-3:]  # a whole page: an append needs a new one
    (launch / "events.jsonl").write_text(text)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # the supervisor and its trainer died with the disk full
    (launch / "supervisor.json").write_text(json.dumps({"pid": gone.pid, "boot_id": boot_id(), "start": "0"}))
    ballast = _fill(small_disk)
    before = (launch / "events.jsonl").read_bytes()
    follow = [sys.executable, "-m", "segstudio.remote.agent", "follow", str(launch), "--from", "3"]
    done = subprocess.run(follow, capture_output=True, timeout=60, check=False)
    verdict = json.loads(done.stdout.splitlines()[-1])
    assert verdict["unfinished"] == "disk_full" and verdict["path"] == str(mirror)
    assert verdict["checkpoint"] == str(checkpoint) and verdict["checkpoint_epoch"] == 3
    assert (launch / "events.jsonl").read_bytes() == before  # nothing fitted, nothing torn
    ballast.unlink()  # with room again, the next follower writes it down
    again = subprocess.run(follow, capture_output=True, timeout=60, check=False)
    assert json.loads(again.stdout.splitlines()[-1])["unfinished"] == "lost"
    assert json.loads((launch / "events.jsonl").read_text().splitlines()[-1])["event"] == "error"


@pytest.mark.slow
def test_a_host_disk_filling_during_a_run_ends_it_in_words_and_it_resumes(host: HostConfig, small_disk: Path,
                                                                           tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from remote_builders import TINY_TRAIN

    from segstudio.remote.runs import launch_run

    assert _mount(small_disk, "1g", remount=True).returncode == 0  # room for a run; filled below
    roomy = HostConfig(HOST, python=host.python, root=str(small_disk), min_free_gb=0.0)
    HostRegistry().put(roomy)
    project = make_project(tmp_path / "proj", n_train=4, n_val=2)
    run = launch_run(project, roomy, [*TINY_TRAIN, "--epochs", "6", "--checkpoint-every-s", "0"], device="cpu").run
    host_events = Path(run.launch) / "events.jsonl"
    deadline = time.monotonic() + 300
    while not any(json.loads(line).get("kind") == "last" for line in host_events.read_text().splitlines()):
        assert time.monotonic() < deadline, host_events.read_text()
        time.sleep(0.2)
    ballast = _fill(small_disk)  # another program fills the host's disk mid-run
    capsys.readouterr()
    assert main(["runs", "attach", str(project.root), run.run_id]) == 1
    err = capsys.readouterr().err
    said = next(line for line in err.splitlines() if line.startswith("error") or "ended without" in line)
    assert f"host {HOST}" in said and "full" in said, err
    assert f"--host {HOST} --resume {run.run_id}'" in said, err
    ballast.unlink()  # the user frees space there
    assert main(["train", str(project.root), "--host", HOST, "--resume", run.run_id, "--workers", "0"]) == 0
    info = read_run(run.local_dir)
    assert info.status == "finished" and info.completed_epochs == 6
    print(f"\n{said}")
