"""Model in the loop inside the window, offscreen: predict in the background, show the
layers, accept (all, unlabelled, a clicked region), undo, pre-label, review queue, export."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from segstudio.core.project import Project
from segstudio.ui import dialogs, resources
from segstudio.ui.main_window import MainWindow

SAMPLE = Path(__file__).resolve().parents[2] / "segstudio" / "resources" / "sample"
LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    """The built-in CamVid sample (24 frames, 240x180), cut to 6 images to stay fast."""
    if not (SAMPLE / "project.json").is_file():
        pytest.skip(f"sample project missing at {SAMPLE}")
    root = tmp_path / "sample"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("runs", "models", ".cache"))
    project = Project.open(root)
    keep = project.images[:6]
    for record in project.images[6:]:
        project.remove_image(record.id)
    for record in keep[3:]:  # three images nobody has labelled
        project.delete_mask(record)
        project.update_image(record.id, status="unlabeled")
    project.save()
    return root


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised SegNet-basic for the sample's classes, saved as a model file."""
    torch = pytest.importorskip("torch")
    from segstudio.engine.modelfile import ModelConfig, save_model
    from segstudio.engine.models.registry import ModelSpec, create_model

    project = Project.open(SAMPLE)
    torch.manual_seed(0)
    spec = ModelSpec("segnet_basic", num_classes=len(project.classes.trainable))
    model = create_model(spec).eval()
    folder = tmp_path_factory.mktemp("model") / "tiny"
    save_model(folder, model, ModelConfig.from_spec(spec, project.classes))
    return folder


@pytest.fixture
def window(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MainWindow:
    monkeypatch.setattr(resources, "user_data_dir", lambda: tmp_path / "appdata")
    monkeypatch.setattr(dialogs, "show_error", lambda *_: None)
    monkeypatch.setenv("SEGSTUDIO_DEVICE", "cpu")
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1300, 850)
    win.show()
    qtbot.waitExposed(win)
    return win


def _loop(window: MainWindow):  # noqa: ANN202
    return window.model


