"""Training on a host from the app: the "Run on" list and the command it starts, a lost
connection offered for re-attach (also after a restart), two Stops forwarded to the host;
and, slow, a real run through the tests' own sshd on 127.0.0.1: events reach the dashboard,
the local child dies, Re-attach continues the curves with no point lost or doubled, a mask
saved meanwhile reaches the host's mirror and the next epoch, the model comes back."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import signal
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from training_fixtures import TINY, epoch_record, write_fake_run

from segstudio.core.classes import ClassTable
from segstudio.core.project import Project
from segstudio.engine.config import config_to_argv
from segstudio.remote.hosts import HostConfig, HostRegistry
from segstudio.remote.probe import HostReport
from segstudio.ui.training.probe import DeviceReport
from segstudio.ui.training.recipe import attach_command

REMOTE_TESTS = Path(__file__).resolve().parents[1] / "remote"


def _host_report(name: str, gpus: tuple[tuple[str, int], ...]) -> HostReport:
    from segstudio import __version__

    return HostReport(host=name, seconds=0.1, python="3.11.9", executable="/x/python", configured_python=True,
                      segstudio=__version__, torch="2.5.0", cuda=bool(gpus), gpus=gpus, disk_free=int(400e9),
                      disk_path="/data", home="/home/u")


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HostRegistry:
    monkeypatch.setenv("SEGSTUDIO_CONFIG_DIR", str(tmp_path / "config"))
    registry = HostRegistry()
    registry.put(HostConfig("gpu-box"))
    registry.put(HostConfig("cpu-box"))
    return registry


def _dock(qtbot: Any) -> Any:
    from segstudio.ui.training.dock import TrainingDock

    dock = TrainingDock()
    qtbot.addWidget(dock)
    controller = dock.build()
    controller.prewarm = False
    return dock, controller


def _labelled_project(root: Path, n: int = 3) -> Project:
    import numpy as np
    from PIL import Image

    project = Project.create(root, ClassTable.from_names(["background", "box"]), name="p")
    (root / "images").mkdir()
    for index in range(n):
        path = root / "images" / f"i{index}.png"
        Image.fromarray(np.full((16, 16, 3), 40 * index, np.uint8)).save(path)
        record = project.add_image(path, split="train")
        project.write_mask(record, np.eye(16, dtype=np.uint8), status="labeled", save_manifest=False)
    project.save()
    return project


# -- without SSH --------------------------------------------------------------------------------
def test_run_on_lists_the_hosts_and_starts_the_host_command(qtbot, tmp_path: Path, registry: HostRegistry) -> None:
    dock, controller = _dock(qtbot)
    panel = dock.panel
    project = _labelled_project(tmp_path / "proj")
    controller.set_project(project, None)
    assert [panel.run_on.itemText(i) for i in range(panel.run_on.count())] == [
        "This computer", "cpu-box (SSH host)", "gpu-box (SSH host)"]
    assert panel.host() is None
    launched: list[tuple[list[str], str | None]] = []
    controller._launch = lambda command, _headline, host=None, attach=None: (  # noqa: SLF001
        launched.append((command, host)) or True)
    controller.host_probes.start = lambda name, again=False: None  # no ssh here: answers come below
    controller.probe.report = DeviceReport("cpu", "CPU (2 cores)")  # no torch import here either

    panel.set_host("gpu-box")
    assert "asking host gpu-box" in panel.device_label.text()
    panel.live_data.setChecked(True)
    panel.train_button.click()  # before the host answered: it waits for the answer
    assert not launched and "Asking host gpu-box" in dock.dashboard.headline.text()
    controller.host_probes._on_job_done("gpu-box", _host_report("gpu-box", (("NVIDIA A100", 81920),)))  # noqa: SLF001
    assert "NVIDIA A100 on gpu-box" in panel.device_label.text() and "80 GB" in panel.device_label.text()
    command, host = launched[-1]
    options = panel.options()
    assert host == "gpu-box" and options.device == "auto" and options.refresh_data
    assert command[1:8] == ["-m", "segstudio", "train", str(project.root.resolve()), "--events", "jsonl", "--host"]
    assert command[8] == "gpu-box" and command[9:] == config_to_argv(options) and "--refresh-data" in command
    assert controller.mirror_sync.target == (project.root, "gpu-box")  # saved masks will follow the run

    # A host without a GPU: its CPU, said in the panel, and --device cpu (the host check refuses 'auto').
    controller.host_probes._on_job_done("cpu-box", _host_report("cpu-box", ()))  # noqa: SLF001
    panel.set_host("cpu-box")
    assert "CPU of cpu-box" in panel.device_label.text() and "no GPU" in panel.device_note.text()
    panel.train_button.click()
    command, host = launched[-1]
    assert host == "cpu-box" and command[command.index("--device") + 1] == "cpu"

    # Back to this computer: the plain local command.
    panel.set_host(None)
    assert "CPU (2 cores)" in panel.device_label.text()
    panel.train_button.click()
    command, host = launched[-1]
    assert host is None and "--host" not in command
    # A host added on the command line meanwhile shows up when the list opens.
    registry.put(HostConfig("lab"))
    panel.hosts_wanted.emit()
    assert panel.run_on.findData("lab") > 0
    assert attach_command(project.root, "r1")[3:] == ["runs", "attach", str(project.root.resolve()), "r1",
                                                      "--events", "jsonl", "--replay"]


def _fake_remote_child(run_dir: Path, code: str) -> list[str]:
    """A stand-in for `segstudio train --host`: the launch line, a start, one epoch, then `code`."""
    started = {"event": "run_started", "time": time.time(), "run_id": run_dir.name, "run_dir": str(run_dir),
               "config": {"arch": "unet", "encoder": "resnet18"}, "epochs": 5, "start_epoch": 0}
    epoch = epoch_record(1, 0.25, {"a": 0.5, "b": 0.0})
    script = f"""
        import json, signal, sys, time
        print("run {run_dir.name} started on gpu-box; it goes on if this ends", file=sys.stderr, flush=True)
        print(json.dumps({started!r}), flush=True)
        print(json.dumps({epoch!r}), flush=True)
        {textwrap.indent(textwrap.dedent(code), '        ').strip()}
    """
    return [sys.executable, "-c", textwrap.dedent(script)]


def test_a_lost_connection_is_offered_for_reattach_also_after_a_restart(qtbot, tmp_path: Path,
                                                                       registry: HostRegistry) -> None:
    project = _labelled_project(tmp_path / "proj")
    run_dir = write_fake_run(project.root, "r-on-gpu", [epoch_record(1, 0.25, {"a": 0.5})], epochs=5)
    (run_dir / "remote.json").write_text(json.dumps({"run_id": "r-on-gpu", "host": "gpu-box", "mirror": "/m"}))
    write_fake_run(project.root, "local-run", [epoch_record(1, 0.3, {"a": 0.5})], epochs=1)
    dock, controller = _dock(qtbot)
    controller.set_project(project, None)
    panel, runs = dock.panel, dock.runs_view
    assert panel.detached.isVisibleTo(panel) and "r-on-gpu on gpu-box goes on there" in panel.detached_label.text()
    where = {runs.table.item(r, 0).text(): (runs.table.item(r, 2).text(), runs.table.item(r, 7).text())
             for r in range(runs.table.rowCount())}
    assert where == {"r-on-gpu": ("going on there (re-attach)", "gpu-box"), "local-run": ("finished", "this computer")}

    # Following it: the child says where, streams, then loses the host (exit 3, as the CLI does).
    lost = ('print(json.dumps({"event": "warning", "time": 1.0, "message": "lost the connection to host '
            'gpu-box after 2 events"}), flush=True)\nsys.exit(3)')
    with qtbot.waitSignal(controller.run_ended, timeout=30_000) as ended:
        controller._launch(_fake_remote_child(run_dir, lost), "Starting", host="gpu-box")  # noqa: SLF001
    assert ended.args[0]["event"] == "connection_lost" and ended.args[0]["run_id"] == "r-on-gpu"
    assert panel.detached.isVisibleTo(panel)
    assert "Connection to gpu-box lost; the run goes on there" in panel.detached_label.text()
    assert "Training failed" not in dock.dashboard.headline.text()
    assert [r["epoch"] for r in dock.dashboard.epoch_records] == [1]  # what came is kept on screen
    assert not (run_dir / "outcome.json").exists()  # not recorded as failed: it is not over
    launched: list[list[str]] = []
    controller._launch = lambda command, _h, host=None, attach=None: launched.append(command) or True  # noqa: SLF001
    panel.reattach_button.click()
    assert launched == [attach_command(project.root, "r-on-gpu")]

    # After a restart (a new dock on the same project): the Runs tab and the panel offer it.
    dock2, controller2 = _dock(qtbot)
    controller2.set_project(Project.open(project.root), None)
    assert dock2.panel.detached.isVisibleTo(dock2.panel)
    dock2.runs_view.select_runs(["r-on-gpu"])
    assert dock2.runs_view.reattach_button.isEnabled()
    dock2.runs_view.select_runs(["local-run"])
    assert not dock2.runs_view.reattach_button.isEnabled()


def test_a_host_run_that_ended_unfinished_resumes_on_its_host(qtbot, tmp_path: Path, registry: HostRegistry) -> None:
    project = _labelled_project(tmp_path / "proj")
    for run_id, outcome in (("gone", {"event": "error", "unfinished": "restarted", "message": "the run gone on "
                                      "host gpu-box ended without finishing"}), ("going", None)):
        run_dir = write_fake_run(project.root, run_id, [epoch_record(1, 0.25, {"a": 0.5})], epochs=5)
        (run_dir / "remote.json").write_text(json.dumps({"run_id": run_id, "host": "gpu-box", "mirror": "/m"}))
        if outcome:
            (run_dir / "outcome.json").write_text(json.dumps(outcome))
    dock, controller = _dock(qtbot)
    controller.set_project(project, None)
    launched: list[tuple[list[str], str | None]] = []
    controller._launch = lambda command, _h, host=None, attach=None: (  # noqa: SLF001
        launched.append((command, host)) or True)
    runs = dock.runs_view
    runs.select_runs(["going"])  # may still run there: re-attach, not resume
    assert not runs.resume_button.isEnabled() and runs.reattach_button.isEnabled()
    runs.select_runs(["gone"])  # no checkpoint here: it is on the host, and the run resumes there
    assert runs.resume_button.isEnabled() and not runs.reattach_button.isEnabled()
    runs.resume_button.click()
    command, host = launched[-1]
    assert host == "gpu-box"
    assert command[1:] == ["-m", "segstudio", "train", str(project.root.resolve()), "--events", "jsonl",
                           "--resume", "gone", "--host", "gpu-box"]  # the host's device, not this computer's


def test_closing_the_app_during_a_remote_run_leaves_the_run_on_its_host(qtbot, tmp_path: Path,
                                                                        registry: HostRegistry) -> None:
    project = _labelled_project(tmp_path / "proj")
    dock, controller = _dock(qtbot)
    controller.set_project(project, None)
    asked: list[str] = []
    controller.ask = lambda title, _text: asked.append(title) or False
    signals: list[int] = []
    with qtbot.waitSignal(controller.process.event_received, timeout=30_000):
        controller._launch(_fake_remote_child(project.root / "runs" / "r", "time.sleep(60)"),  # noqa: SLF001
                           "Starting", host="gpu-box")
    controller.process.stop = lambda: signals.append(1) or "stopping"  # a stop would reach the host
    with qtbot.waitSignal(controller.run_ended, timeout=30_000) as ended:
        assert dock.confirm_close()
    assert not asked and not signals and not controller.is_running()
    assert ended.args[0]["event"] == "connection_lost"


@pytest.mark.skipif(sys.platform == "win32", reason="signals are POSIX")
def test_two_stops_of_a_remote_run_are_two_signals_to_the_child(qtbot, tmp_path: Path) -> None:
    """The child forwards them: the first asks the host to stop, the second to kill; the local
    child is never killed itself, so it can bring the results home."""
    from segstudio.ui.training.process import TrainingProcess

    worker = TrainingProcess()
    worker.remote = True
    got: list[dict[str, Any]] = []
    worker.event_received.connect(got.append)
    code = """
        count = []
        def on_term(signum, frame):
            count.append(signum)
            print(json.dumps({"event": "warning", "time": 1.0, "message": f"signal {len(count)}"}), flush=True)
            if len(count) == 2:
                print(json.dumps({"event": "error", "time": 2.0, "message": "killed on the host"}), flush=True)
                sys.exit(1)
        signal.signal(signal.SIGTERM, on_term)
        for _ in range(600):
            time.sleep(0.05)
    """
    worker.start(_fake_remote_child(tmp_path / "runs" / "r", code))
    qtbot.waitUntil(lambda: any(e["event"] == "epoch_end" for e in got), timeout=30_000)
    assert worker.remote_run_id == "r"
    assert worker.stop() == "stopping"
    qtbot.waitUntil(lambda: any(e.get("message") == "signal 1" for e in got), timeout=10_000)
    with qtbot.waitSignal(worker.finished, timeout=30_000) as blocker:
        assert worker.stop() == "killed"
    assert blocker.args[0]["event"] == "error" and blocker.args[0]["exit_code"] == 1  # the child's own end


# -- through a real sshd on 127.0.0.1 -------------------------------------------------------------
def _remote_fixtures() -> Any:
    spec = importlib.util.spec_from_file_location("remote_sshd_fixtures", REMOTE_TESTS / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


_sshd = _remote_fixtures()
ssh_server = _sshd.ssh_server
remote_env = _sshd.remote_env
host = _sshd.host


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_train_on_a_host_from_the_panel_drop_reattach_and_the_live_loop(qtbot, tmp_path: Path,
                                                                        host: HostConfig) -> None:
    import numpy as np

    sys.path.insert(0, str(REMOTE_TESTS))
    from remote_builders import make_project

    from segstudio.remote.runs import load_record

    project = make_project(tmp_path / "proj", n_train=4, n_val=2)
    dock, controller = _dock(qtbot)
    controller.process.nice = 0
    controller.set_project(project, None)
    panel, dashboard, runs = dock.panel, dock.dashboard, dock.runs_view
    panel.set_host(host.name)
    qtbot.waitUntil(lambda: panel.device is not None, timeout=120_000)  # the host's probe, in the background
    assert f"CPU of {host.name}" in panel.device_label.text()  # the test host has no GPU
    panel.advanced.setChecked(True)
    # 40 steps an epoch: the run must still be going when the image labelled below reaches the
    # host's mirror (6 one-step epochs could end within the sync on an idle machine)
    panel.advanced.load(replace(TINY, epochs=6, crop_size=64, min_epoch_steps=40))
    panel.live_data.setChecked(True)
    events: list[dict[str, Any]] = []
    latencies: list[float] = []

    def on_event(event: dict[str, Any]) -> None:
        events.append(event)
        if isinstance(event.get("time"), float) and event["event"] in ("epoch_end", "progress"):
            latencies.append(time.time() - event["time"])

    controller.process.event_received.connect(on_event)
    panel.train_button.click()
    assert controller.process.remote
    qtbot.waitUntil(lambda: any(e["event"] == "epoch_end" for e in events), timeout=300_000)
    run_id = controller.process.remote_run_id
    assert run_id and dashboard.epoch_records
    record = load_record(project.root, run_id)
    launch = json.loads((Path(record.launch) / "launch.json").read_text())
    assert "--refresh-data" in launch["argv"]  # the host's trainer re-reads its mirror each epoch

    # The live loop: an image labelled here during the run reaches the mirror and the next epoch.
    extra = project.add_image(project.image_path(project.images[0]), split="train")
    project.write_mask(extra, np.ones((64, 80), np.uint8), status="labeled")
    controller.refresh_data_soon()  # what the window does on the workspace's mask_saved
    mirror_mask = Path(record.mirror) / "masks" / f"{extra.id}.png"
    qtbot.waitUntil(lambda: bool(controller.mirror_sync.results), timeout=60_000)
    assert _sha(mirror_mask) == _sha(project.mask_path(extra))
    assert controller.mirror_sync.results[-1].files_sent == 3  # its image, its mask, the manifest

    # The lid closes: the local child dies; the run goes on on the host.
    with qtbot.waitSignal(controller.run_ended, timeout=60_000) as ended:
        os.kill(controller.process.pid(), signal.SIGKILL)
    assert ended.args[0]["event"] == "connection_lost"
    assert f"Connection to {host.name} lost; the run goes on there" in panel.detached_label.text()
    seen = [r["epoch"] for r in dashboard.epoch_records]

    # The app restarts (a new dock on the same project) and re-attaches from the panel.
    dock2, controller2 = _dock(qtbot)
    controller2.process.nice = 0
    controller2.set_project(Project.open(project.root), None)
    assert dock2.panel.detached.isVisibleTo(dock2.panel) and controller2.detached_run == run_id
    replayed: list[dict[str, Any]] = []
    controller2.process.event_received.connect(replayed.append)
    with qtbot.waitSignal(controller2.run_ended, timeout=600_000) as ended:
        dock2.panel.reattach_button.click()
    final = ended.args[0]
    assert final["event"] == "run_finished", final
    epochs = [r["epoch"] for r in dock2.dashboard.epoch_records]
    assert epochs == [1, 2, 3, 4, 5, 6] and epochs[:len(seen)] == seen  # none lost, none doubled
    refreshed = [e["message"] for e in replayed if e["event"] == "warning" and "refreshed" in e.get("message", "")]
    assert refreshed and "5 training images (was 4)" in refreshed[0]
    model_dir = project.root / "models" / run_id
    assert final["model"] == str(model_dir) and (model_dir / "config.json").is_file()
    runs2 = dock2.runs_view
    row = next(r for r in range(runs2.table.rowCount()) if runs2.table.item(r, 0).text() == run_id)
    assert runs2.table.item(row, 2).text() == "finished" and runs2.table.item(row, 7).text() == host.name
    assert not dock2.panel.detached.isVisibleTo(dock2.panel)
    runs2.select_runs([run_id])
    runs2.active_button.click()
    assert Project.open(project.root).settings["active_model"] == f"models/{run_id}"
    latencies.sort()
    print(f"\nevent latency host -> dashboard: median {latencies[len(latencies) // 2] * 1000:.0f} ms, "
          f"max {latencies[-1] * 1000:.0f} ms over {len(latencies)} events; mirror syncs "
          f"{[r.bytes_sent for r in controller.mirror_sync.results]} bytes")
    _ = runs
