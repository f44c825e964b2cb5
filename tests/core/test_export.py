"""Exporters on a generated project: layouts, split lists, status filter, colours, overlays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dataset_builders import noise_image, random_mask, write_image
from PIL import Image
from pycocotools import mask as mask_utils

from segstudio.core import imageio
from segstudio.core.classes import ClassDef, ClassTable
from segstudio.core.errors import ExportError, ProjectError
from segstudio.core.exporters import export_project
from segstudio.core.importers import ImportOptions, import_dataset
from segstudio.core.project import Project

CLASSES = ClassTable((ClassDef(0, "sky", (10, 20, 30)), ClassDef(1, "road", (200, 0, 0)),
                      ClassDef(4, "car", (0, 0, 250)), ClassDef(7, "void", (0, 0, 0), ignore=True)))
H, W = 20, 28


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """Six images: train/val/test, statuses labeled/reviewed/predicted/unlabeled."""
    project = Project.create(tmp_path / "proj", CLASSES)
    plan = [("a", "train", "labeled"), ("b", "train", "reviewed"), ("c", "val", "labeled"),
            ("d", "val", "predicted"), ("e", "test", "labeled"), ("f", "train", "unlabeled")]
    for i, (stem, split, status) in enumerate(plan):
        path = write_image(tmp_path / "imgs" / f"{stem}.png", noise_image(H, W, seed=i))
        record = project.add_image(path, split=split)
        if status != "unlabeled":
            project.write_mask(record, random_mask(H, W, [0, 1, 4, 7], seed=i), status=status, save_manifest=False)
    project.save()
    return project


def test_default_status_filter_and_split_lists(project: Project, tmp_path: Path) -> None:
    report = export_project(project, "masks", tmp_path / "out")
    assert report.images == 4  # labeled + reviewed only
    assert (tmp_path / "out" / "train.txt").read_text().split() == ["a", "b"]
    assert (tmp_path / "out" / "val.txt").read_text().split() == ["c"]
    assert (tmp_path / "out" / "test.txt").read_text().split() == ["e"]
    with_predicted = export_project(project, "masks", tmp_path / "out2", statuses=("labeled", "reviewed", "predicted"))
    assert with_predicted.images == 5
    only_val = export_project(project, "masks", tmp_path / "out3", split="val")
    assert only_val.images == 1 and not (tmp_path / "out3" / "train.txt").exists()
    saved = Image.open(tmp_path / "out" / "masks" / "a.png")
    assert saved.mode == "P"
    np.testing.assert_array_equal(np.asarray(saved), project.read_mask("a"))


def test_color_and_overlay(project: Project, tmp_path: Path) -> None:
    export_project(project, "color", tmp_path / "c")
    rgb = np.asarray(Image.open(tmp_path / "c" / "color" / "a.png").convert("RGB"))
    mask = project.read_mask("a")
    np.testing.assert_array_equal(rgb, CLASSES.color_lut()[mask])
    export_project(project, "overlay", tmp_path / "o")
    over = np.asarray(Image.open(tmp_path / "o" / "overlay" / "a.png").convert("RGB")).astype(int)
    image = project.read_image("a").astype(int)
    colors = CLASSES.color_lut()[mask].astype(int)
    labelled = mask != 7
    assert np.all(np.abs(over[labelled] - (image[labelled] + colors[labelled]) / 2) <= 1)
    np.testing.assert_array_equal(over[~labelled], image[~labelled])


def test_coco_export_is_valid_coco(project: Project, tmp_path: Path) -> None:
    export_project(project, "coco", tmp_path / "coco")
    data = json.loads((tmp_path / "coco" / "annotations" / "instances_train.json").read_text())
    assert [c["name"] for c in data["categories"]] == ["sky", "road", "car"]
    assert [c["id"] for c in data["categories"]] == [1, 2, 3]
    ids = {img["id"]: img["file_name"] for img in data["images"]}
    assert sorted(ids.values()) == ["a.png", "b.png"]
    for ann in data["annotations"]:
        name = ids[ann["image_id"]].removesuffix(".png")
        class_id = {1: 0, 2: 1, 3: 4}[ann["category_id"]]
        decoded = mask_utils.decode({"size": ann["segmentation"]["size"], "counts": ann["segmentation"]["counts"].encode()})
        np.testing.assert_array_equal(decoded.astype(bool), project.read_mask(name) == class_id)
        assert ann["area"] == int(decoded.sum()) and ann["iscrowd"] == 0


def test_voc_and_cityscapes_layouts(project: Project, tmp_path: Path) -> None:
    export_project(project, "voc", tmp_path / "voc")
    sets = tmp_path / "voc" / "ImageSets" / "Segmentation"
    assert sets.joinpath("trainval.txt").read_text().split() == ["a", "b", "c"]
    assert (tmp_path / "voc" / "JPEGImages" / "a.png").is_file()
    export_project(project, "cityscapes", tmp_path / "cs")
    label = tmp_path / "cs" / "gtFine" / "val" / "segstudio" / "c_gtFine_labelIds.png"
    assert Image.open(label).mode == "L"
    np.testing.assert_array_equal(np.asarray(Image.open(label)), project.read_mask("c"))
    report = import_dataset(tmp_path / "back", "cityscapes", ImportOptions(sources=(tmp_path / "cs",)))
    assert report.splits == {"train": 2, "val": 1, "test": 1}


def test_cityscapes_project_exports_real_label_ids(tmp_path: Path) -> None:
    from segstudio.core.importers.cityscapes import TRAIN_CLASSES, cityscapes_classes

    project = Project.create(tmp_path / "p", cityscapes_classes())
    path = write_image(tmp_path / "x.png", noise_image(H, W))
    record = project.add_image(path, split="train")
    mask = random_mask(H, W, [0, 13, 18, 255], seed=2)
    project.write_mask(record, mask, status="labeled")
    export_project(project, "cityscapes", tmp_path / "out")
    labels = np.asarray(Image.open(tmp_path / "out" / "gtFine" / "train" / "segstudio" / "x_gtFine_labelIds.png"))
    to_label = {train: label for label, train, _, _ in TRAIN_CLASSES} | {255: 0}
    np.testing.assert_array_equal(labels, np.vectorize(to_label.get)(mask))
    assert not (tmp_path / "out" / "classes.json").exists()
    import_dataset(tmp_path / "back", "cityscapes", ImportOptions(sources=(tmp_path / "out",)))
    np.testing.assert_array_equal(Project.open(tmp_path / "back").read_mask("x"), mask)


def test_export_errors(project: Project, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no images"):
        export_project(project, "masks", tmp_path / "o", split="unassigned")
    with pytest.raises(ProjectError, match="status"):
        export_project(project, "masks", tmp_path / "o", statuses=("done",))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError):
        export_project(project, "masks", tmp_path / "file")
    # a missing image or a broken mask is left out with its reason, not fatal
    project.image_path("a").unlink()
    imageio.write_mask(project.mask_path("b"), np.zeros((3, 3), np.uint8), CLASSES)
    report = export_project(project, "voc", tmp_path / "v")
    reasons = dict(report.skipped)
    assert report.images == 2 and "missing" in reasons["a"] and "3x3" in reasons["b"]


def test_color_export_imports_back_through_the_class_colours(project: Project, tmp_path: Path) -> None:
    export_project(project, "color", tmp_path / "c")
    images = tmp_path / "imgs"
    report = import_dataset(tmp_path / "back", "folders", ImportOptions(
        images=(images,), masks=(tmp_path / "c" / "color",), classes_file=tmp_path / "c" / "classes.json"))
    assert report.masks == 4
    back = Project.open(tmp_path / "back")
    for stem in ("a", "b", "c", "e"):
        np.testing.assert_array_equal(back.read_mask(stem), project.read_mask(stem))