def _click(window: MainWindow, x: int, y: int) -> None:
    canvas, viewport = window.canvas, window.canvas.viewport()
    pos = canvas.viewportTransform().map(QPointF(x + 0.5, y + 0.5))
    for kind, buttons in ((QEvent.Type.MouseButtonPress, LEFT), (QEvent.Type.MouseButtonRelease, Qt.MouseButton.NoButton)):
        event = QMouseEvent(kind, pos, QPointF(viewport.mapToGlobal(pos.toPoint())), LEFT, buttons,
                            Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(viewport, event)


def test_predict_show_accept_undo_in_the_window(qtbot, window: MainWindow, sample_copy: Path,
                                                 tiny_model: Path) -> None:
    loop = _loop(window)
    assert window.open_project(sample_copy)
    controller, session = loop.controller, window.workspace.session
    assert controller.session is session and loop.dock.isVisible()
    assert controller.set_model(tiny_model)
    labelled_id = session.current_id
    original = session.document.mask.copy()
    assert (original != session.project.classes.unlabeled_id).any()

    assert controller.predict_current()
    assert controller.busy and loop.dock.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not controller.busy, timeout=120_000)
    prediction = controller.prediction()
    assert prediction is not None and prediction.shape == original.shape
    assert (controller.cache.path(labelled_id)).is_file()
    # the prediction is a layer, not the mask
    np.testing.assert_array_equal(session.document.mask, original)
    layers = window.canvas._extra
    assert "prediction" in layers and layers["prediction"].width == original.shape[1]

    loop.dock.show_disagreement.setChecked(True)
    loop.dock.confidence_combo.setCurrentIndex(2)  # entropy
    assert {"prediction", "confidence", "disagreement"} <= set(window.canvas._extra)
    assert loop.actions["toggle_disagreement"].isChecked() and loop.actions["toggle_confidence"].isChecked()

    # accept all: one undoable edit, status predicted; undo restores the mask exactly
    loop.actions["accept_all"].trigger()
    unlabeled = session.project.classes.unlabeled_id
    keep = prediction.labels != unlabeled
    np.testing.assert_array_equal(session.document.mask[keep], prediction.labels[keep])
    assert session.project.image(labelled_id).status == "predicted"
    window.commands["undo"].trigger()
    np.testing.assert_array_equal(session.document.mask, original)

    # accept one clicked region: exactly the predicted component under the click
    loop.dock.accept_region_button.setChecked(True)
    ys, xs = np.nonzero(prediction.labels != original)
    x, y = int(xs[len(xs) // 2]), int(ys[len(ys) // 2])
    from segstudio.core.loop import accept_region

    expected = accept_region(original, prediction.labels, x, y, unlabeled)
    _click(window, x, y)
    changed = session.document.mask != original
    want = np.zeros_like(changed)
    want[expected.region.slices] = expected.where & (original[expected.region.slices] != prediction.labels[expected.region.slices])
    np.testing.assert_array_equal(changed, want)
    assert changed.any()
    window.commands["undo"].trigger()
    np.testing.assert_array_equal(session.document.mask, original)
    loop.dock.accept_region_button.setChecked(False)

    # confirm reviewed, and the effort meter saw the save
    assert controller.confirm_reviewed()
    assert session.project.image(labelled_id).status == "reviewed"
    assert controller.effort.entries[labelled_id].labelled == int((original != unlabeled).sum())
    assert "Effort" in loop.dock.effort_label.text()


def test_prelabel_queue_and_effort(qtbot, window: MainWindow, sample_copy: Path, tiny_model: Path) -> None:
    loop = _loop(window)
    assert window.open_project(sample_copy)
    controller, session = loop.controller, window.workspace.session
    project = session.project
    controller.set_model(tiny_model)
    unlabelled = [r.id for r in project.images_where(statuses=("unlabeled",))]
    assert len(unlabelled) == 3
    loop.actions["prelabel_all"].trigger()
    qtbot.waitUntil(lambda: not controller.busy, timeout=120_000)
    for image_id in unlabelled:
        assert project.image(image_id).status == "predicted"
        np.testing.assert_array_equal(project.read_mask(image_id), controller.prediction(image_id).labels)
        assert image_id not in controller.effort.entries  # unchecked pre-labels do not count
    # the queue holds exactly the predicted images, most uncertain first
    scores = controller.scores()
    queue = controller.review_queue()
    assert sorted(queue) == sorted(unlabelled)
    entropies = [scores[i].mean_entropy for i in queue]
    assert entropies == sorted(entropies, reverse=True)
    assert loop.dock.queue_list.count() == 3
    loop.actions["next_uncertain"].trigger()
    assert session.current_id == queue[0]
    # change 40 pixels of the pre-label by hand and save: the meter counts exactly those
    document = session.document
    before = document.mask.copy()
    from segstudio.core.region import Region

    values = ((before[10:14, 20:30].astype(int) + 1) % len(project.classes.trainable)).astype(np.uint8)
    document.apply_edit("Brush", Region(10, 20, 14, 30), values)
    assert session.save().saved
    entry = controller.effort.entries[queue[0]]
    assert entry.source == "model" and entry.changed == 40
    saved_json = json.loads((sample_copy / ".cache" / "effort.json").read_text())
    assert saved_json["images"][queue[0]]["changed"] == 40
    # a new model drops the old predictions
    other = sample_copy / "other_model"
    shutil.copytree(tiny_model, other)
    (other / "config.json").write_text((other / "config.json").read_text() + "\n")
    old_folder = controller.cache.folder
    controller.set_model(other)
    assert not old_folder.exists() and controller.review_queue() == []


def test_dataset_export_dialog_writes_labelled_images(qtbot, window: MainWindow, sample_copy: Path) -> None:
    from segstudio.core.exporters import FORMATS
    from segstudio.ui.model.export_dialogs import ExportDatasetDialog

    loop = _loop(window)
    assert window.open_project(sample_copy)
    dialog = ExportDatasetDialog(loop.controller.session.project, window)
    qtbot.addWidget(dialog)
    assert dialog.statuses() == ("labeled", "reviewed")
    offered = [dialog.format_combo.itemData(i) for i in range(dialog.format_combo.count())]
    assert "geotiff" in offered and set(offered) == set(FORMATS)  # every format the CLI writes
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData("voc"))
    out = sample_copy.parent / "voc_out"
    dialog.out_edit.setText(str(out))
    dialog.run_button.click()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=60_000)
    assert dialog.result is not None, dialog.report.toPlainText()
    assert dialog.result.images == 3
    assert len(list(out.rglob("*.png"))) >= 3
    assert "3" in dialog.report.toPlainText()


