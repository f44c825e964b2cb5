"""`segstudio train PROJECT --host H --gpus N` runs torchrun with N processes on the host. This
machine has no GPU, so the test asks for N processes on the host's CPU (--device cpu: torchrun
with the gloo backend, as a local DDP run here): the same command line, launch, event stream
and homecoming as on a GPU server, only NCCL and the devices differ."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import HOST

from segstudio.cli.main import main
from segstudio.core.runs import read_run
from segstudio.remote.hosts import HostConfig
from segstudio.remote.probe import probe, require_device
from segstudio.remote.runs import load_record
from segstudio.remote.ssh import RemoteError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from remote_builders import TINY_TRAIN, make_project  # noqa: E402


def test_gpus_on_a_host_without_them_is_refused_unless_the_cpu_is_asked_for(host: HostConfig) -> None:
    report = probe(host)
    with pytest.raises(RemoteError, match=f"host {HOST} has no GPU"):
        require_device(report, "auto", 2)
    require_device(report, "cpu", 2)  # two processes on its CPU


@pytest.mark.slow
def test_train_on_host_with_two_processes_runs_torchrun_there(host: HostConfig, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from segstudio.engine.modelfile import load_model

    project = make_project(tmp_path / "proj", n_train=8, n_val=3)
    args = list(TINY_TRAIN)
    args[args.index("--batch-size") + 1] = "2"
    capsys.readouterr()
    assert main(["train", str(project.root), "--host", HOST, "--gpus", "2", *args, "--epochs", "2",
                 "--events", "jsonl"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    started = [e for e in events if e["event"] == "run_started"]
    assert len(started) == 1 and started[0]["world_size"] == 2  # one rank reports, two train
    assert started[0]["steps_per_epoch"] == 2  # 8 images / (2 processes x batch 2)
    assert [e["epoch"] for e in events if e["event"] == "epoch_end"] == [1, 2]
    final = events[-1]
    assert final["event"] == "run_finished"
    run = load_record(project.root, Path(final["run_dir"]).name)
    assert run.gpus == 2
    launch = json.loads((Path(run.launch) / "launch.json").read_text())
    assert launch["argv"][1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    assert read_run(run.local_dir).status == "finished"
    model, _ = load_model(Path(final["model"]))
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.slow
def test_a_stop_reaches_every_process_of_a_torchrun_run(host: HostConfig, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import time

    project = make_project(tmp_path / "proj", n_train=8, n_val=3)
    args = list(TINY_TRAIN)
    args[args.index("--batch-size") + 1] = "2"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]), OMP_NUM_THREADS="1")
    process = subprocess.Popen(
        ["nice", "-n", "19", sys.executable, "-m", "segstudio", "train", str(project.root), "--host", HOST,
         "--gpus", "2", *args, "--epochs", "300", "--events", "jsonl"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(json.loads(line))
        if seen[-1]["event"] == "epoch_end":
            break
    else:
        pytest.fail(f"no epoch: {process.stderr.read() if process.stderr else ''}")
    asked = time.monotonic()
    process.send_signal(signal.SIGTERM)  # the app's Stop
    out, err = process.communicate(timeout=240)
    events = seen + [json.loads(line) for line in out.splitlines()]
    assert process.returncode == 0, err[-2000:]
    final = events[-1]
    assert final["event"] == "stopped" and final["reason"] == "signal", events[-3:]
    assert Path(final["model"]).is_dir()
    exit_file = Path(load_record(project.root, Path(final["model"]).name).launch) / "exit.json"
    deadline = time.monotonic() + 120  # the final event is out; torchrun may still be tidying up
    while not exit_file.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert json.loads(exit_file.read_text())["code"] == 0  # torchrun ended as after a run: no worker cut short
    print(f"\nstopped after epoch {final['epoch']} in {time.monotonic() - asked:.1f} s")
