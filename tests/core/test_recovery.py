"""The Qt-free recovery journal: record, survive a reopen, offer only real differences, restore."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segstudio.core.classes import ClassTable
from segstudio.core.project import Project
from segstudio.core.recovery import RECOVERY_DIR, RecoveryJournal


@pytest.fixture()
def project(tmp_path: Path) -> Project:
    project = Project.create(tmp_path / "proj", ClassTable.from_names(["road", "car", "sky"]))
    rng = np.random.default_rng(3)
    for name in ("a", "b", "c d"):
        path = tmp_path / "src" / f"{name}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(path)
        project.add_image(path, split="train")
    project.save()
    return project


def _painted(project: Project, image_id: str, value: int) -> np.ndarray:
    mask = project.blank_mask(image_id)
    mask[5:15, 10:30] = value
    return mask


def test_record_survives_reopen_and_is_offered(project: Project) -> None:
    journal = RecoveryJournal(project.root)
    mask = _painted(project, "a", 1)
    journal.record("a", mask, revision=4, status="unlabeled", project=project)
    journal.record("c d", _painted(project, "c d", 2), revision=1, status="labeled", project=project)

    reopened = RecoveryJournal(project.root)  # as a new process would
    pending = {item.entry.image_id: item for item in reopened.pending(project)}
    assert set(pending) == {"a", "c d"}
    assert np.array_equal(pending["a"].mask, mask)
    assert pending["a"].entry.revision == 4
    data = json.loads(reopened.journal_path.read_text())
    assert {e["image_id"] for e in data["entries"]} == {"a", "c d"}


def test_entry_equal_to_saved_mask_is_not_offered(project: Project) -> None:
    journal = RecoveryJournal(project.root)
    mask = _painted(project, "b", 2)
    journal.record("b", mask, revision=2, status="in_progress", project=project)
    project.write_mask("b", mask)  # the save happened, the crash came before discard
    assert RecoveryJournal(project.root).pending(project) == []


def test_discard_removes_file_and_entry(project: Project) -> None:
    journal = RecoveryJournal(project.root)
    entry = journal.record("a", _painted(project, "a", 1), 1, "unlabeled", project)
    assert (journal.folder / entry.file).is_file()
    journal.discard("a")
    assert not (journal.folder / entry.file).exists()
    assert RecoveryJournal(project.root).entries == {}


def test_restore_writes_masks_and_sets_status(project: Project) -> None:
    journal = RecoveryJournal(project.root)
    mask_a = _painted(project, "a", 1)
    mask_b = _painted(project, "b", 0)
    journal.record("a", mask_a, 3, "unlabeled", project)
    journal.record("b", mask_b, 3, "reviewed", project)
    report = RecoveryJournal(project.root).restore(project, ["a"])
    assert report.restored == ("a",)
    reopened = Project.open(project.root)
    assert np.array_equal(reopened.read_mask("a"), mask_a)
    assert reopened.image("a").status == "in_progress"
    assert reopened.read_mask("b") is None  # not chosen: discarded
    assert not (project.root / RECOVERY_DIR).exists()


def test_corrupt_or_stale_entries_are_skipped(project: Project) -> None:
    journal = RecoveryJournal(project.root)
    entry = journal.record("a", _painted(project, "a", 1), 1, "unlabeled", project)
    (journal.folder / entry.file).write_bytes(b"not a png")
    journal.record("b", _painted(project, "b", 1), 1, "unlabeled", project)
    project.remove_image("b")  # the image left the project since the crash
    assert RecoveryJournal(project.root).pending(project) == []


def test_torn_journal_is_ignored(project: Project) -> None:
    folder = project.root / RECOVERY_DIR
    folder.mkdir()
    (folder / "journal.json").write_text('{"version": 1, "entries": [{"image_')
    assert RecoveryJournal(project.root).pending(project) == []
