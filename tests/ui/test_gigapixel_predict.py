"""Pre-label of gigapixel images in the app: predicted block by block on the worker into a
chunk store, which becomes the mask of an unlabelled image on disk (status predicted),
never over labels and never behind an open image's back; the review queue gets its score.

A 1,600 x 1,400 pyramid stands in for a slide (the gigapixel rule is lowered for the test),
so that a real model predicts it in seconds."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segstudio.core import gigapixel, gigapixel_project
from segstudio.core.classes import ClassTable
from segstudio.core.project import Project
from segstudio.core.region import Region
from segstudio.core.tiled_mask import TiledMaskStore
from segstudio.ui import dialogs, resources
from segstudio.ui.main_window import MainWindow

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from gigapixel_builders import write_pyramid  # noqa: E402

H, W = 1_600, 1_400


@pytest.fixture
def setup(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN001, ANN201
    torch = pytest.importorskip("torch")
    from segstudio.engine import tiled_predict
    from segstudio.engine.modelfile import ModelConfig, save_model
    from segstudio.engine.models.registry import ModelSpec, create_model

    monkeypatch.setattr(gigapixel, "is_gigapixel", lambda h, w, *_a, **_k: max(h, w) > 1_000)
    monkeypatch.setattr(tiled_predict, "BLOCK", 512)  # 12 blocks, edges included
    monkeypatch.setattr(resources, "user_data_dir", lambda: tmp_path / "appdata")
    monkeypatch.setattr(dialogs, "show_error", lambda *_: None)
    monkeypatch.setenv("SEGSTUDIO_DEVICE", "cpu")
    classes = ClassTable.from_names(["background", "tissue", "tumour"])
    project = Project.create(tmp_path / "proj", classes)
    small = tmp_path / "a_small.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(small)
    project.add_image(small)
    project.add_image(write_pyramid(tmp_path / "slide.tif", H, W))
    project.save()
    assert gigapixel_project.is_gigapixel_record(project, "slide")
    torch.manual_seed(0)
    spec = ModelSpec("segnet_basic", num_classes=len(classes.trainable))
    model_dir = tmp_path / "model"
    save_model(model_dir, create_model(spec).eval(), ModelConfig.from_spec(spec, classes))

    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    assert win.open_project(project.root)
    session = win.workspace.session
    if session.current_id != "a_small":
        assert session.open_image("a_small", background=False)
    controller = win.model.controller
    assert controller.set_model(model_dir)
    messages: list[str] = []
    controller.message.connect(messages.append)
    yield win, session.project, controller, model_dir, messages
    win.close()


def expected_labels(model_dir: Path, project: Project, tmp_path: Path) -> np.ndarray:
    """The same model run block by block outside the app, in project ids."""
    from segstudio.ui.model import engine_bridge

    loaded = engine_bridge.load(model_dir, project.classes, "cpu")
    with gigapixel_project.open_image(project, "slide") as image:
        engine_bridge.predict_tiled(loaded, image, tmp_path / "direct.zarr", project.classes.unlabeled_id,
                                    progress=lambda *_: None, cancelled=lambda: False)
    return TiledMaskStore.open(tmp_path / "direct.zarr").read()


def test_prelabel_writes_the_slide_mask_block_by_block(qtbot, setup, tmp_path: Path) -> None:  # noqa: ANN001
    win, project, controller, model_dir, messages = setup
    assert controller.prelabel_all()
    qtbot.waitUntil(lambda: not controller.busy, timeout=180_000)
    assert project.image("slide").status == "predicted"
    assert project.image("a_small").status == "predicted"
    assert not project.mask_path("slide").exists()  # chunks, never a PNG
    saved = gigapixel_project.read_mask(project, "slide")
    want = expected_labels(model_dir, project, tmp_path)
    assert np.array_equal(saved, want)
    assert len(np.unique(want)) > 1  # a real prediction, not one class everywhere
    assert any("pre-labelled 'slide' block by block" in m for m in messages)
    assert any("block by block: 100% (12/12)" in m for m in messages)
    assert "slide" in controller.cache.scores()  # the review queue knows it

    # opening it shows the pre-label; the prediction is not run twice
    assert win.workspace.session.open_image("slide", background=False)
    doc = win.workspace.session.document
    assert np.array_equal(doc.mask[Region(500, 300, 900, 700).slices], want[500:900, 300:700])
    before = controller.cache.tiled_path("slide").stat().st_mtime_ns
    assert controller.predict(["slide"])
    qtbot.waitUntil(lambda: not controller.busy, timeout=60_000)
    assert controller.cache.tiled_path("slide").stat().st_mtime_ns == before


def test_prelabel_leaves_labels_and_the_open_slide_alone(qtbot, setup) -> None:  # noqa: ANN001
    win, project, controller, _model_dir, messages = setup
    session = win.workspace.session
    assert session.open_image("slide", background=False)
    assert controller.prelabel_all()
    qtbot.waitUntil(lambda: not controller.busy, timeout=180_000)
    assert project.image("slide").status == "unlabeled"
    assert not gigapixel_project.has_tiled_mask(project, "slide")
    assert any("'slide' is open, so its pre-label was not written" in m for m in messages)

    # labels saved, then the status set back to unlabelled by hand: never written over
    doc = session.document
    doc.apply_edit("box", Region(10, 10, 20, 20), 1)
    assert session.store.save("slide").saved
    assert session.open_image("a_small", background=False)
    assert session.set_status("unlabeled", "slide")
    assert controller.prelabel_all()
    qtbot.waitUntil(lambda: not controller.busy, timeout=180_000)
    mask = gigapixel_project.read_mask(project, "slide")
    assert (mask[10:20, 10:20] == 1).all()
    assert (mask[100:, 100:] == project.classes.unlabeled_id).all()
    assert project.image("slide").status == "unlabeled"
