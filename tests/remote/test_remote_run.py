"""Tiny CPU runs started on the test server over ssh: events stream back, a dropped connection
is re-attached with no event lost or doubled, a stop is graceful, and the model comes home."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import HOST

from segstudio.cli.main import main
from segstudio.core.runs import read_run
from segstudio.remote.hosts import HostConfig
from segstudio.remote.runs import load_record
from segstudio.remote.stream import ConnectionLost, EventStream

sys.path.insert(0, str(Path(__file__).resolve().parent))
from remote_builders import make_project  # noqa: E402

TINY = ["--device", "cpu", "--arch", "unet", "--encoder", "resnet18", "--pretrained", "none",
        "--batch-size", "4", "--crop-size", "64", "--lr", "2e-3", "--augment", "light", "--loss", "ce",
        "--workers", "0", "--seed", "1", "--patience", "0", "--cache-mb", "16"]

pytestmark = pytest.mark.slow


def _median_ms(values: list[float]) -> float:
    return sorted(values)[len(values) // 2] * 1000 if values else float("nan")


def test_a_remote_run_streams_survives_a_drop_and_comes_home(host: HostConfig, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from segstudio.engine.modelfile import load_model
    from segstudio.remote.runs import launch_run

    project = make_project(tmp_path / "proj", n_train=4, n_val=2)
    launched = launch_run(project, host, [*TINY, "--epochs", "4"], device="cpu")
    run = launched.run
    assert load_record(project.root, run.run_id) == run
    got: list[dict] = []

    def on_event(event: dict) -> None:
        got.append(event)
        if event["event"] == "epoch_end" and stream.process is not None:
            stream.process.kill()  # the laptop's lid closes: the ssh client dies

    stream = EventStream(run, on_event)
    with pytest.raises(ConnectionLost, match=f"lost the connection to host {HOST} after .*runs attach"):
        stream.follow()
    assert got and got[0]["event"] == "run_started" and got[-1]["event"] != "run_finished"
    capsys.readouterr()
    assert main(["runs", "attach", str(project.root), run.run_id, "--events", "jsonl"]) == 0
    captured = capsys.readouterr()
    rest = [json.loads(line) for line in captured.out.splitlines()]
    remote_lines = (Path(run.launch) / "events.jsonl").read_text().splitlines()
    assert run.events_path.read_text().splitlines() == remote_lines  # the same lines, in order
    events = got + rest
    assert [(e["event"], e["time"]) for e in events] == [(json.loads(x)["event"], json.loads(x)["time"])
                                                         for x in remote_lines]  # none lost, none doubled
    assert [e["epoch"] for e in events if e["event"] == "epoch_end"] == [1, 2, 3, 4]
    final = events[-1]
    assert final["event"] == "run_finished"
    model_dir = project.root / "models" / run.run_id
    assert final["model"] == str(model_dir) and final["run_dir"] == str(run.local_dir)
    model, config = load_model(model_dir)
    assert config.classes and sum(p.numel() for p in model.parameters()) > 0
    previews = [p for e in events if e["event"] == "preview" for p in e["images"]]
    assert previews and all(Path(p).is_file() for p in previews)
    info = read_run(run.local_dir)
    assert info.status == "finished" and info.completed_epochs == 4 and info.model_dir == model_dir
    assert json.loads((run.local_dir / "remote.json").read_text())["host"] == HOST
    latency = _median_ms(stream.latencies)
    print(f"\nevent latency host -> here: median {latency:.0f} ms over {len(stream.latencies)} events; "
          f"{captured.err.strip().splitlines()[-1]}")


def test_train_host_prints_like_a_local_run_and_stops_gracefully(host: HostConfig, tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", n_train=4, n_val=2)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]), OMP_NUM_THREADS="1")
    process = subprocess.Popen(
        ["nice", "-n", "19", sys.executable, "-m", "segstudio", "train", str(project.root), "--host", HOST,
         *TINY, "--epochs", "300"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stderr is not None
    lines: list[str] = []
    for line in process.stderr:
        lines.append(line.rstrip("\n"))
        if line.startswith("epoch 1/300:"):
            break
    else:
        pytest.fail("no epoch line: " + "\n".join(lines))
    asked = time.monotonic()
    process.send_signal(signal.SIGTERM)  # as the app's Stop does
    _, rest = process.communicate(timeout=240)
    lines += rest.splitlines()
    text = "\n".join(lines)
    assert process.returncode == 0, text
    assert "segtest: sent 13 of 13 files" in text and "started on segtest" in text
    assert any(line.startswith("run ") and "(amp off): 4 train / 2 val images" in line for line in lines), text
    assert "stopping the run on segtest" in text
    stopped = next(line for line in lines if line.startswith("stopped after epoch"))
    run_id = next(p.name for p in (project.root / "runs").iterdir())
    record = load_record(project.root, run_id)
    final = record.localize(json.loads(record.events_path.read_text().splitlines()[-1]))  # kept as the host wrote it
    assert final["event"] == "stopped" and final["reason"] == "signal"
    assert final["model"] == str(project.root / "models" / run_id)
    assert (project.root / "models" / run_id / "config.json").is_file()
    remote_ckpt = Path(record.mirror) / "runs" / run_id / "checkpoints" / "last.pt"
    assert remote_ckpt.is_file()  # saved there, resumable with --resume on the host
    print(f"\n{stopped}; stop -> results here in {time.monotonic() - asked:.1f} s")
