"""`voc` and `cityscapes` importers on generated trees with the real layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from dataset_builders import noise_image, random_mask, write_gray, write_image, write_palette

from segstudio.core.importers import ImportOptions, import_dataset
from segstudio.core.importers.cityscapes import TRAIN_CLASSES
from segstudio.core.importers.voc import VOC_CLASS_NAMES, voc_classes
from segstudio.core.project import Project

H, W = 24, 40


def test_voc_layout_splits_classes_and_void(tmp_path: Path) -> None:
    root = tmp_path / "VOCdevkit" / "VOC2012"
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    masks = {}
    for i, stem in enumerate(["2007_000001", "2007_000002", "2007_000003", "2008_000004"]):
        write_image(root / "JPEGImages" / f"{stem}.jpg", noise_image(H, W, seed=i))
        mask = random_mask(H, W, [0, 1, 15, 20], seed=i)
        mask[0, :] = 255  # VOC's void border
        if stem != "2008_000004":
            write_palette(root / "SegmentationClass" / f"{stem}.png", mask, voc_classes())
            masks[stem] = mask
    (sets / "train.txt").write_text("2007_000001\n2007_000002\n")
    (sets / "val.txt").write_text("2007_000003\n")
    (sets / "trainval.txt").write_text("2007_000001\n2007_000002\n2007_000003\n")
    (sets / "test.txt").write_text("2008_000004\n")
    report = import_dataset(tmp_path / "p", "voc", ImportOptions(sources=(tmp_path / "VOCdevkit",)))
    assert (report.images, report.masks, report.skipped) == (4, 3, [])
    assert report.splits == {"train": 2, "val": 1, "test": 1}
    project = Project.open(tmp_path / "p")
    assert [c.name for c in project.classes.trainable] == list(VOC_CLASS_NAMES)
    assert project.classes.ignore_index == 255 and project.classes.by_id(255).name == "void"
    assert project.classes.by_id(15).color == (192, 128, 128)  # VOC's person colour
    for stem, mask in masks.items():
        np.testing.assert_array_equal(project.read_mask(stem), mask)
    assert project.image("2008_000004").status == "unlabeled"


def test_voc_value_outside_the_classes_is_skipped(tmp_path: Path) -> None:
    root = tmp_path / "VOC2012"
    write_image(root / "JPEGImages" / "a.jpg", noise_image(H, W))
    write_image(root / "JPEGImages" / "b.jpg", noise_image(H, W))
    write_gray(root / "SegmentationClass" / "a.png", np.full((H, W), 0, np.uint8))
    write_gray(root / "SegmentationClass" / "b.png", np.full((H, W), 77, np.uint8))
    report = import_dataset(tmp_path / "p", "voc", ImportOptions(sources=(root,)))
    assert report.images == 1
    assert Path(report.skipped[0][0]).name == "b.png" and "77" in report.skipped[0][1]


def test_cityscapes_label_ids_map_to_train_ids(tmp_path: Path) -> None:
    root = tmp_path / "cityscapes"
    rng = np.random.default_rng(0)
    expected = {}
    label_to_train = {label: train for label, train, _, _ in TRAIN_CLASSES}
    for split, city, n in (("train", "aachen", 2), ("val", "lindau", 1)):
        for i in range(n):
            base = f"{city}_{i:06d}_000019"
            write_image(root / "leftImg8bit" / split / city / f"{base}_leftImg8bit.png", noise_image(H, W, seed=i))
            labels = rng.integers(0, 34, size=(H, W)).astype(np.uint8)
            write_gray(root / "gtFine" / split / city / f"{base}_gtFine_labelIds.png", labels)
            write_gray(root / "gtFine" / split / city / f"{base}_gtFine_color.png", labels)  # ignored
            expected[base] = np.vectorize(lambda v: label_to_train.get(int(v), 255))(labels).astype(np.uint8)
    # the public test split: placeholder masks (all 'unlabeled' = 0) mean no mask
    base = "berlin_000000_000019"
    write_image(root / "leftImg8bit" / "test" / "berlin" / f"{base}_leftImg8bit.png", noise_image(H, W))
    write_gray(root / "gtFine" / "test" / "berlin" / f"{base}_gtFine_labelIds.png", np.zeros((H, W), np.uint8))
    write_image(root / "leftImg8bit" / "train_extra" / "x" / "y_leftImg8bit.png", noise_image(H, W))
    report = import_dataset(tmp_path / "p", "cityscapes", ImportOptions(sources=(root,)))
    assert (report.images, report.masks) == (4, 3)
    assert report.splits == {"train": 2, "val": 1, "test": 1}
    assert [Path(p).name for p, _ in report.skipped] == ["train_extra"]
    project = Project.open(tmp_path / "p")
    assert len(project.classes.trainable) == 19 and project.classes.ignore_index == 255
    assert project.classes.by_id(13).name == "car"
    for base, mask in expected.items():
        np.testing.assert_array_equal(project.read_mask(base), mask)
    assert project.image("berlin_000000_000019").status == "unlabeled"


def test_cityscapes_out_of_range_label_is_skipped(tmp_path: Path) -> None:
    root = tmp_path / "cs"
    for i, value in enumerate((7, 40)):
        base = f"c_{i}"
        write_image(root / "leftImg8bit" / "val" / "c" / f"{base}_leftImg8bit.png", noise_image(H, W))
        write_gray(root / "gtFine" / "val" / "c" / f"{base}_gtFine_labelIds.png", np.full((H, W), value, np.uint8))
    report = import_dataset(tmp_path / "p", "cityscapes", ImportOptions(sources=(root,)))
    assert report.images == 1 and "40" in report.skipped[0][1]
