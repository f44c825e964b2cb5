"""Loading an image and its mask for editing, salvage of bad masks and the save policy,
without Qt: generated projects with expectations computed from what was written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segstudio.core import saving
from segstudio.core.classes import ClassDef, ClassTable
from segstudio.core.errors import MaskError
from segstudio.core.mask_loading import (
    LoadRequests,
    keep_rejected,
    load_image,
    loads_in_background,
    salvage_mask,
)
from segstudio.core.project import Project
from segstudio.core.saving import SaveAction, SaveOutcome, SaveResult, plan_save

CLASSES = ClassTable((
    ClassDef(0, "road", (128, 64, 128)),
    ClassDef(1, "car", (64, 0, 128)),
    ClassDef(255, "unlabeled", (0, 0, 0), ignore=True),
))
H, W = 12, 16


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project.create(tmp_path / "p", CLASSES)
    (project.root / "images").mkdir(exist_ok=True)
    rng = np.random.default_rng(3)
    for name in ("a", "b"):
        path = project.root / "images" / f"{name}.png"
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path)
        project.add_image(path)
    project.save()
    return project


def test_load_reads_the_saved_mask_or_a_blank_one(project: Project) -> None:
    mask = np.zeros((H, W), np.uint8)
    mask[:, :5] = 1
    project.write_mask("a", mask)
    loaded = load_image(project, "a")
    assert loaded.image.shape == (H, W, 3) and np.array_equal(loaded.mask, mask)
    assert loaded.note == "" and not loaded.mask_rejected
    blank = load_image(project, "b")
    assert (blank.mask == 255).all() and blank.mask.shape == (H, W)


def test_unknown_ids_are_salvaged_as_unlabelled_and_counted(project: Project) -> None:
    mask = np.zeros((H, W), np.uint8)
    mask[:3, :4] = 77  # 12 pixels of a class that does not exist
    Image.fromarray(mask, mode="L").save(project.mask_path("a"))
    loaded = load_image(project, "a")
    assert loaded.mask_rejected and "12 pixels" in loaded.note and "a.png.rejected" in loaded.note
    expected = np.where(mask == 77, 255, mask)
    assert np.array_equal(loaded.mask, expected)


def test_wrong_size_or_unreadable_masks_open_blank(project: Project, tmp_path: Path) -> None:
    Image.fromarray(np.zeros((5, 5), np.uint8), mode="L").save(project.mask_path("a"))
    loaded = load_image(project, "a")
    assert loaded.mask_rejected and "blank" in loaded.note and (loaded.mask == 255).all()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    mask, note = salvage_mask(broken, (H, W), CLASSES.valid_lut(), 255, "unreadable")
    assert (mask == 255).all() and mask.shape == (H, W) and note.startswith("unreadable. Opened a blank")


def test_a_replaced_image_of_another_size_is_refused(project: Project) -> None:
    Image.fromarray(np.zeros((H + 1, W, 3), np.uint8)).save(project.image_path("b"))
    with pytest.raises(MaskError, match="Re-add the image"):
        load_image(project, "b")


def test_keep_rejected_never_overwrites_an_earlier_copy(tmp_path: Path) -> None:
    path = tmp_path / "m.png"
    assert keep_rejected(path) is None
    path.write_bytes(b"first")
    first = keep_rejected(path)
    assert first == tmp_path / "m.png.rejected" and first.read_bytes() == b"first"
    path.write_bytes(b"second")
    second = keep_rejected(path)
    assert second is not None and second != first and second.read_bytes() == b"second"
    assert first.read_bytes() == b"first"


def test_background_threshold_and_later_requests_win(project: Project) -> None:
    record = project.image("a")
    assert loads_in_background(record, threshold=H * W - 1)
    assert not loads_in_background(record, threshold=H * W)
    requests = LoadRequests()
    requests.want("a")
    requests.want("b")  # the user moved on before a arrived
    assert not requests.arrived("a")
    assert requests.arrived("b") and requests.pending is None
    assert not requests.arrived("b")  # delivered once


@pytest.mark.parametrize(("kwargs", "action"), [
    ({"dirty": False}, SaveAction.NOTHING),
    ({"dirty": True}, SaveAction.WRITE),
    ({"dirty": True, "in_stroke": True}, SaveAction.WRITE),  # an explicit save ends the stroke
    ({"dirty": True, "in_stroke": True, "background": True}, SaveAction.DEFER),
    ({"dirty": True, "background": True}, SaveAction.WRITE),  # small: written at once
    ({"dirty": True, "background": True, "pixels": 100}, SaveAction.QUEUE),
    ({"dirty": True, "background": True, "pixels": 100, "in_flight": True}, SaveAction.DEFER),
    ({"dirty": True, "background": True, "pixels": 100, "rejected": True}, SaveAction.WRITE),
    ({"dirty": True, "pixels": 100}, SaveAction.WRITE),
])
def test_plan_save(kwargs: dict, action: SaveAction) -> None:
    base = {"dirty": True, "in_stroke": False, "pixels": 10, "background": False,
            "rejected": False, "in_flight": False, "threshold": 100}
    assert plan_save(**{**base, **kwargs}) is action


def test_save_results_combine_to_the_weightiest_and_have_no_truth_value() -> None:
    failed = SaveResult.failed("disk full")
    assert SaveResult.combine([saving.SAVED, saving.QUEUED]).outcome is SaveOutcome.QUEUED
    assert SaveResult.combine([saving.QUEUED, saving.DEFERRED]).outcome is SaveOutcome.DEFERRED
    both = SaveResult.combine([saving.SAVED, failed, SaveResult.failed("read-only")])
    assert both.outcome is SaveOutcome.FAILED and both.error == "disk full; read-only" and not both.ok
    assert SaveResult.combine([]).saved
    assert saving.QUEUED.ok and not saving.QUEUED.saved
    with pytest.raises(TypeError, match="no truth value"):
        bool(saving.SAVED)


def test_status_moves() -> None:
    assert saving.status_after_edit("unlabeled") == "in_progress"
    assert saving.status_after_edit("predicted") == "in_progress"
    assert saving.status_after_edit("labeled") is None
    assert saving.status_after_edit("in_progress") is None
    assert saving.done_status(False) == "labeled" and saving.done_status(True) == "reviewed"