def test_installing_the_loop_does_not_import_the_engine() -> None:
    code = (
        "import os, sys; os.environ['QT_QPA_PLATFORM'] = 'offscreen';"
        "from PySide6.QtWidgets import QApplication; app = QApplication([]);"
        "from segstudio.ui.main_window import MainWindow;"
        "w = MainWindow(); loop = w.model;"
        "bad = [m for m in ('torch', 'segstudio.engine') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_follows_the_active_model_until_the_user_picks_one(window: MainWindow, sample_copy: Path,
                                                           tiny_model: Path) -> None:
    first, second, mine = (sample_copy / "models" / name for name in ("run1", "run2", "mine"))
    for target in (first, second, mine):
        shutil.copytree(tiny_model, target)
        (target / "note.txt").write_text(target.name)  # distinct content, distinct cache key
    project = Project.open(sample_copy)
    project.settings["active_model"] = project.stored_path(first)
    project.save()
    loop = _loop(window)
    assert window.open_project(sample_copy)
    controller, session = loop.controller, window.workspace.session
    assert controller.model_path == first
    window.workspace.set_active_model(second)  # training made it active
    session.open_image(session.project.images[1].id)
    assert controller.model_path == second
    assert "run2" in loop.dock.model_label.text()
    controller.set_model(mine)  # chosen by hand: later runs do not override it
    window.workspace.set_active_model(first)
    session.open_image(session.project.images[2].id)
    assert controller.model_path == mine
    loop.actions["use_active_model"].trigger()
    assert controller.model_path == first


def test_model_export_dialog_shows_the_verification(qtbot, tmp_path: Path, tiny_model: Path) -> None:
    pytest.importorskip("onnxruntime")
    from segstudio.ui.model.export_dialogs import ExportModelDialog

    dialog = ExportModelDialog(tiny_model)
    qtbot.addWidget(dialog)
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData("onnx"))
    dialog.out_edit.setText(str(tmp_path / "exported"))
    dialog.run_button.click()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=180_000)
    text = dialog.report.toPlainText()
    assert dialog.result is not None, text
    assert dialog.result.passed and "matches PyTorch" in text and "agreement" in text
    assert (tmp_path / "exported" / "model.onnx").is_file()


def test_cancel_stops_a_prelabel_run(qtbot, window: MainWindow, sample_copy: Path, tiny_model: Path) -> None:
    loop = _loop(window)
    assert window.open_project(sample_copy)
    controller, project = loop.controller, window.workspace.session.project
    controller.set_model(tiny_model)
    seen: list[str] = []
    controller.prediction_ready.connect(seen.append)
    controller.prediction_ready.connect(lambda _id: controller.cancel())  # cancel after the first
    assert controller.prelabel_all()
    qtbot.waitUntil(lambda: not controller.busy, timeout=120_000)
    predicted = [r.id for r in project.images if r.status == "predicted"]
    assert seen == predicted and len(predicted) == 1
    assert len([r for r in project.images if r.status == "unlabeled"]) == 2
    assert not loop.dock.cancel_button.isEnabled() and loop.dock.predict_button.isEnabled()
