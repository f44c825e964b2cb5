"""Project manifest: create/open, schema-1 migration, atomic saves, summaries, transactions."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from dataset_builders import noise_image, write_image

from segstudio.core import atomic, imageio
from segstudio.core.classes import ClassTable
from segstudio.core.errors import MaskError, ProjectError
from segstudio.core.project import SCHEMA_VERSION, Project, project_transaction

CLASSES = ClassTable.from_names(["bg", "cell", "void"], ignore="void")


def make_project(tmp_path: Path, n: int = 2) -> Project:
    project = Project.create(tmp_path / "p", CLASSES)
    for i in range(n):
        project.add_image(write_image(tmp_path / "img" / f"im{i}.png", noise_image(6, 8, seed=i)), split="train")
    project.save()
    return project


def test_create_open_round_trip(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    project.write_mask("im0", np.ones((6, 8), np.uint8), status="labeled")
    again = Project.open(tmp_path / "p")
    assert again.classes == CLASSES
    assert [r.id for r in again.images] == ["im0", "im1"]
    assert again.image("im0").status == "labeled" and again.image("im0").path == "../img/im0.png"
    np.testing.assert_array_equal(again.read_mask("im0"), np.ones((6, 8), np.uint8))
    with pytest.raises(ProjectError, match="already holds"):
        Project.create(tmp_path / "p", CLASSES)


def test_schema_1_manifest_is_migrated(tmp_path: Path) -> None:
    root = tmp_path / "old"
    root.mkdir()
    write_image(root / "a.png", noise_image(6, 8))
    v1 = {
        "version": 1,
        "name": "legacy",
        "labels": [{"name": "background", "color": [0, 0, 0]}, {"name": "cell", "color": [255, 0, 0]},
                   {"name": "void", "color": [9, 9, 9], "void": True}],
        "images": [{"file": "a.png", "width": 8, "height": 6, "labeled": True, "split": "val"},
                   {"file": "sub/b.png", "labeled": False}],
    }
    (root / "project.json").write_text(json.dumps(v1))
    project = Project.open(root)
    assert project.name == "legacy"
    assert [(c.id, c.name, c.ignore) for c in project.classes] == [
        (0, "background", False), (1, "cell", False), (2, "void", True)]
    assert project.classes.by_id(1).color == (255, 0, 0)
    a, b = project.image("a"), project.image("b")
    assert (a.split, a.status, a.width) == ("val", "labeled", 8)
    assert (b.split, b.status, b.path) == ("unassigned", "unlabeled", "sub/b.png")
    saved = json.loads((root / "project.json").read_text())
    assert saved["schema_version"] == SCHEMA_VERSION and "labels" not in saved


@pytest.mark.parametrize("text, match", [
    ("{", "not valid JSON"), ("[]", "JSON object"), ('{"schema_version": 99}', "newer"),
    ('{"name": "x"}', "schema_version"), ('{"version": 1, "images": [{"nofile": 1}]}', "malformed"),
    ('{"schema_version": 2, "images": [{"id": "a"}]}', "image entry 0"),
])
def test_broken_manifests_are_project_errors(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "project.json").write_text(text)
    with pytest.raises(ProjectError, match=match):
        Project.open(tmp_path)


def test_failed_save_leaves_the_previous_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path)
    before = project.manifest_path.read_bytes()
    project.update_image("im0", split="val")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    with pytest.raises(ProjectError, match="No space"):
        project.save()
    assert project.manifest_path.read_bytes() == before
    assert [p.name for p in project.root.iterdir() if p.name.endswith(".tmp")] == []


def test_failed_mask_write_keeps_the_old_mask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path)
    project.write_mask("im0", np.ones((6, 8), np.uint8))
    before = project.mask_path("im0").read_bytes()

    def exploding_writer(handle: object) -> None:
        handle.write(b"\x89PNG half")  # type: ignore[attr-defined]
        raise RuntimeError("disk unplugged")

    monkeypatch.setattr(imageio, "atomic_write_with", lambda path, _w: atomic.atomic_write_with(path, exploding_writer))
    with pytest.raises(RuntimeError):
        project.write_mask("im0", np.zeros((6, 8), np.uint8))
    assert project.mask_path("im0").read_bytes() == before
    assert sorted(p.name for p in (project.root / "masks").iterdir()) == ["im0.png"]


def test_transaction_rolls_back_files_and_state(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    before = project.manifest_path.read_bytes()
    with pytest.raises(ValueError), project_transaction(project) as created:
        extra = tmp_path / "img" / "x.png"
        write_image(extra, noise_image(6, 8))
        project.add_image(extra)
        created.append(project.mask_path("x"))
        project.write_mask("x", np.zeros((6, 8), np.uint8))
        raise ValueError("boom")
    assert "x" not in project and not project.mask_path("x").exists()
    assert project.manifest_path.read_bytes() == before


def test_mask_checks_and_summary(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    with pytest.raises(MaskError, match="5x5"):
        project.write_mask("im0", np.zeros((5, 5), np.uint8))
    with pytest.raises(MaskError, match="7"):
        project.write_mask("im0", np.full((6, 8), 7, np.uint8))
    mask = np.zeros((6, 8), np.uint8)
    mask[:3] = 1
    mask[0, 0] = 2
    project.write_mask("im0", mask, status="labeled")
    summary = project.summary("train")
    assert summary["images"] == 2 and summary["masks"] == 1
    assert summary["status"]["labeled"] == 1 and summary["status"]["unlabeled"] == 1
    assert summary["pixel_share"] == pytest.approx({"bg": 24 / 48, "cell": 23 / 48, "void": 1 / 48})
    assert summary["classes"][2] == {"id": 2, "name": "void", "color": [0, 128, 0], "ignore": True}
    assert project.missing_files() == []
    project.image_path("im1").unlink()
    assert [r.id for r in project.missing_files()] == ["im1"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_atomic_saves_keep_files_readable_like_ordinary_files(tmp_path: Path) -> None:
    target = tmp_path / "fresh.txt"
    atomic.atomic_write_text(target, "a")
    # as open() would have made it, not mkstemp's private 0600
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~atomic._UMASK
    os.chmod(target, 0o640)
    atomic.atomic_write_text(target, "b")  # an existing file keeps its mode
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.read_text() == "b"
