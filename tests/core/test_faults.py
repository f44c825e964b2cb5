"""Disk faults while saving: disk full, I/O errors, a read-only or vanished folder, a file
deleted under us. Each is injected on demand; the previous file must stay intact, no temp
file may stay behind or be read back, and the error must say what failed and what to do."""

from __future__ import annotations

import errno
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dataset_builders import noise_image, write_image

from segstudio.core import atomic
from segstudio.core.atomic import clean_stray_temps, is_temp_name
from segstudio.core.classes import ClassTable
from segstudio.core.errors import ProjectError, StorageError
from segstudio.core.project import Project
from segstudio.core.recovery import RECOVERY_DIR, RecoveryJournal

CLASSES = ClassTable.from_names(["bg", "cell", "void"], ignore="void")
FAULTS = {errno.ENOSPC: "disk is full", errno.EIO: "input/output error", errno.EROFS: "read-only"}
STAGES = ("write", "fsync", "replace")


class FaultyDisk:
    """Makes the next atomic writes fail at one stage with one errno, until `heal()`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.stage: str | None = None
        self.code = 0
        real_fdopen, real_fsync, real_replace = os.fdopen, os.fsync, os.replace
        disk = self

        class Handle:
            def __init__(self, inner: Any) -> None:
                self.inner = inner

            def __enter__(self) -> Handle:
                return self

            def __exit__(self, *exc: object) -> None:
                self.inner.close()

            def write(self, data: Any) -> int:
                if disk.stage == "write":
                    self.inner.write(data[: len(data) // 2])  # half of it reached the file
                    disk.raise_now()
                return self.inner.write(data)

            def __getattr__(self, name: str) -> Any:
                return getattr(self.inner, name)

        def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
            return Handle(real_fdopen(fd, *args, **kwargs))

        def fsync(fd: int) -> None:
            if disk.stage == "fsync":
                disk.raise_now()
            real_fsync(fd)

        def replace(src: Any, dst: Any) -> None:
            if disk.stage == "replace":
                disk.raise_now()
            real_replace(src, dst)

        monkeypatch.setattr(atomic.os, "fdopen", fdopen)
        monkeypatch.setattr(atomic.os, "fsync", fsync)
        monkeypatch.setattr(atomic.os, "replace", replace)

    def fail(self, stage: str, code: int) -> None:
        self.stage, self.code = stage, code

    def heal(self) -> None:
        self.stage = None

    def raise_now(self) -> None:
        raise OSError(self.code, os.strerror(self.code))


@pytest.fixture()
def disk(monkeypatch: pytest.MonkeyPatch) -> FaultyDisk:
    return FaultyDisk(monkeypatch)


def make_project(tmp_path: Path) -> Project:
    project = Project.create(tmp_path / "p", CLASSES)
    for i in range(2):
        project.add_image(write_image(tmp_path / "img" / f"im{i}.png", noise_image(6, 8, seed=i)))
    project.write_mask("im0", np.ones((6, 8), np.uint8), status="labeled")
    return project


def temp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if is_temp_name(p.name)]


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("code", list(FAULTS))
def test_manifest_save_fault_keeps_the_previous_file(tmp_path: Path, disk: FaultyDisk, stage: str, code: int) -> None:
    project = make_project(tmp_path)
    before = project.manifest_path.read_bytes()
    project.update_image("im1", split="val", status="in_progress")
    disk.fail(stage, code)
    with pytest.raises(ProjectError, match=FAULTS[code]) as caught:
        project.save()
    assert "project.json was not saved" in str(caught.value) and "previous project.json is unchanged" in str(caught.value)
    assert isinstance(caught.value.__cause__, StorageError) and caught.value.__cause__.errno == code
    assert project.manifest_path.read_bytes() == before
    assert temp_files(project.root) == []
    assert Project.open(project.root).image("im1").split == "unassigned"
    disk.heal()  # the user freed space: the change held in memory is saved now
    project.save()
    assert Project.open(project.root).image("im1").split == "val"


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("code", list(FAULTS))
def test_mask_write_fault_keeps_the_previous_mask(tmp_path: Path, disk: FaultyDisk, stage: str, code: int) -> None:
    project = make_project(tmp_path)
    before = project.mask_path("im0").read_bytes()
    disk.fail(stage, code)
    with pytest.raises(StorageError, match=FAULTS[code]) as caught:
        project.write_mask("im0", np.zeros((6, 8), np.uint8), status="in_progress")
    assert isinstance(caught.value, OSError) and caught.value.errno == code  # old callers catch OSError
    assert project.mask_path("im0").read_bytes() == before
    assert temp_files(project.root) == []
    assert project.image("im0").status == "labeled"  # status moves only with a saved mask
    disk.heal()
    project.write_mask("im0", np.zeros((6, 8), np.uint8))  # not a conflict: the file is as we left it
    np.testing.assert_array_equal(Project.open(project.root).read_mask("im0"), np.zeros((6, 8), np.uint8))


@pytest.mark.parametrize("stage", STAGES)
def test_journal_fault_keeps_the_previous_entry(tmp_path: Path, disk: FaultyDisk, stage: str) -> None:
    project = make_project(tmp_path)
    journal = RecoveryJournal(project.root)
    first = np.full((6, 8), 1, np.uint8)
    journal.record("im1", first, revision=1, status="unlabeled", project=project)
    disk.fail(stage, errno.ENOSPC)
    with pytest.raises(ProjectError, match="disk is full"):
        journal.record("im1", np.zeros((6, 8), np.uint8), revision=2, status="unlabeled", project=project)
    with pytest.raises(ProjectError, match="disk is full"):
        journal.record("im0", np.zeros((6, 8), np.uint8), revision=1, status="labeled", project=project)
    assert temp_files(project.root / RECOVERY_DIR) == []
    disk.heal()
    reopened = RecoveryJournal(project.root)
    assert set(reopened.entries) == {"im1"} and journal.entries.keys() == reopened.entries.keys()
    pending = {item.entry.image_id: item.mask for item in reopened.pending(project)}
    if stage == "write" or stage == "fsync":  # the PNG never replaced the first one
        np.testing.assert_array_equal(pending["im1"], first)
    assert pending["im1"].shape == (6, 8)


def test_vanished_project_folder_is_reported_and_never_recreated(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    project.update_image("im1", status="in_progress")
    shutil.rmtree(project.root)  # deleted, or a network drive that went away
    with pytest.raises(ProjectError, match="no longer exists.*still open here"):
        project.save()
    with pytest.raises(StorageError, match="no longer exists"):
        project.write_mask("im1", np.zeros((6, 8), np.uint8))
    assert not project.root.exists()
    assert project.image("im1").status == "in_progress"  # nothing lost in memory


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_really_read_only_folder(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    before = project.manifest_path.read_bytes()
    project.update_image("im1", split="val")
    os.chmod(project.root, 0o555)
    try:
        with pytest.raises(ProjectError, match="read-only or not writable"):
            project.save()
    finally:
        os.chmod(project.root, 0o755)
    assert project.manifest_path.read_bytes() == before


def test_stray_temp_files_are_never_read_and_old_ones_are_cleaned(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    old = project.root / ".project.json.k3j2h1x9.tmp"
    old.write_text('{"schema_version": 2, "images": [')  # half a manifest from a killed writer
    young = project.root / "masks" / ".im0.png.a8b7c6d5.tmp"
    young.write_bytes(b"\x89PNG half")
    past = time.time() - 2 * atomic.STRAY_TEMP_AGE_S
    os.utime(old, (past, past))
    reopened = Project.open(project.root)
    assert [r.id for r in reopened.images] == ["im0", "im1"]
    np.testing.assert_array_equal(reopened.read_mask("im0"), np.ones((6, 8), np.uint8))
    assert not old.exists()
    assert young.exists()  # may belong to a write in progress in another process
    os.utime(young, (past, past))
    assert clean_stray_temps(project.root / "masks") == [young]
    assert not is_temp_name("project.json") and not is_temp_name("im0.png")
