"""One recovery journal per app process: two writers keep each other's entries, and the
offer on open collects only the journals of apps that are gone (never a live one's)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segstudio.core.classes import ClassTable
from segstudio.core.locking import host_name
from segstudio.core.presence import REMOTE_STALE_S, Presence, presence_folder
from segstudio.core.project import Project
from segstudio.core.recovery import JOURNAL_NAME, RECOVERY_DIR, JournalOwner, RecoveryJournal
from segstudio.core.recovery_offer import LeftoverWork, left_journals


@pytest.fixture()
def project(tmp_path: Path) -> Project:
    project = Project.create(tmp_path / "proj", ClassTable.from_names(["road", "car", "sky"]))
    rng = np.random.default_rng(5)
    for name in ("a", "b", "c"):
        path = tmp_path / "src" / f"{name}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path)
        project.add_image(path, split="train")
    project.save()
    return project


@pytest.fixture()
def live_pid() -> Iterator[int]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait(10)


def dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    return int(child.stdout)


def painted(project: Project, image_id: str, value: int) -> np.ndarray:
    mask = project.blank_mask(image_id)
    mask[2:9, 3:20] = value
    return mask


def journal_of(project: Project, owner: JournalOwner, image_id: str, value: int) -> RecoveryJournal:
    journal = RecoveryJournal(project.root, owner)
    journal.record(image_id, painted(project, image_id, value), 1, "unlabeled", project)
    return journal


def announce(project: Project, host: str, pid: int, seen: float) -> None:
    info = Presence(host, pid, "someone", seen - 10, seen)
    path = presence_folder(project.root) / info.file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info.to_dict()))


def offered(project: Project, include_own: bool = False) -> dict[str, np.ndarray]:
    return {item.entry.image_id: item.mask
            for item in LeftoverWork(project.root, include_own).pending(project)}


def test_two_writers_keep_each_others_entries(project: Project, live_pid: int) -> None:
    mine = RecoveryJournal(project.root)
    theirs = journal_of(project, JournalOwner(host_name(), live_pid), "b", 2)
    mine.record("a", painted(project, "a", 1), 1, "unlabeled", project)
    theirs.record("c", painted(project, "c", 1), 1, "unlabeled", project)
    mine.record("a", painted(project, "a", 2), 2, "unlabeled", project)  # rewrites only mine
    assert set(RecoveryJournal(project.root).entries) == {"a"}
    assert set(RecoveryJournal(project.root, theirs.owner).entries) == {"b", "c"}
    assert mine.folder != theirs.folder and mine.folder.parent == theirs.folder.parent


def test_one_owner_dead_is_offered_the_live_one_is_not(project: Project, live_pid: int) -> None:
    journal_of(project, JournalOwner(host_name(), live_pid), "a", 1)
    dead = journal_of(project, JournalOwner(host_name(), dead_pid()), "b", 2)
    found = offered(project)
    assert list(found) == ["b"]
    assert np.array_equal(found["b"], painted(project, "b", 2))

    report = LeftoverWork(project.root, include_own=False).restore(project)
    assert report.restored == ("b",)
    assert np.array_equal(Project.open(project.root).read_mask("b"), painted(project, "b", 2))
    assert not dead.folder.exists()  # the dead app's journal is gone once restored
    assert set(RecoveryJournal(project.root, JournalOwner(host_name(), live_pid)).entries) == {"a"}


def test_both_owners_alive_nothing_is_offered(project: Project, live_pid: int) -> None:
    now = time.time()
    journal_of(project, JournalOwner(host_name(), live_pid), "a", 1)
    journal_of(project, JournalOwner("lab-box", 4242), "b", 2)
    announce(project, "lab-box", 4242, seen=now - 30)  # beat half a minute ago
    assert offered(project) == {}
    assert left_journals(project.root, include_own=False) == []


def test_remote_owner_is_gone_when_its_heartbeat_is_stale_or_its_marker_is_gone(project: Project) -> None:
    now = time.time()
    journal_of(project, JournalOwner("lab-box", 4242), "a", 1)
    journal_of(project, JournalOwner("other-box", 7), "b", 2)
    announce(project, "lab-box", 4242, seen=now - REMOTE_STALE_S - 60)
    assert set(offered(project)) == {"a", "b"}  # stale heartbeat; no marker at all


def test_own_leftovers_are_offered_only_when_asked(project: Project) -> None:
    RecoveryJournal(project.root).record("c", painted(project, "c", 1), 3, "labeled", project)
    assert offered(project, include_own=False) == {}
    assert list(offered(project, include_own=True)) == ["c"]
    LeftoverWork(project.root).clear()
    assert not (project.root / RECOVERY_DIR).exists()


def test_an_image_in_two_dead_journals_comes_back_newest(project: Project) -> None:
    journal_of(project, JournalOwner("gone-1", 1), "a", 1)
    time.sleep(0.01)
    journal_of(project, JournalOwner("gone-2", 2), "a", 2)
    found = LeftoverWork(project.root).pending(project)
    assert len(found) == 1 and np.array_equal(found[0].mask, painted(project, "a", 2))


def test_the_old_single_journal_is_still_read(project: Project, tmp_path: Path) -> None:
    # Lay out what older versions wrote: .recovery/journal.json naming PNGs beside it.
    scratch = RecoveryJournal(tmp_path / "scratch_root", JournalOwner("old", 1))
    scratch.record("a", painted(project, "a", 2), 5, "unlabeled", project)
    legacy = project.root / RECOVERY_DIR
    legacy.mkdir()
    for name in (JOURNAL_NAME, *(entry.file for entry in scratch.entries.values())):
        (legacy / name).write_bytes((scratch.folder / name).read_bytes())
    found = offered(project)
    assert list(found) == ["a"] and np.array_equal(found["a"], painted(project, "a", 2))
    # while another app holds the project, nobody can say whose it is: not offered
    announce(project, "lab-box", 4242, seen=time.time())
    assert offered(project) == {}
    (presence_folder(project.root) / Presence("lab-box", 4242, "", 0, 0).file_name).unlink()
    assert LeftoverWork(project.root).restore(project).restored == ("a",)
    assert not legacy.exists()


def test_a_torn_old_journal_and_a_folder_without_owner_are_ignored(project: Project) -> None:
    folder = project.root / RECOVERY_DIR
    (folder / "somehost-99").mkdir(parents=True)
    (folder / JOURNAL_NAME).write_text('{"version": 1, "entries": [{"image_')
    assert offered(project) == {}


def test_an_emptied_journal_leaves_no_folder(project: Project) -> None:
    journal = RecoveryJournal(project.root)
    journal.record("a", painted(project, "a", 1), 1, "unlabeled", project)
    assert (journal.folder / "owner.json").is_file()
    journal.discard("a")
    assert not (project.root / RECOVERY_DIR).exists()
    journal.record("b", painted(project, "b", 1), 1, "unlabeled", project)  # and it journals again
    assert set(left_journals(project.root)[0].entries) == {"b"}
