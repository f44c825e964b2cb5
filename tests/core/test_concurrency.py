"""Several writers on one project: the app and a CLI import in two real processes, merges of
concurrent manifest edits, the write lock (live holders, dead ones), mask conflicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from dataset_builders import noise_image, write_image

from segstudio.core import locking
from segstudio.core.classes import ClassDef, ClassTable
from segstudio.core.errors import MaskConflictError, ProjectLockedError
from segstudio.core.locking import HOLDER_NAME, LockInfo, ProjectLock, lock_info
from segstudio.core.project import Project

CLASSES = ClassTable.from_names(["bg", "road", "void"], ignore="void")
REPO = Path(__file__).resolve().parents[2]


def make_images(folder: Path, n: int, stem: str = "im", h: int = 6, w: int = 8) -> list[Path]:
    return [write_image(folder / f"{stem}{i}.png", noise_image(h, w, seed=i)) for i in range(n)]


def make_project(tmp_path: Path, n: int = 24) -> Project:
    project = Project.create(tmp_path / "P", CLASSES)
    for path in make_images(tmp_path / "first", n):
        project.add_image(path, split="train")
    project.save()
    return project


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def manifest_ids(root: Path) -> list[str]:
    return [item["id"] for item in json.loads((root / "project.json").read_text())["images"]]


# -- the reported bug, in two processes -------------------------------------------------------
def test_cli_import_while_the_app_holds_the_project_keeps_all_32(tmp_path: Path) -> None:
    app = make_project(tmp_path)  # "the app": an open Project with a stroke in progress
    app.read_mask("im0")
    more = make_images(tmp_path / "MORE", 8, stem="more")
    result = subprocess.run([sys.executable, "-m", "segstudio", "import", str(app.root), "--format", "images",
                             str(more[0].parent)], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert len(manifest_ids(app.root)) == 32
    stroke = np.zeros((6, 8), np.uint8)
    stroke[2:4, 2:5] = 1
    app.write_mask("im0", stroke, status="in_progress")  # one brush stroke and a save
    on_disk = Project.open(app.root)
    assert len(on_disk) == 32 and len(app) == 32
    assert {f"more{i}" for i in range(8)} <= set(manifest_ids(app.root))
    assert on_disk.image("im0").status == "in_progress"
    np.testing.assert_array_equal(on_disk.read_mask("im0"), stroke)


def test_import_waits_for_the_apps_lock_then_merges(tmp_path: Path) -> None:
    app = make_project(tmp_path, n=4)
    more = make_images(tmp_path / "MORE", 3, stem="more")
    app.update_image("im1", split="val")
    released = threading.Event()

    def hold() -> None:
        with ProjectLock(app.root):
            time.sleep(1.5)
        released.set()

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.2)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "segstudio", "import", str(app.root), "--format", "images",
                             str(more[0].parent)], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    holder.join()
    assert result.returncode == 0, result.stderr
    assert released.is_set() and time.monotonic() - started > 1.0
    app.save()
    assert len(Project.open(app.root)) == 7
    assert Project.open(app.root).image("im1").split == "val"


# -- merge rules --------------------------------------------------------------------------------
def test_last_writer_wins_per_field_and_additions_from_both_are_kept(tmp_path: Path) -> None:
    a = make_project(tmp_path, n=3)
    b = Project.open(a.root)
    extra_a, extra_b = make_images(tmp_path / "a", 1, "xa")[0], make_images(tmp_path / "b", 1, "xb")[0]
    a.add_image(extra_a)
    a.update_image("im0", status="labeled")
    a.settings["active_model"] = "models/a"
    b.add_image(extra_b)
    b.update_image("im0", split="test")  # another field of the same image
    b.update_image("im1", status="reviewed")
    b.settings["tile"] = 512
    a.save()
    b.save()
    final = Project.open(a.root)
    assert sorted(r.id for r in final.images) == ["im0", "im1", "im2", "xa0", "xb0"]
    assert (final.image("im0").status, final.image("im0").split) == ("labeled", "test")
    assert final.image("im1").status == "reviewed"
    assert final.settings == {"active_model": "models/a", "tile": 512}
    a.refresh()
    assert a.image("xb0") == final.image("xb0") and a.settings["tile"] == 512


def test_a_removal_wins_over_a_concurrent_change(tmp_path: Path) -> None:
    a = make_project(tmp_path, n=3)
    b = Project.open(a.root)
    a.remove_image("im2")
    b.update_image("im2", status="labeled")
    b.update_image("im1", status="labeled")
    a.save()
    b.save()
    assert manifest_ids(a.root) == ["im0", "im1"]
    assert Project.open(a.root).image("im1").status == "labeled"
    # and the other way round: their removal, my later change
    b.update_image("im1", split="val")
    a.remove_image("im1")
    a.save()
    b.save()
    assert manifest_ids(a.root) == ["im0"]


def test_the_same_id_added_by_two_writers_keeps_both_images(tmp_path: Path) -> None:
    a = make_project(tmp_path, n=1)
    b = Project.open(a.root)
    a.add_image(make_images(tmp_path / "a", 1, "dup")[0])
    b.add_image(make_images(tmp_path / "b", 1, "dup")[0])
    a.save()
    b.save()
    final = Project.open(a.root)
    assert {r.id: r.path for r in final.images} == {"im0": "../first/im0.png", "dup0": "../a/dup0.png",
                                                    "dup0~2": "../b/dup0.png"}
    assert b.last_renamed == {"dup0": "dup0~2"} and "dup0~2" in b


def test_class_edits_merge_per_class(tmp_path: Path) -> None:
    a = make_project(tmp_path, n=1)
    b = Project.open(a.root)
    a.set_classes(a.classes.replaced(1, name="street"))
    b.set_classes(b.classes.with_class(ClassDef(7, "car", (1, 2, 3))))
    a.save()
    b.save()
    final = Project.open(a.root)
    assert [(c.id, c.name) for c in final.classes] == [(0, "bg"), (1, "street"), (2, "void"), (7, "car")]
    # both name a class "truck" under different ids: the table stays valid (last writer's wins)
    a.set_classes(a.classes.with_class(ClassDef(8, "truck", (4, 4, 4))))
    b.set_classes(b.classes.with_class(ClassDef(9, "truck", (5, 5, 5))))
    a.save()
    b.save()
    assert Project.open(a.root).classes.by_name("truck").id == 9


def test_a_deleted_or_broken_manifest_is_rewritten_from_memory(tmp_path: Path) -> None:
    app = make_project(tmp_path, n=2)
    app.manifest_path.unlink()
    app.update_image("im0", status="labeled")
    app.save()
    assert manifest_ids(app.root) == ["im0", "im1"]
    app.manifest_path.write_text('{"schema_version": 2, "images": [')  # torn by a non-atomic tool
    app.save()
    assert manifest_ids(app.root) == ["im0", "im1"]
    kept = [p for p in app.root.iterdir() if p.name.startswith("project.json.unreadable-")]
    assert len(kept) == 1 and kept[0].read_text().endswith("[")


# -- the lock ---------------------------------------------------------------------------------------
HOLD_AND_DIE = """
    import os, sys, time
    from segstudio.core.locking import ProjectLock
    lock = ProjectLock(sys.argv[1], soft=sys.argv[2] == "soft")
    lock.acquire()
    print(os.getpid(), flush=True)
    if sys.argv[3] == "die":
        os._exit(0)          # no release: a crash while holding the lock
    time.sleep(float(sys.argv[3]))
    lock.release()
