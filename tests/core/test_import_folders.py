"""`folders` and `images` importers on generated data: mask kinds, skips, transactions, merges."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from dataset_builders import (
    exif_jpeg,
    folders_dataset,
    huge_png_header,
    noise_image,
    project_state,
    sixteen_bit_png,
    write_gray,
    write_image,
)

from segstudio.core import imageio
from segstudio.core.classes import ClassDef, ClassTable
from segstudio.core.errors import DatasetImportError, SegstudioError
from segstudio.core.importers import ImportOptions, import_dataset
from segstudio.core.project import Project

CLASSES = ClassTable(
    (
        ClassDef(0, "sky", (10, 20, 30)),
        ClassDef(1, "road", (200, 0, 0)),
        ClassDef(2, "car", (0, 0, 250)),
        ClassDef(9, "void", (0, 0, 0), ignore=True),
    )
)


def classes_json(path: Path, classes: ClassTable = CLASSES) -> Path:
    import json

    path.write_text(
        json.dumps({"ignore_index": classes.ignore_index, "classes": classes.to_list()})
    )
    return path


def folders(src: Path, **kw: object) -> ImportOptions:
    return ImportOptions(images=(src / "images",), masks=(src / "masks",), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["gray", "palette", "rgb"])
def test_mask_kinds_import_as_the_same_ids(tmp_path: Path, kind: str) -> None:
    src = tmp_path / "src"
    masks = folders_dataset(src, kind=kind, ids=(0, 1, 2, 9), classes=CLASSES)
    report = import_dataset(
        tmp_path / "p",
        "folders",
        folders(src, classes_file=classes_json(tmp_path / "c.json"), splits=("train",)),
    )
    assert (report.images, report.masks, report.skipped) == (4, 4, [])
    project = Project.open(tmp_path / "p")
    assert project.classes == CLASSES
    for stem, mask in masks.items():
        record = project.image(stem)
        assert (record.split, record.status) == ("train", "labeled")
        np.testing.assert_array_equal(project.read_mask(record), mask)


def test_classes_inferred_from_masks_and_images_without_mask(tmp_path: Path) -> None:
    src = tmp_path / "src"
    masks = folders_dataset(src, ids=(0, 3, 7))
    write_image(src / "images" / "lonely.png", noise_image(24, 32))
    report = import_dataset(tmp_path / "p", "folders", folders(src))
    assert (report.images, report.masks) == (5, 4)
    project = Project.open(tmp_path / "p")
    assert {0, 3, 7} <= set(project.classes.ids)
    assert project.classes.by_id(3).name == "class_3"
    assert project.image("lonely").status == "unlabeled"
    np.testing.assert_array_equal(project.read_mask("img_01"), masks["img_01"])


def test_bad_files_are_skipped_with_reasons(tmp_path: Path) -> None:
    src = tmp_path / "src"
    folders_dataset(src, n=2, ids=(0, 1))
    # corrupt image, truncated image, wrong-size mask, values outside the table, unknown colour,
    # mask without image, a text file among the images
    (src / "images" / "corrupt.png").write_bytes(b"not a png at all")
    good = (src / "images" / "img_00.png").read_bytes()
    (src / "images" / "truncated.png").write_bytes(good[: len(good) // 2])
    write_gray(src / "masks" / "truncated.png", np.zeros((24, 32), np.uint8))
    write_image(src / "images" / "small.png", noise_image(24, 32))
    write_gray(src / "masks" / "small.png", np.zeros((10, 10), np.uint8))
    write_image(src / "images" / "badval.png", noise_image(24, 32))
    write_gray(src / "masks" / "badval.png", np.full((24, 32), 42, np.uint8))
    write_image(src / "images" / "badcolor.png", noise_image(24, 32))
    write_image(src / "masks" / "badcolor.png", np.full((24, 32, 3), 77, np.uint8))
    write_gray(src / "masks" / "orphan.png", np.zeros((24, 32), np.uint8))
    (src / "images" / "notes.txt").write_text("hello")
    report = import_dataset(
        tmp_path / "p", "folders", folders(src, classes_file=classes_json(tmp_path / "c.json"))
    )
    reasons = {Path(path).name: reason for path, reason in report.skipped}
    assert report.images == 2
    assert "not a readable image" in reasons["corrupt.png"]
    assert "corrupt or truncated" in reasons["truncated.png"]
    assert "10x10" in reasons["small.png"] and "24" in reasons["small.png"]
    assert "42" in reasons["badval.png"]
    assert "[77, 77, 77]" in reasons["badcolor.png"]
    assert "no image" in reasons["orphan.png"]
    assert "not an image" in reasons["notes.txt"]
    assert len(report.skipped) == 7


def test_strict_turns_a_skip_into_an_error_and_changes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    folders_dataset(src, n=3, ids=(0, 1))
    import_dataset(tmp_path / "p", "folders", folders(src))
    before = project_state(tmp_path / "p")
    src2 = tmp_path / "src2"
    folders_dataset(src2, n=3, ids=(0, 1))
    (src2 / "images" / "zz_corrupt.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DatasetImportError, match="zz_corrupt.png"):
        import_dataset(tmp_path / "p", "folders", folders(src2, strict=True))
    assert project_state(tmp_path / "p") == before
    # without --strict the same import succeeds with one skip
    report = import_dataset(tmp_path / "p", "folders", folders(src2))
    assert report.images == 3 and len(report.skipped) == 1


def test_nothing_importable_is_an_error_and_creates_no_project(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "images" / "a.png").write_bytes(b"junk")
    with pytest.raises(DatasetImportError, match="a.png"):
        import_dataset(tmp_path / "new" / "p", "folders", ImportOptions(images=(src / "images",)))
    assert not (tmp_path / "new").exists()


def test_write_failure_mid_import_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    folders_dataset(src, n=2, ids=(0, 1))
    import_dataset(tmp_path / "p", "folders", folders(src))
    before = project_state(tmp_path / "p")
    src2 = tmp_path / "src2"
    for i in range(4):
        write_image(src2 / "images" / f"new_{i}.png", noise_image(24, 32, seed=i))
        write_gray(src2 / "masks" / f"new_{i}.png", np.full((24, 32), 1, np.uint8))
    real = imageio.write_mask
    calls = []

    def flaky(path: Path, *args: object, **kwargs: object) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise PermissionError(13, "Permission denied")
        real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(imageio, "write_mask", flaky)
    with pytest.raises(DatasetImportError, match="writable"):
        import_dataset(tmp_path / "p", "folders", folders(src2, copy=True))
    assert project_state(tmp_path / "p") == before
    assert not (tmp_path / "p" / "images").exists()


def test_unreadable_folder_is_a_skip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    folders_dataset(src, n=2, ids=(0, 1))
    locked = src / "locked"
    locked.mkdir()
    real_iterdir = Path.iterdir

    def iterdir(self: Path):  # noqa: ANN202
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    report = import_dataset(tmp_path / "p", "images", ImportOptions(sources=(src,)))
    assert report.images == 4  # images/ and masks/ pngs
    assert any(Path(p) == locked and "permission denied" in r for p, r in report.skipped)


def test_merge_into_existing_project_by_name(tmp_path: Path) -> None:
    project = Project.create(
        tmp_path / "p", ClassTable((ClassDef(0, "car", (1, 2, 3)), ClassDef(1, "tree", (4, 5, 6))))
    )
    other = ClassTable(
        (
            ClassDef(0, "road", (9, 9, 9)),
            ClassDef(1, "car", (7, 7, 7)),
            ClassDef(2, "person", (8, 8, 8)),
            ClassDef(3, "bridge", (5, 5, 5)),
        )
    )
    src = tmp_path / "src"
    masks = folders_dataset(src, n=2, ids=(0, 1, 2))
    report = import_dataset(
        project.root, "folders", folders(src, classes_file=classes_json(tmp_path / "o.json", other))
    )
    assert report.new_classes == ("road", "person", "bridge")  # unused classes of the file come too
    project = Project.open(project.root)
    names = {c.name: c.id for c in project.classes}
    assert names["car"] == 0 and names["tree"] == 1
    lut = {0: names["road"], 1: names["car"], 2: names["person"]}
    for stem, mask in masks.items():
        expected = np.vectorize(lut.get)(mask).astype(np.uint8)
        np.testing.assert_array_equal(project.read_mask(stem), expected)


def test_existing_project_checks_ids_against_its_own_classes(tmp_path: Path) -> None:
    project = Project.create(tmp_path / "p", ClassTable.from_names(["a", "b"]))
    src = tmp_path / "src"
    folders_dataset(src, n=2, ids=(0, 1, 5))
    with pytest.raises(DatasetImportError, match="5"):
        import_dataset(project.root, "folders", folders(src))


def test_copy_puts_images_into_the_project(tmp_path: Path) -> None:
    src = tmp_path / "my data ü"
    folders_dataset(src, n=2, ids=(0, 1))
    import_dataset(tmp_path / "proj ü", "folders", folders(src, copy=True))
    project = Project.open(tmp_path / "proj ü")
    for record in project.images:
        path = project.image_path(record)
        assert path.parent == project.root / "images" and path.is_file()
        assert not Path(record.path).is_absolute()


def test_images_format_kinds_exif_and_huge(tmp_path: Path) -> None:
    src = tmp_path / "pics ünï"
    write_image(src / "rgb.png", noise_image(20, 30))
    write_image(src / "gray.bmp", noise_image(20, 30, channels=1))
    write_image(src / "rgba.webp", noise_image(20, 30, channels=4))
    write_image(src / "sub" / "photo.tif", noise_image(20, 30))
    sixteen_bit_png(src / "deep.png")
    exif_jpeg(
        src / "rotated.jpg", noise_image(20, 30), orientation=6
    )  # stored 30 wide, shown 20 wide
    huge_png_header(src / "huge.png")
    report = import_dataset(tmp_path / "p", "images", ImportOptions(sources=(src,), split="test"))
    assert report.images == 7 and report.masks == 0 and report.skipped == []
    project = Project.open(tmp_path / "p")
    assert (project.image("rotated").width, project.image("rotated").height) == (20, 30)
    assert (project.image("huge").width, project.image("huge").height) == (20000, 20000)
    assert {r.split for r in project.images} == {"test"}
    assert {r.status for r in project.images} == {"unlabeled"}
    assert project.read_image("deep").shape == (20, 30, 3)


def test_bad_split_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SegstudioError, match="split"):
        import_dataset(
            tmp_path / "p", "images", ImportOptions(sources=(tmp_path,), split="training")
        )


def test_missing_source_file_is_reported(tmp_path: Path) -> None:
    write_image(tmp_path / "src" / "a.png", noise_image(8, 8))
    report = import_dataset(
        tmp_path / "p", "images", ImportOptions(sources=(tmp_path / "src", tmp_path / "gone"))
    )
    assert report.images == 1
    assert report.skipped == [(os.fspath(tmp_path / "gone"), "not found; check the path")]


def test_merge_that_cannot_fit_is_a_clear_error(tmp_path: Path) -> None:
    full = ClassTable.from_names([f"c{i}" for i in range(255)] + ["void"], ignore="void")
    project = Project.create(tmp_path / "p", full)
    before = project_state(project.root)
    src = tmp_path / "src"
    folders_dataset(src, n=2, ids=(0, 1))
    other = ClassTable.from_names(["c0", "brand new"])
    with pytest.raises(DatasetImportError, match="256 classes"):
        import_dataset(project.root, "folders", folders(src, classes_file=classes_json(tmp_path / "o.json", other)))
    assert project_state(project.root) == before


def test_importing_the_same_files_again_skips_them(tmp_path: Path) -> None:
    src = tmp_path / "src"
    folders_dataset(src, n=2, ids=(0, 1))
    import_dataset(tmp_path / "p", "folders", folders(src))
    folders_dataset(src, n=3, ids=(0, 1))  # one more image since
    report = import_dataset(tmp_path / "p", "folders", folders(src))
    assert report.images == 1 and Project.open(tmp_path / "p").image("img_02").status == "labeled"
    assert sorted(reason for _, reason in report.skipped) == [
        "already in the project as 'img_00'", "already in the project as 'img_01'"]
    assert len(Project.open(tmp_path / "p")) == 3
