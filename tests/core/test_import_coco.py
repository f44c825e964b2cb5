"""`coco` importer: polygons, RLE (both kinds), crowd, overlaps, categories, broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dataset_builders import coco_file, noise_image, project_state, write_image
from pycocotools import mask as mask_utils

from segstudio.core.errors import DatasetImportError, MaskError
from segstudio.core.importers import ImportOptions, import_dataset
from segstudio.core.importers.coco import compressed_rle_total, segmentation_to_mask
from segstudio.core.project import Project

H, W = 40, 50
CATEGORIES = [{"id": 12, "name": "person"}, {"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]


def rle_of(mask: np.ndarray, compressed: bool = True) -> dict:
    if compressed:
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
    flat = mask.astype(np.uint8).ravel(order="F")
    counts, current, run = [], 0, 0
    for value in flat:
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    return {"size": [mask.shape[0], mask.shape[1]], "counts": counts}


def disk(cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def square(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    out = np.zeros((H, W), bool)
    out[y0:y1, x0:x1] = True
    return out


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """Two images: one with four overlapping objects (one crowd), one with none."""
    src = tmp_path / "coco"
    write_image(src / "images" / "a.png", noise_image(H, W))
    write_image(src / "images" / "b.png", noise_image(H, W, seed=1))
    big_cat = [5, 5, 35, 5, 35, 30, 5, 30]  # polygon covering x 5..34, y 5..29 (pixel areas)
    dog = square(10, 10, 20, 20)
    person = disk(30, 25, 6)
    crowd = square(40, 30, 48, 38)
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 7, "segmentation": rle_of(dog, compressed=False), "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 3, "segmentation": [big_cat], "iscrowd": 0},
        {"id": 3, "image_id": 1, "category_id": 12, "segmentation": rle_of(person), "iscrowd": 0},
        {"id": 4, "image_id": 1, "category_id": 12, "segmentation": rle_of(crowd), "iscrowd": 1},
    ]
    images = [{"id": 1, "file_name": "a.png", "width": W, "height": H},
              {"id": 2, "file_name": "b.png", "width": W, "height": H}]
    path = coco_file(src / "annotations" / "instances_val.json", images, annotations, CATEGORIES)
    # Expected raster, drawn independently: classes by sorted category id (cat 3 -> 1, dog 7 -> 2,
    # person 12 -> 3), background 0, crowd 255; larger objects first.
    expected = np.zeros((H, W), np.uint8)
    layers = [(square(5, 5, 35, 30), 1), (dog, 2), (person, 3), (crowd, 255)]
    for layer, value in sorted(layers, key=lambda item: -int(item[0].sum())):
        expected[layer] = value
    return path, expected


def test_coco_rasterises_like_an_independent_drawing(tmp_path: Path, dataset: tuple[Path, np.ndarray]) -> None:
    path, expected = dataset
    report = import_dataset(tmp_path / "p", "coco", ImportOptions(sources=(path,)))
    assert (report.images, report.masks, report.skipped) == (2, 2, [])
    project = Project.open(tmp_path / "p")
    assert [(c.id, c.name) for c in project.classes] == [
        (0, "background"), (1, "cat"), (2, "dog"), (3, "person"), (255, "unlabeled")]
    assert project.classes.ignore_index == 255
    assert project.image("a").split == "val"  # from the file name
    np.testing.assert_array_equal(project.read_mask("a"), expected)
    assert np.all(project.read_mask("b") == 0)
    # the small dog sits on top of the big cat; the person disk over the cat where they overlap
    assert project.read_mask("a")[15, 15] == 2 and project.read_mask("a")[25, 30] == 3


def test_bad_annotations_skip_their_image_only(tmp_path: Path, dataset: tuple[Path, np.ndarray]) -> None:
    import json

    path, _ = dataset
    data = json.loads(path.read_text())
    data["images"].append({"id": 3, "file_name": "gone.png", "width": W, "height": H})
    write_image(path.parent.parent / "images" / "c.png", noise_image(H, W, seed=3))
    write_image(path.parent.parent / "images" / "d.png", noise_image(H, W, seed=4))
    data["images"] += [{"id": 4, "file_name": "c.png"}, {"id": 5, "file_name": "d.png", "width": 99}]
    bad_rle = rle_of(square(0, 0, 5, 5))
    bad_rle["counts"] = bad_rle["counts"][:-1] + "9"
    data["annotations"] += [
        {"id": 10, "image_id": 4, "category_id": 99, "segmentation": [[1, 1, 5, 1, 5, 5]]},
        {"id": 11, "image_id": 4, "category_id": 3, "segmentation": bad_rle},
        {"id": 12, "image_id": 77, "category_id": 3, "segmentation": [[1, 1, 5, 1, 5, 5]]},
    ]
    path.write_text(json.dumps(data))
    report = import_dataset(tmp_path / "p", "coco", ImportOptions(sources=(path,)))
    assert report.images == 2
    reasons = " | ".join(f"{Path(p).name}: {r}" for p, r in report.skipped)
    assert "gone.png" in reasons and "not found" in reasons
    assert "category_id 99" in reasons
    assert "image_id 77" in reasons
    assert "width 99" in reasons
    assert len(report.skipped) == 4


@pytest.mark.parametrize("segm", [
    [[1, 2, 3, 4]],  # a bbox-length polygon
    [[0, 0, 10, 0, float("nan"), 5]],
    [[0, 0, 1e12, 0, 5, 5]],
    {"size": [H, W], "counts": [5, 7]},
    {"size": [H, W], "counts": [-1, H * W + 1]},
    {"size": [W, H], "counts": "abc"},
    {"size": [H, W], "counts": "\x00\xff"},
    {"size": [H, W], "counts": "PP"},
    {"size": [H, W], "counts": 12},
    "polygon",
    [],
])
def test_malformed_segmentations_raise_mask_error(segm: object) -> None:
    with pytest.raises(MaskError):
        segmentation_to_mask(segm, H, W)


def test_compressed_rle_total_matches_pycocotools() -> None:
    rng = np.random.default_rng(5)
    for _ in range(20):
        mask = rng.random((H, W)) < rng.random()
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert compressed_rle_total(rle["counts"]) == H * W
        np.testing.assert_array_equal(segmentation_to_mask(rle_of(mask), H, W), mask)


def test_schema_invalid_json_fails_cleanly(tmp_path: Path) -> None:
    unhashable = '{"images": [{"id": [1], "file_name": "a.png"}], "categories": [], "annotations": [{"image_id": [1]}]}'
    for text in ["{", "[]", '{"images": 3}', '{"images": [], "categories": [{"id": "x"}]}', unhashable]:
        path = tmp_path / "bad.json"
        path.write_text(text)
        with pytest.raises(DatasetImportError, match="bad.json"):
            import_dataset(tmp_path / "p", "coco", ImportOptions(sources=(path,)))
        assert not (tmp_path / "p").exists()


def test_merge_into_existing_project_keeps_names(tmp_path: Path, dataset: tuple[Path, np.ndarray]) -> None:
    from segstudio.core.classes import ClassDef, ClassTable

    path, expected = dataset
    Project.create(tmp_path / "p", ClassTable((ClassDef(0, "dog", (1, 1, 1)), ClassDef(5, "background", (0, 0, 0)))))
    before = project_state(tmp_path / "p")
    report = import_dataset(tmp_path / "p", "coco", ImportOptions(sources=(path,), split="train"))
    assert report.images == 2 and set(report.new_classes) == {"cat", "person"}
    assert project_state(tmp_path / "p") != before
    project = Project.open(tmp_path / "p")
    ids = {c.name: c.id for c in project.classes}
    remap = {0: ids["background"], 1: ids["cat"], 2: ids["dog"], 3: ids["person"], 255: project.classes.ignore_index}
    np.testing.assert_array_equal(project.read_mask("a"), np.vectorize(remap.get)(expected).astype(np.uint8))
    assert project.image("a").split == "train"