"""


@pytest.mark.parametrize("mode", ["os", "soft"])
def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path: Path, mode: str) -> None:
    project = make_project(tmp_path, n=1)
    result = run_python(HOLD_AND_DIE, str(project.root), mode, "die")
    assert result.returncode == 0, result.stderr
    dead_pid = int(result.stdout.split()[0])
    holder = locking.read_holder(project.root)
    assert holder is not None and holder.pid == dead_pid and not holder.is_alive()
    assert lock_info(project.root) is None  # a dead holder is nobody
    if mode == "soft":
        assert (project.root / locking.SOFT_LOCK_NAME).exists()
    started = time.monotonic()
    with ProjectLock(project.root, timeout=3.0, soft=mode == "soft"):
        assert time.monotonic() - started < 1.0
        info = lock_info(project.root)
        assert info is not None and info.pid == os.getpid()
    assert lock_info(project.root) is None and not (project.root / HOLDER_NAME).exists()


def test_a_live_holder_makes_writers_wait_then_names_itself(tmp_path: Path) -> None:
    project = make_project(tmp_path, n=1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLD_AND_DIE), str(project.root), "os", "30"],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(child.stdout.readline())  # type: ignore[union-attr]
        info = project.lock_info()
        assert info is not None and (info.pid, info.host) == (pid, locking.host_name())
        project.lock_timeout = 0.5
        project.update_image("im0", status="labeled")
        started = time.monotonic()
        with pytest.raises(ProjectLockedError, match=f"process {pid}") as caught:
            project.save()
        assert 0.4 < time.monotonic() - started < 5
        assert locking.host_name() in str(caught.value)
    finally:
        child.kill()
        child.wait()
    project.save()  # the kernel freed the killed holder's lock
    assert Project.open(project.root).image("im0").status == "labeled"


def test_soft_marker_from_another_host_waits_while_fresh_and_is_taken_when_old(tmp_path: Path) -> None:
    root = make_project(tmp_path, n=1).root
    (root / locking.SOFT_LOCK_NAME).write_text("elsewhere")
    fresh = LockInfo("other-host.example", 4242, time.time(), "segstudio gui")
    (root / HOLDER_NAME).write_text(json.dumps(fresh.to_dict()))
    with pytest.raises(ProjectLockedError, match="process 4242\\) on other-host.example"):
        with ProjectLock(root, timeout=0.3, soft=True):
            pass
    old = LockInfo("other-host.example", 4242, time.time() - 2 * locking.REMOTE_STALE_S)
    (root / HOLDER_NAME).write_text(json.dumps(old.to_dict()))
    with ProjectLock(root, timeout=0.3, soft=True):
        assert lock_info(root) is not None and lock_info(root).pid == os.getpid()  # type: ignore[union-attr]


# -- masks changed under us ---------------------------------------------------------------------------
def test_a_mask_changed_by_another_writer_is_a_conflict_not_an_overwrite(tmp_path: Path) -> None:
    app = make_project(tmp_path, n=2)
    other = Project.open(app.root)
    assert app.read_mask("im0") is None
    theirs = np.ones((6, 8), np.uint8)
    other.write_mask("im0", theirs, status="labeled")
    assert app.mask_changed_on_disk("im0")
    mine = np.zeros((6, 8), np.uint8)
    mine[0, 0] = 1
    with pytest.raises(MaskConflictError, match="changed on disk") as caught:
        app.write_mask("im0", mine)
    assert caught.value.conflict.image_id == "im0" and not caught.value.conflict.deleted  # type: ignore[attr-defined]
    np.testing.assert_array_equal(Project.open(app.root).read_mask("im0"), theirs)  # untouched
    kept = app.keep_mine("im0", mine, status="in_progress")
    assert kept is not None and kept.parent.name == ".conflicts"
    np.testing.assert_array_equal(Project.open(app.root).read_mask("im0"), mine)
    # theirs, the other way round: load theirs, then writing is fine again
    other.delete_mask("im0")
    with pytest.raises(MaskConflictError, match="deleted"):
        app.write_mask("im0", mine)
    assert app.load_theirs("im0") is None
    app.write_mask("im0", mine)
    assert not app.mask_changed_on_disk("im0")


# -- two writers and crashes, at random -----------------------------------------------------------
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule  # noqa: E402

STATUSES = ("unlabeled", "in_progress", "labeled", "reviewed")
POOL = 12  # image files per folder; folders a/ and b/ share stems, so ids collide


class TwoWriters(RuleBasedStateMachine):
    """Writers 0 and 1 edit one project folder; the model says what must be on disk:
    every image a save made durable, each status the last saver changed, each mask the
    last one written (a write over another writer's mask is refused as a conflict)."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.tmp = Path(tempfile.mkdtemp(prefix="two-writers-"))
        self.files = [p for folder in "ab" for p in make_images(self.tmp / folder, POOL, stem="x")]
        self.writers = [Project.create(self.tmp / "P", CLASSES)]
        self.writers.append(Project.open(self.tmp / "P"))
        self.durable: set[str] = set()  # image paths (as the manifest stores them)
        self.pending_adds: list[set[str]] = [set(), set()]
        self.pending_removes: list[set[str]] = [set(), set()]
        self.base_status: list[dict[str, str]] = [{}, {}]
        self.status: dict[str, str] = {}  # durable status per path
        self.masks: dict[str, int] = {}  # image id -> the value its last written mask holds
        self.next_class = 0

    def teardown(self) -> None:
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)

    def _ids_by_path(self, project: Project) -> dict[str, str]:
        return {r.path: r.id for r in project.images}

    @rule(w=st.integers(0, 1), i=st.integers(0, 2 * POOL - 1))
    def add(self, w: int, i: int) -> None:
        project = self.writers[w]
        stored = project.stored_path(self.files[i])
        known = self.durable | self.pending_adds[0] | self.pending_adds[1]
        if stored in known or stored in self._ids_by_path(project):
            return
        project.add_image(self.files[i])
        self.pending_adds[w].add(stored)
        self.base_status[w][stored] = "unlabeled"

    @rule(w=st.integers(0, 1), k=st.integers(0, 50), status=st.sampled_from(STATUSES))
    def set_status(self, w: int, k: int, status: str) -> None:
        records = self.writers[w].images
        if records:
            self.writers[w].update_image(records[k % len(records)].id, status=status)

    @rule(w=st.integers(0, 1), k=st.integers(0, 50))
    def remove(self, w: int, k: int) -> None:
        records = [r for r in self.writers[w].images if r.path in self.durable]
        if records:
            record = records[k % len(records)]
            self.writers[w].remove_image(record.id)
            self.pending_removes[w].add(record.path)

    @rule(w=st.integers(0, 1))
    def add_class(self, w: int) -> None:
        project = self.writers[w]
        self.next_class += 1
        project.set_classes(project.classes.with_class(
            ClassDef(project.classes.next_free_id(), f"c{self.next_class}", (1, 2, 3))))

    @rule(w=st.integers(0, 1), k=st.integers(0, 50), value=st.integers(0, 1))
    def paint(self, w: int, k: int, value: int) -> None:
        project = self.writers[w]
        records = [r for r in project.images if r.path in self.durable]
        if not records:
            return
        record = records[k % len(records)]
        mask = np.full((record.height, record.width), value, np.uint8)
        try:
            project.write_mask(record, mask)
        except MaskConflictError:
            project.load_theirs(record)  # refused: the other writer's mask stays
            return
        self.masks[record.id] = value

    @rule(w=st.integers(0, 1))
    def save(self, w: int) -> None:
        project = self.writers[w]
        mine = {r.path: r.status for r in project.images}
        project.save()
        for path, status in mine.items():
            if path in self.durable | self.pending_adds[w] and status != self.base_status[w].get(path):
                self.status[path] = status
        self.durable |= self.pending_adds[w]
        self.durable -= self.pending_removes[w]
        self.pending_adds[w], self.pending_removes[w] = set(), set()
        self.base_status[w] = {r.path: r.status for r in project.images}

    @rule(w=st.integers(0, 1))
    def crash(self, w: int) -> None:
        """The writer's process dies: unsaved state is gone; it reopens from disk."""
        self.writers[w] = Project.open(self.tmp / "P")
        self.pending_adds[w], self.pending_removes[w] = set(), set()
        self.base_status[w] = {r.path: r.status for r in self.writers[w].images}

    @invariant()
    def disk_holds_every_durable_image(self) -> None:
        on_disk = Project.open(self.tmp / "P")  # parses and validates the manifest
        by_path = {r.path: r for r in on_disk.images}
        assert set(by_path) == self.durable
        for path in self.durable:
            assert by_path[path].status == self.status.get(path, "unlabeled"), path
        for record in on_disk.images:
            if record.id in self.masks and on_disk.has_mask(record):
                assert int(on_disk.read_mask(record)[0, 0]) == self.masks[record.id]


TwoWriters.TestCase.settings = settings(max_examples=25, stateful_step_count=30, deadline=None,
                                        suppress_health_check=[HealthCheck.too_slow])
TestTwoWriters = TwoWriters.TestCase
