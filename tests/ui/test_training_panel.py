"""Training in the app: event parsing, the worker process, the recipe, the device explanation,
the dashboard fed recorded events, and a real tiny CPU run driven from the window (train,
stop, resume, kill, compare, make active) while annotating."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication
from training_fixtures import TINY, epoch_record, make_tiny_project, masks_digest, write_fake_run

import segstudio.ui.resources as resources
from segstudio.core.project import Project
from segstudio.core.runs import list_runs, read_run
from segstudio.core.saving import SaveOutcome, SaveResult
from segstudio.engine.config import TrainConfig, config_to_argv, resolve_config
from segstudio.ui import dialogs
from segstudio.ui.training.dashboard import Dashboard
from segstudio.ui.training.panel import TrainingPanel
from segstudio.ui.training.probe import DeviceReport, explain
from segstudio.ui.training.process import LineSplitter, TrainingProcess, parse_event_line
from segstudio.ui.training.recipe import default_options, resume_command, train_command
from segstudio.ui.training.runs_view import RunsView

# Lines as `segstudio train --events jsonl` wrote them in a real run (shortened per_class).
RECORDED = [
    '{"event":"run_started","time":1795252496.1,"run_id":"20261121-091456-unet-resnet18","run_dir":"/p/runs/r",'
    '"config":{"arch":"unet","encoder":"resnet18","batch_size":4,"crop_size":64},"device":"CPU (2 cores, 2 threads)",'
    '"device_type":"cpu","amp":"off","world_size":1,"train_images":8,"val_images":4,"classes":["Sky","Car"],'
    '"epochs":2,"steps_per_epoch":2,"start_epoch":0,"crop":[64,64]}',
    '{"event":"progress","time":1795252510.2,"epoch":1,"epochs":2,"step":1,"steps":2,"loss":2.61,"lr":0.003,'
    '"images_per_s":0.4}',
    '{"event":"epoch_end","time":1795252520.843,"epoch":1,"epochs":2,"train_loss":2.3897,"val_loss":5.4015,'
    '"miou":0.0457,"mean_dice":0.0647,"pixel_accuracy":0.0818,"mean_class_accuracy":0.149,'
    '"per_class":{"Sky":{"iou":0.462,"dice":0.632,"accuracy":0.625},"Car":{"iou":0.0259,"dice":0.0506,'
    '"accuracy":1.0},"Pole":{"iou":null,"dice":null,"accuracy":null}},"lr":0.003,"seconds":24.0,'
    '"images_per_s":0.372,"data_wait_share":0.0012,"peak_gpu_memory_mb":null,"best_miou":0.0457,"is_best":true}',
    '{"event":"checkpoint","time":1795252521.0,"epoch":1,"kind":"best","path":"/p/runs/r/checkpoints/best.safetensors"}',
]


# -- parsing ----------------------------------------------------------------------------------
def test_recorded_lines_parse_to_events() -> None:
    events = [parse_event_line(line.encode()) for line in RECORDED]
    assert [e["event"] for e in events] == ["run_started", "progress", "epoch_end", "checkpoint"]
    assert events[2]["per_class"]["Pole"]["iou"] is None
    assert events[0]["classes"] == ["Sky", "Car"]


@pytest.mark.parametrize("line", [
    b"Downloading: 100%|##########| 83.3M/83.3M",  # a library's progress bar
    b'{"event": "epoch_end", "epoch": 1, "miou": 0.',  # torn write
    b'{"epoch": 1}',  # JSON, but not an event
    b"[1, 2, 3]",
    b"\xff\xfe\x00garbage",
    b"NaN",
])
def test_malformed_lines_become_warnings(line: bytes) -> None:
    event = parse_event_line(line)
    assert event["event"] == "warning" and event["malformed"]
    assert "unexpected output" in event["message"]


def test_line_splitter_joins_chunks_and_keeps_partial_lines() -> None:
    splitter = LineSplitter()
    data = "\n".join(RECORDED).encode() + b"\n"
    lines: list[bytes] = []
    for start in range(0, len(data), 37):  # odd chunk sizes cut lines anywhere
        lines += splitter.feed(data[start:start + 37])
    assert [json.loads(line)["event"] for line in lines] == ["run_started", "progress", "epoch_end", "checkpoint"]
    assert splitter.feed(b'{"event":"warning","message":"half') == []
    assert splitter.flush() == [b'{"event":"warning","message":"half']


# -- the worker process, with stand-in children ------------------------------------------------
def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_process_reports_events_and_turns_junk_into_warnings(qtbot) -> None:
    worker = TrainingProcess()
    events: list[dict[str, Any]] = []
    worker.event_received.connect(events.append)
    script = f"""
        import sys
        print("some library chatter", flush=True)
        sys.stdout.write({RECORDED[0]!r} + "\\n" + {RECORDED[2][:50]!r}); sys.stdout.flush()
        sys.stdout.write({RECORDED[2][50:]!r} + "\\n")
        print('{{"event":"run_finished","epochs":1,"best_epoch":1,"best":null,"model":null,"run_dir":"x",'
              '"minutes":0.1,"reason":"completed"}}')
    """
    with qtbot.waitSignal(worker.finished, timeout=30_000) as blocker:
        worker.start(_python(script))
    final = blocker.args[0]
    assert [e["event"] for e in events] == ["warning", "run_started", "epoch_end", "run_finished"]
    assert events[0]["malformed"] and "some library chatter" in events[0]["message"]
    assert final["event"] == "run_finished" and final["exit_code"] == 0
    assert worker.run_dir == "/p/runs/r" and worker.state == "idle"


def test_a_dying_worker_is_explained_with_its_checkpoint(qtbot) -> None:
    worker = TrainingProcess()
    script = """
        import sys
        print('{"event":"checkpoint","epoch":1,"kind":"last","path":"/p/runs/r/checkpoints/last.safetensors"}',
              flush=True)
        print("RuntimeError: CUDA error: an illegal memory access was encountered", file=sys.stderr)
        sys.exit(3)
    """
    with qtbot.waitSignal(worker.finished, timeout=30_000) as blocker:
        worker.start(_python(script))
    message = blocker.args[0]["message"]
    assert blocker.args[0]["event"] == "error" and blocker.args[0]["exit_code"] == 3
    assert "exit code 3" in message and "illegal memory access" in message
    assert "last.safetensors" in message and "annotations are not affected" in message


@pytest.mark.skipif(sys.platform == "win32", reason="graceful stop is SIGTERM on POSIX")
def test_stop_is_graceful_first_and_kills_second(qtbot) -> None:
    worker = TrainingProcess()
    script = """
        import signal, sys, time
        def on_term(signum, frame):
            print('{"event":"warning","message":"asked to stop; finishing the step"}', flush=True)
        signal.signal(signal.SIGTERM, on_term)
        print('{"event":"progress","epoch":1,"epochs":9,"step":1,"steps":9,"loss":1.0}', flush=True)
        while True:
            time.sleep(0.05)  # a step that never ends: only a kill stops it
    """
    events: list[dict[str, Any]] = []
    worker.event_received.connect(events.append)
    worker.start(_python(script))
    qtbot.waitUntil(lambda: any(e["event"] == "progress" for e in events), timeout=30_000)
    assert worker.stop() == "stopping"
    qtbot.waitUntil(lambda: any(e["event"] == "warning" for e in events), timeout=10_000)
    assert worker.is_running() and worker.state == "stopping"
    with qtbot.waitSignal(worker.finished, timeout=10_000) as blocker:
        assert worker.stop() == "killed"
    assert blocker.args[0]["event"] == "error" and "killed on request" in blocker.args[0]["message"]
    assert not worker.is_running()


def test_a_warm_child_runs_the_cli_command_it_is_handed(qtbot, tmp_path: Path) -> None:
    worker = TrainingProcess()
    worker.prewarm(env={"SEGSTUDIO_WARM_NO_PRELOAD": "1"})
    qtbot.waitUntil(worker.is_warm, timeout=30_000)
    warm_pid = int(worker._warm.processId())  # noqa: SLF001
    events: list[dict[str, Any]] = []
    worker.event_received.connect(events.append)
    with qtbot.waitSignal(worker.finished, timeout=60_000) as blocker:
        worker.start([sys.executable, "-m", "segstudio", "--version"], workdir=tmp_path)
        assert worker.pid() == warm_pid and not worker.is_warm()
    # `segstudio --version` printed its line on stdout: not an event, so a warning.
    assert events[0]["event"] == "warning" and "segstudio" in events[0]["message"]
    assert blocker.args[0]["exit_code"] == 0 and "without finishing" in blocker.args[0]["message"]
    worker.prewarm(env={"SEGSTUDIO_WARM_NO_PRELOAD": "1"})
    qtbot.waitUntil(worker.is_warm, timeout=30_000)
    worker.drop_warm()  # closing stdin ends it
    assert not worker.is_warm()


@pytest.mark.skipif(sys.platform == "win32", reason="graceful stop is SIGTERM on POSIX")
def test_closing_during_a_run_asks_and_stops_it(qtbot, tmp_path: Path) -> None:
    from segstudio.ui.training.dock import TrainingDock

    dock = TrainingDock()
    qtbot.addWidget(dock)
    controller = dock.build()
    assert dock.confirm_close()  # nothing running: no question
    questions: list[str] = []
    answer = [False]
    controller.ask = lambda title, _text: questions.append(title) or answer[0]
    controller.process.start(_python("import time\nprint('{\"event\":\"progress\"}', flush=True)\ntime.sleep(60)"))
    qtbot.waitUntil(lambda: controller.process.pid() is not None, timeout=30_000)
    assert not dock.confirm_close() and controller.is_running()  # the user kept it
    answer[0] = True
    assert dock.confirm_close() and not controller.is_running()
    assert questions == ["Training is running", "Training is running"]


@pytest.mark.slow
def test_one_click_before_the_probe_answers_waits_for_the_device(qtbot, tmp_path: Path) -> None:
    from segstudio.ui.training.dock import TrainingDock

    project = make_tiny_project(tmp_path / "tiny", n_train=2, n_val=1)
    dock = TrainingDock()
    qtbot.addWidget(dock)
    controller = dock.build()
    controller.prewarm = False
    launched: list[list[str]] = []
    controller._launch = lambda command, _headline: launched.append(command) or True  # noqa: SLF001
    saved: list[bool] = []
    controller.set_project(project, lambda: saved.append(True) or SaveResult(SaveOutcome.SAVED))
    dock.panel.train_button.click()
    assert saved and not launched and "Checking" in dock.dashboard.headline.text()
    qtbot.waitUntil(lambda: bool(launched), timeout=240_000)  # the probe imports torch
    command = launched[0]
    report = controller.probe.report
    assert report is not None
    expected = default_options(report, 2)
    assert command[command.index("--encoder") + 1] == expected.encoder
    assert command[command.index("--crop-size") + 1] == str(expected.crop_size)


# -- recipe and device --------------------------------------------------------------------------
def test_one_click_recipe_follows_the_machine_and_the_data(tmp_path: Path) -> None:
    gpu = default_options(DeviceReport("cuda", "RTX", memory_mb=24_000), train_images=367)
    assert (gpu.arch, gpu.encoder, gpu.amp, gpu.crop_size, gpu.batch_size) == ("unet", "resnet34", "auto", 512, 16)
    small_gpu = default_options(DeviceReport("cuda", "laptop", memory_mb=4_000), train_images=367)
    assert small_gpu.batch_size < gpu.batch_size
    cpu = default_options(DeviceReport("cpu", "CPU"), train_images=367)
    assert (cpu.encoder, cpu.amp) == ("resnet18", "off") and cpu.crop_size < gpu.crop_size
    assert cpu.batch_size <= 4
    few = default_options(DeviceReport("cpu", "CPU"), train_images=20)
    assert few.epochs > cpu.epochs  # fewer images: more epochs for the same step budget
    command = train_command(tmp_path, cpu)
    assert command[:6] == [sys.executable, "-m", "segstudio", "train", str(tmp_path), "--events"]
    assert command[command.index("--encoder") + 1] == "resnet18" and "--amp" in command
    # the app passes its epochs explicitly, so it must pass the recipe's small-data shape too,
    # or the engine would take explicit epochs for a hand-made run (no rare-class crops)
    headless = resolve_config(TrainConfig(), "cpu", 367)
    assert command[command.index("--rare-crops") + 1] == str(headless.rare_crops) and headless.rare_crops > 0
    assert command[command.index("--val-share") + 1] == str(headless.val_share)
    resume = resume_command(tmp_path, "run-1", device="cpu", epochs=5)
    assert resume[resume.index("--resume") + 1] == "run-1" and resume[-2:] == ["--epochs", "5"]
    assert "--arch" not in resume  # a resumed run keeps its own recipe


@pytest.mark.parametrize(("facts", "device", "words"), [
    ({"nvidia_present": True, "torch_version": "2.5.0+cpu", "torch_cuda": None}, "cpu", "built without CUDA"),
    ({"nvidia_present": True, "torch_version": "2.5.0", "torch_cuda": "12.4",
      "cuda_error": "The NVIDIA driver on your system is too old (found version 11040)."}, "cpu", "too old"),
    ({"nvidia_present": True, "torch_cuda": "12.4", "cuda_visible_devices": ""}, "cpu", "CUDA_VISIBLE_DEVICES"),
    ({"apple_silicon": True, "mps_built": True, "mps_available": False, "mac_version": "12.1"}, "cpu", "12.3"),
    ({"apple_silicon": True, "mps_built": True, "mps_available": True}, "mps", ""),
    ({"cuda_available": True, "cuda_devices": [{"name": "H100", "memory_mb": 81_000}]}, "cuda", ""),
    ({"torch_error": "ImportError: libtorch_cpu.so"}, "cpu", "cannot be imported"),
])
def test_device_explanations(facts: dict[str, Any], device: str, words: str) -> None:
    report = explain(facts)
    assert report.device_type == device
    if words:
        assert words in report.reason and report.advice
    else:
        assert report.reason == ""


def test_panel_shows_the_device_reason_and_exposes_every_option(qtbot) -> None:
    panel = TrainingPanel()
    qtbot.addWidget(panel)
    panel.set_data({"train": 0, "val": 0})
    assert not panel.train_button.isEnabled()
    panel.set_data({"train": 30, "val": 5})
    panel.set_device(explain({"nvidia_present": True, "torch_version": "2.5.0+cpu", "torch_cuda": None}),
                     {"architectures": ["unet", "fpn", "segnet", "fcn8s"], "losses": ["ce", "dice"]})
    assert panel.train_button.isEnabled()
    assert "built without CUDA" in panel.device_note.text() and not panel.device_note.isHidden()
    assert "resnet18" in panel.recipe_label.text()
    panel.advanced.setChecked(True)
    advanced = panel.advanced
    advanced.arch.setCurrentText("segnet")
    advanced.loss.setCurrentText("dice")
    advanced.epochs.setValue(7)
    advanced.pretrained.setCurrentText("none")
    advanced.max_minutes.setValue(30)
    requested: list[Any] = []
    panel.train_requested.connect(requested.append)
    panel.train_button.click()
    args = config_to_argv(requested[0])
    assert args[args.index("--arch") + 1] == "segnet" and args[args.index("--loss") + 1] == "dice"
    assert args[args.index("--epochs") + 1] == "7" and args[args.index("--max-minutes") + 1] == "30"
    assert [advanced.arch.itemText(i) for i in range(advanced.arch.count())] == ["unet", "fpn", "segnet", "fcn8s"]
    assert "--refresh-data" not in args  # by default a run keeps the images it started with
    panel.live_data.setChecked(True)
    panel.train_button.click()
    assert "--refresh-data" in config_to_argv(requested[1])


# -- the dashboard, fed recorded events ----------------------------------------------------------
def test_dashboard_draws_curves_classes_previews_and_messages(qtbot, tmp_path: Path) -> None:
    dashboard = Dashboard()
    qtbot.addWidget(dashboard)
    dashboard.resize(700, 800)
    dashboard.show()
    dashboard.reset()
    dashboard.set_running(True)
    previews = []
    for index in range(2):
        path = tmp_path / f"epoch001_{index}.png"
        cv2.imwrite(str(path), np.full((40, 120, 3), 60 * index, np.uint8))
        previews.append(str(path))
    for line in RECORDED:
        dashboard.handle_event(parse_event_line(line))
    dashboard.handle_event({"event": "preview", "epoch": 1, "images": previews})
    dashboard.handle_event(parse_event_line(b"not an event"))
    assert "unet / resnet18" in dashboard.headline.text() and "8 train" in dashboard.headline.text()
    xs, ys = dashboard.curves["miou"].getData()
    assert list(xs) == [1.0] and ys[0] == pytest.approx(0.0457)
    assert dashboard.class_table.column_values(0) == ["Car", "Sky", "Pole"]  # worst first, n/a last
    assert "ETA" in dashboard.stats.text() and "img/s" in dashboard.stats.text()
    qtbot.waitUntil(lambda: dashboard.previews.loaded_count() == 2, timeout=10_000)
    assert dashboard.previews.shown_epoch == 1
    texts = [dashboard.messages.item(i).text() for i in range(dashboard.messages.count())]
    assert any("unexpected output" in t for t in texts) and any("best so far" in t for t in texts)
    dashboard.handle_event({"event": "error", "message": "CUDA out of memory; lower --batch-size"})
    assert "lower --batch-size" in dashboard.headline.text()
    assert dashboard.tabs.currentWidget() is dashboard.messages


def test_runs_view_compares_two_runs_and_sets_the_active_model(qtbot, tmp_path: Path) -> None:
    from segstudio.core.classes import ClassTable

    project = Project.create(tmp_path / "p", ClassTable.from_list([{"id": 0, "name": "a", "color": [1, 2, 3]}]))
    write_fake_run(project.root, "first", [epoch_record(1, 0.3, {"sky": 0.5, "car": 0.1}),
                                           epoch_record(2, 0.4, {"sky": 0.6, "car": 0.2})], model=True)
    write_fake_run(project.root, "second", [epoch_record(1, 0.5, {"sky": 0.7, "car": 0.3})], resumable=True)
    view = RunsView()
    qtbot.addWidget(view)
    view.set_project(project)
    assert sorted(run.run_id for run in view.runs) == ["first", "second"]
    view.select_runs(["first", "second"])
    assert view.class_table.columnCount() == 4  # class, first, second, difference
    headers = [view.class_table.horizontalHeaderItem(c).text() for c in range(4)]
    ids = headers[1:3]
    row = {view.class_table.item(r, 0).text(): r for r in range(view.class_table.rowCount())}["car"]
    diff = float(view.class_table.item(row, 3).text())
    expected = {"first": 0.2, "second": 0.3}
    assert diff == pytest.approx(expected[ids[1]] - expected[ids[0]], abs=1e-3)
    assert len(view.miou_plot.getPlotItem().listDataItems()) == 2
    assert not view.resume_button.isEnabled()  # two selected
    view.select_runs(["second"])
    assert view.resume_button.isEnabled() and not view.active_button.isEnabled()
    resumed: list[str] = []
    view.resume_requested.connect(resumed.append)
    view.resume_button.click()
    assert resumed == ["second"]
    view.select_runs(["first"])
    view.active_button.click()
    assert Project.open(project.root).settings["active_model"] == "models/first"
    assert view.table.item(view.runs.index(next(r for r in view.runs if r.run_id == "first")), 0).text().startswith("★")


# -- a real tiny run, from the window ------------------------------------------------------------
def _drag(window: Any, points: list[tuple[int, int]]) -> None:
    canvas = window.canvas
    viewport = canvas.viewport()
    left = Qt.MouseButton.LeftButton
    for index, (x, y) in enumerate(points):
        kind = (QEvent.Type.MouseButtonPress if index == 0 else
                QEvent.Type.MouseButtonRelease if index == len(points) - 1 else QEvent.Type.MouseMove)
        pos = canvas.viewportTransform().map(QPointF(x + 0.5, y + 0.5))
        buttons = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseButtonRelease else left
        button = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove else left
        QApplication.sendEvent(viewport, QMouseEvent(kind, pos, QPointF(viewport.mapToGlobal(pos.toPoint())),
                                                     button, buttons, Qt.KeyboardModifier.NoModifier))


@pytest.mark.slow
def test_train_stop_resume_and_kill_from_the_window(qtbot, tmp_path: Path, monkeypatch) -> None:
    from segstudio.ui.main_window import MainWindow

    monkeypatch.setattr(resources, "user_data_dir", lambda: tmp_path / "appdata")
    monkeypatch.setattr(dialogs, "show_error", lambda *_: None)
    project = make_tiny_project(tmp_path / "tiny")
    extra = project.add_image(project.image_path(project.images[0]), split="train")  # labelled mid-run
    project.write_mask(extra, project.read_mask(project.images[0]))
    project.save()
    window = MainWindow()
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    assert window.open_project(project.root)
    hook = window.training
    controller = hook.show()
    controller.process.nice = 0  # tests want the CPU; the app yields it to the UI
    events: list[dict[str, Any]] = []
    controller.process.event_received.connect(events.append)
    panel, dashboard = hook.dock.panel, hook.dock.dashboard
    assert panel.counts == {"train": 8, "val": 4}
    panel.advanced.setChecked(True)
    panel.advanced.load(TINY.__class__(**{**TINY.__dict__, "epochs": 20}))

    def kinds() -> list[str]:
        return [e["event"] for e in events]

    # 1. Train from the panel; stop gracefully after the first epoch.
    panel.train_button.click()
    assert controller.is_running() and not panel.train_button.isEnabled()
    qtbot.waitUntil(lambda: "epoch_end" in kinds(), timeout=240_000)
    runs = hook.dock.runs_view
    assert [runs.table.item(r, 2).text() for r in range(runs.table.rowCount())] == ["running"]
    controller.stop()
    assert panel.stop_button.text() == "Kill now"
    # Annotate while it winds down: paint on the canvas, mark the extra image done.
    _drag(window, [(5, 5), (20, 10), (30, 20)])
    assert window.workspace.session.save().saved
    window.workspace.session.set_status("labeled", extra.id)
    qtbot.waitUntil(lambda: not controller.is_running(), timeout=120_000)
    assert "stopped" in kinds() and "Stopped" in dashboard.headline.text()
    qtbot.waitUntil(lambda: dashboard.previews.loaded_count() == 4, timeout=20_000)
    assert len(dashboard.curves["miou"].getData()[0]) >= 1
    first = read_run(Path(controller.process.run_dir))
    assert first.status == "stopped" and first.resumable and first.snapshot["counts"] == {"train": 8, "val": 4}
    stopped_at = first.completed_epochs
    digest = masks_digest(project)

    # 2. Resume it from the Runs tab; it trains on the image labelled meanwhile. Kill its
    #    worker after an epoch: the error is shown, the window and the annotations live on.
    events.clear()
    runs.select_runs([first.run_id])
    assert runs.resume_button.isEnabled()
    runs.resume_requested.disconnect()
    runs.resume_requested.connect(lambda run_id: controller.resume(run_id, epochs=stopped_at + 3))
    runs.resume_button.click()
    qtbot.waitUntil(lambda: "epoch_end" in kinds(), timeout=240_000)
    os.kill(controller.process.pid(), signal.SIGKILL)
    qtbot.waitUntil(lambda: not controller.is_running(), timeout=30_000)
    started = next(e for e in events if e["event"] == "run_started")
    assert started["start_epoch"] == stopped_at and started["train_images"] == 9
    assert [e["epoch"] for e in events if e["event"] == "epoch_end"][0] == stopped_at + 1
    assert kinds()[-1] == "error" and "Training failed" in dashboard.headline.text()
    last = dashboard.messages.item(dashboard.messages.count() - 1).text()
    assert "died" in last and "annotations are not affected" in last and "last.safetensors" in last
    killed = read_run(first.run_dir)
    assert killed.status == "failed" and killed.resumable
    assert killed.snapshot["counts"]["train"] == 8 and killed.snapshot["resumes"][0]["counts"]["train"] == 9
    assert killed.completed_epochs == stopped_at + 1  # its curves grew by the resumed epoch
    assert masks_digest(project) == digest  # nothing of the annotations moved
    assert window.workspace.open_image(project.images[1].id)  # the window keeps working
    assert panel.train_button.isEnabled()

    # 3. The run's best model becomes the project's active model.
    runs.select_runs([first.run_id])
    assert len(runs.miou_plot.getPlotItem().listDataItems()) == 1
    runs.active_button.click()
    assert Project.open(project.root).settings["active_model"] == f"models/{first.run_id}"
    assert [r.run_id for r in list_runs(project.root)] == [first.run_id]
    window.close()
