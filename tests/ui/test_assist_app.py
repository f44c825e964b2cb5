"""The click assist in the window, with stand-in models: the model manager (add from files,
choose, remove, licences, download with progress / cancel / offline message), the project's
embedding cache and encoding ahead, box to mask with the project's model, and the F1 sheet."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

from segstudio.assist import download as assist_download
from segstudio.assist.catalogue import CATALOGUE, CatalogueEntry, RemoteFile
from segstudio.assist.store import ModelStore, RegisteredModel
from segstudio.ui.annotate import assist_models_dialog
from segstudio.ui.annotate.assist_add_dialog import AddModelDialog
from segstudio.ui.annotate.assist_controller import AHEAD, cache_folder
from segstudio.ui.main_window import MainWindow
from segstudio.ui.settings import AppSettings
from tests.assist.stand_ins import write_pair
from tests.ui.test_canvas import Driver
from tests.ui.test_loop_ui import sample_copy, tiny_model, window  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_pair(tmp_path_factory.mktemp("assist_pair"), "sam1")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "userdata"
    monkeypatch.setenv("SEGSTUDIO_DATA_DIR", str(folder))
    return folder


def _register(stand_in: tuple[Path, Path], name: str = "stand-in") -> None:
    ModelStore().register(RegisteredModel(name, "SAM 1", str(stand_in[0]), str(stand_in[1]), "Apache-2.0"))


def _rows(dialog) -> dict[str, list[str]]:  # noqa: ANN001
    table = dialog.table
    return {table.item(r, 0).data(Qt.ItemDataRole.UserRole):
            [table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())}


def test_add_from_files_use_for_assist_and_remove(qtbot, window: MainWindow, data_dir: Path,  # noqa: F811
                                                  stand_in: tuple[Path, Path], tmp_path: Path) -> None:
    window.commands["assist_models"].trigger()
    dialog = window.assist.dialog
    assert dialog is not None and dialog.isVisible()
    rows = _rows(dialog)
    assert set(rows) == {e.name for e in CATALOGUE}, "nothing registered yet: the catalogue"
    assert rows["edgesam"][3].startswith("⚠") and "non-commercial" in rows["edgesam"][3]
    assert "⚠" not in rows["sam-vit-b"][3] and rows["sam-vit-b"][2] == "112 MB"
    dialog.select("edgesam")
    assert "non-commercial work only" in dialog.licence_note.text()

    add = AddModelDialog(dialog.store, dialog)
    qtbot.addWidget(add)
    ok = add.buttons.button(QDialogButtonBox.StandardButton.Ok)
    bad = tmp_path / "not-a-model.onnx"
    bad.write_bytes(b"hello")
    with qtbot.waitSignal(add.detected, timeout=10_000) as found:
        add.set_files(bad, stand_in[1], name="mine")
    assert found.args == [""] and "not a usable ONNX" in add.family.text() and not ok.isEnabled()
    with qtbot.waitSignal(add.detected, timeout=10_000) as found:
        add.set_files(*stand_in, name="mine")
    assert found.args == ["SAM 1 / MobileSAM"] and "SAM 1" in add.family.text() and ok.isEnabled()
    ok.click()
    dialog.register_added(add.model)
    assert ModelStore().get("mine").family == "SAM 1 / MobileSAM"
    assert _rows(dialog)["mine"][4] == "registered"

    dialog.select("mine")
    dialog.use_button.click()
    session = window.canvas.assist_session
    assert session is not None and session.name == "mine"
    assert AppSettings().assist_model() == "mine", "remembered for the next run"
    # the model loads on a pool thread (its answer arrives through the event loop); the window says so
    assert session.loading and "loading mine" in window.status.currentMessage()
    assert "(loading)" in dialog.runs_on.text()
    with qtbot.waitSignal(session.loaded, timeout=10_000):
        pass
    assert "mine (SAM 1 / MobileSAM) on CPU" in window.status.currentMessage()
    assert "mine (SAM 1 / MobileSAM) on CPU" in dialog.runs_on.text()
    assert "(in use)" in _rows(dialog)["mine"][0]

    dialog.remove_button.click()
    assert "mine" not in ModelStore().models() and stand_in[0].is_file(), "the user's files stay"
    assert window.canvas.assist_session is None and AppSettings().assist_model() is None


def _file_entry(encoder: Path, decoder: Path, name: str = "local-sam") -> CatalogueEntry:
    def remote(path: Path) -> RemoteFile:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return RemoteFile(path.as_uri(), digest, path.stat().st_size / 1e6)

    return CatalogueEntry(name, "Local SAM", "SAM 1", "Apache-2.0", "https://example.org",
                          remote(encoder), remote(decoder))


@pytest.fixture
def one_entry(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    def use(entry: CatalogueEntry) -> None:
        monkeypatch.setattr(assist_models_dialog, "CATALOGUE", (entry,))
        monkeypatch.setattr(assist_models_dialog, "catalogue_entry",
                            lambda name: entry if name == entry.name else None)
    return use


def test_download_progress_done_cancel_and_offline(qtbot, window: MainWindow, data_dir: Path,  # noqa: F811
                                                   stand_in: tuple[Path, Path], one_entry,  # noqa: ANN001
                                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    one_entry(_file_entry(*stand_in))
    dialog = window.assist.open_dialog()
    dialog.select("local-sam")
    assert dialog.download_button.isEnabled()
    seen: list[int] = []
    dialog.progress.valueChanged.connect(seen.append)
    job = dialog.download_selected()
    qtbot.waitUntil(lambda: job.delivered, timeout=20_000)
    assert ModelStore().get("local-sam").source == "catalogue"
    assert Path(ModelStore().get("local-sam").encoder).read_bytes() == stand_in[0].read_bytes()
    assert seen and seen[-1] == 1000 and "Downloaded and registered" in dialog.message.text()
    assert not dialog.progress.isVisible()

    # cancel: a big file in small chunks, cancelled at the first progress report
    big = tmp_path / "big.encoder.onnx"
    big.write_bytes(np.random.default_rng(0).bytes(4 << 20))
    one_entry(_file_entry(big, stand_in[1], "big-sam"))
    monkeypatch.setattr(assist_download, "CHUNK", 4096)
    dialog.refresh(select="big-sam")
    dialog.progress.valueChanged.connect(lambda _v: dialog.cancel_download())
    job = dialog.download_selected()
    assert dialog.cancel_button.isVisible()
    qtbot.waitUntil(lambda: job.delivered, timeout=20_000)
    assert "cancelled" in dialog.message.text() and "big-sam" not in ModelStore().models()
    assert not (ModelStore().folder / "big-sam").exists(), "nothing half-written in the models folder"

    # offline: nothing listens on that port
    offline = CatalogueEntry("far-sam", "Far SAM", "SAM 1", "Apache-2.0", "https://example.org",
                             RemoteFile("http://127.0.0.1:9/enc.onnx", None, 1),
                             RemoteFile("http://127.0.0.1:9/dec.onnx", None, 1))
    one_entry(offline)
    dialog.refresh(select="far-sam")
    job = dialog.download_selected()
    qtbot.waitUntil(lambda: job.delivered, timeout=30_000)
    text = dialog.message.text()
    assert "Download failed" in text and "offline" in text and "assist-models add far-sam" in text


def test_embeddings_cached_in_the_project_and_encoded_ahead(qtbot, window: MainWindow, data_dir: Path,  # noqa: F811
                                                            stand_in: tuple[Path, Path],
                                                            sample_copy: Path) -> None:  # noqa: F811
    _register(stand_in)
    assert window.open_project(sample_copy)
    ws = window.workspace
    window.commands["tool_assist"].trigger()
    session = window.canvas.assist_session
    assert session is not None and session.name == "stand-in"
    assert window.tool_bar.assist_choice_visible
    with qtbot.waitSignal(session.ready, timeout=10_000):
        window.canvas.viewport().repaint()
    qtbot.waitUntil(lambda: not session.encoding_ahead, timeout=20_000)
    folder = cache_folder(ws.project)
    assert len(list(folder.glob("*.npz"))) == 1 + AHEAD, "the open image and the next ones"
    assert session.assistant.disk_cache.max_bytes > 0

    # the next image was encoded ahead: no encode when it opens
    ws.go(1)
    window.canvas.viewport().repaint()
    assert session.embedding is not None and not session.encoding
    # a fresh session (next run) reads the project's disk cache instead of encoding
    window.assist.use_model("stand-in")
    fresh = window.canvas.assist_session
    assert fresh is not session
    notes: list[str] = []
    fresh.note.connect(notes.append)
    window.canvas.viewport().repaint()
    with qtbot.waitSignal(fresh.ready, timeout=10_000):
        pass  # once loaded, the image the paint handed it is answered from disk
    assert fresh.embedding is not None and not fresh.encoding, "read from PROJECT/.cache/assist"
    assert not any("preparing this image" in note for note in notes), f"no encode of the open image: {notes}"

    # moving on cancels encoding ahead: the job stops after the image it was encoding
    loads: list[int] = []

    def load() -> np.ndarray:
        loads.append(1)
        return np.full((60, 80, 3), len(loads), np.uint8)

    job = fresh.encode_ahead([load] * 50)
    assert fresh.encoding_ahead
    ws.go(1)
    assert not fresh.encoding_ahead
    qtbot.waitUntil(lambda: job.delivered, timeout=10_000)
    assert len(loads) < 50
    window.commands["tool_brush"].trigger()
    assert not window.tool_bar.assist_choice_visible, "shown only with the Assist tool"


def test_box_to_mask_with_the_project_model(qtbot, window: MainWindow, data_dir: Path,  # noqa: F811
                                            sample_copy: Path, tiny_model: Path) -> None:  # noqa: F811
    assert window.open_project(sample_copy)
    ws, canvas = window.workspace, window.canvas
    unlabeled = ws.project.classes.unlabeled_id
    doc = ws.session.document
    drive = Driver(canvas)
    choice = window.tool_bar.assist_choice
    assert not choice.model().item(1).isEnabled(), "no active model yet"
    ws.set_active_model(tiny_model)
    assert choice.model().item(1).isEnabled()
    window.tool_bar.set_assist_mode("project")
    window.commands["tool_assist"].trigger()
    assert canvas.assist_session is None, "Segment Anything is not loaded for the project model"
    before = doc.mask.copy()
    drive.drag([(60, 50), (100, 90), (150, 120)])  # pixel centres: a box 60.5,50.5 - 150.5,120.5
    x0, y0, x1, y1 = 60, 50, 151, 121  # the pixels it covers
    tool = canvas._tools["assist"]
    qtbot.waitUntil(lambda: tool.result is not None, timeout=120_000)
    proposal = tool.proposal()
    assert proposal.any()

    # the same answer, computed here from the model's own prediction of the crop
    from segstudio.engine.inference import load_predictor
    from segstudio.ui.annotate.assist_box_model import class_map, crop_region
    image = canvas.image
    crop = crop_region(tool.prompt.box, *image.shape[:2])
    assert (crop.y0, crop.x0, crop.y1, crop.x1) == (y0 - 16, x0 - 16, y1 + 16, x1 + 16), "16 px of context"
    predictor = load_predictor(tiny_model, device="cpu")
    labels = class_map(predictor.config.classes, ws.project.classes)[predictor.predict(image[crop.slices]).mask]
    inside = labels[y0 - crop.y0:y1 - crop.y0, x0 - crop.x0:x1 - crop.x0]
    active = canvas.active_class
    counts = np.bincount(inside.ravel(), minlength=256)
    if counts[active] >= 0.05 * inside.size:
        kept = active
    else:
        counts[unlabeled] = 0
        if ws.project.classes.ignore_index is not None:
            counts[ws.project.classes.ignore_index] = 0
        kept = int(np.argmax(counts))
    want = np.zeros(image.shape[:2], bool)
    want[y0:y1, x0:x1] = inside == kept
    np.testing.assert_array_equal(proposal, want)
    assert not proposal[:y0].any() and not proposal[:, x1:].any(), "only inside the box"
    assert tool.result.class_id == kept

    np.testing.assert_array_equal(doc.mask, before)
    with qtbot.waitSignal(canvas.edited, timeout=1000):
        drive.key(Qt.Key.Key_Return)
    assert (doc.mask[want] == active).all() and doc.undo_label == "Assist"
    window.commands["undo"].trigger()
    np.testing.assert_array_equal(doc.mask, before)

    # a click (no box) says what the project model needs
    drive.click(100, 80)
    assert "drag a box" in window.status.currentMessage()


def test_f1_sheet_lists_the_assist_keys(window: MainWindow) -> None:  # noqa: F811
    window.commands["shortcuts"].trigger()
    sheet = window.workspace._sheet
    rows = [tuple(sheet.table.item(r, c).text() for c in range(3)) for r in range(sheet.table.rowCount())]
    assist = {action: keys for menu, action, keys in rows if menu == "Assist tool"}
    assert assist["Next alternative mask"] == "Tab"
    assert assist["Remove the last point"] == "Backspace"
    assert assist["Drop the proposal"] == "Esc"
    assert "Enter" in assist["Accept the proposal"]
    assert ("Tools", "Assist (click or box)", "A") in rows

