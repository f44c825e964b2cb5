"""`labelme` importer: every shape kind against an analytic expectation, order, ignore, embedded images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dataset_builders import labelme_file, noise_image, png_b64, write_image

from segstudio.core.importers import ImportOptions, import_dataset
from segstudio.core.project import Project

H, W = 60, 80
YY, XX = np.mgrid[:H, :W]


def box(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """Pixels x0..x1, y0..y1 inclusive (LabelMe draws the outline too)."""
    return (XX >= x0) & (XX <= x1) & (YY >= y0) & (YY <= y1)


def dist(cx: float, cy: float) -> np.ndarray:
    return np.hypot(XX - cx, YY - cy)


def import_labelme(tmp_path: Path, *sources: Path, **kw: object):  # noqa: ANN201
    report = import_dataset(tmp_path / "p", "labelme", ImportOptions(sources=sources, **kw))  # type: ignore[arg-type]
    return report, Project.open(tmp_path / "p")


def test_shapes_match_analytic_rasters(tmp_path: Path) -> None:
    src = tmp_path / "lm"
    write_image(src / "scene.png", noise_image(H, W))
    patch = np.zeros((5, 10), np.uint8)
    patch[1:4, 2:9] = 255
    shapes = [
        {"label": "road", "shape_type": "rectangle", "points": [[30, 20], [10, 5]]},  # corners in any order
        {"label": "building", "shape_type": "polygon", "points": [[40, 10], [60, 10], [60, 30], [40, 30]]},
        {"label": "road", "shape_type": "polygon", "points": [[55, 25], [70, 25], [70, 35], [55, 35]]},  # on top
        {"label": "tree", "shape_type": "circle", "points": [[20, 40], [20, 48]]},
        {"label": "sign", "shape_type": "point", "points": [[70, 50]]},
        {"label": "__ignore__", "shape_type": "rectangle", "points": [[0, 0], [3, 3]]},
        {"label": "wire", "shape_type": "line", "points": [[5, 56], [50, 56]]},
        {"label": "blob", "shape_type": "mask", "points": [[65, 0], [74, 4]], "mask": png_b64(patch)},
    ]
    labelme_file(src / "scene.json", shapes, H, W, image="scene.png")
    report, project = import_labelme(tmp_path, src, split="train")
    assert (report.images, report.masks, report.skipped) == (1, 1, [])
    ids = {c.name: c.id for c in project.classes}
    assert ids["background"] == 0 and project.classes.by_id(255).ignore
    mask = project.read_mask("scene")
    assert np.all(mask[box(10, 5, 30, 20) & ~box(0, 0, 3, 3)] == ids["road"])
    assert np.all(mask[box(40, 10, 60, 30) & ~box(55, 25, 70, 35)] == ids["building"])
    assert np.all(mask[box(55, 25, 70, 35)] == ids["road"])  # later shape on top
    assert np.all(mask[box(0, 0, 3, 3)] == 255)
    d = dist(20, 40)
    assert np.all(mask[d <= 7] == ids["tree"]) and not np.any(mask[d >= 9.5] == ids["tree"])
    d = dist(70, 50)
    assert np.all(mask[d <= 4] == ids["sign"]) and not np.any(mask[d >= 6.5] == ids["sign"])
    band = np.abs(YY - 56)
    along = (XX >= 8) & (XX <= 47)
    assert np.all(mask[along & (band <= 3)] == ids["wire"])
    assert not np.any(mask[band >= 7] == ids["wire"])
    blob = np.zeros((H, W), bool)
    blob[1:4, 67:74] = True
    np.testing.assert_array_equal(mask == ids["blob"], blob)
    covered = box(10, 5, 30, 20) | box(40, 10, 70, 35) | (dist(20, 40) <= 9.5) | (dist(70, 50) <= 6.5) | box(0, 0, 3, 3) | (band <= 6) | box(65, 0, 74, 4)
    assert np.all(mask[~covered] == 0)


def test_embedded_image_is_written_into_the_project(tmp_path: Path) -> None:
    src = tmp_path / "lm"
    pixels = noise_image(H, W, seed=4)
    labelme_file(src / "emb.json", [{"label": "a", "shape_type": "rectangle", "points": [[1, 1], [5, 5]]}],
                 H, W, image="missing.jpg", embed=pixels)
    report, project = import_labelme(tmp_path, src)
    assert report.images == 1
    path = project.image_path("emb")
    assert path.parent == project.root / "images" and path.suffix == ".png"
    np.testing.assert_array_equal(project.read_image("emb"), pixels)


def test_background_label_and_labels_file(tmp_path: Path) -> None:
    src = tmp_path / "lm"
    write_image(src / "x.png", noise_image(H, W))
    labelme_file(src / "x.json", [
        {"label": "cat", "shape_type": "rectangle", "points": [[0, 0], [79, 59]]},
        {"label": "_background_", "shape_type": "rectangle", "points": [[10, 10], [20, 20]]},
    ], H, W, image="x.png")
    labels = tmp_path / "labels.txt"
    labels.write_text("__ignore__\n_background_\ndog\ncat\n")
    report, project = import_labelme(tmp_path, src, classes_file=labels)
    assert [(c.id, c.name) for c in project.classes] == [(255, "unlabeled"), (0, "background"), (1, "dog"), (2, "cat")]
    mask = project.read_mask("x")
    assert np.all(mask[box(10, 10, 20, 20)] == 0) and np.all(mask[~box(10, 10, 20, 20)] == 2)


@pytest.mark.parametrize("content, reason", [
    ("{not json", "not valid JSON"),
    ('{"shapes": 5}', "shapes"),
    (json.dumps({"shapes": [{"label": "a", "shape_type": "circle", "points": [[1, 1]]}], "imagePath": "x.png"}), "2 point"),
    (json.dumps({"shapes": [{"label": "a", "shape_type": "star", "points": [[1, 1]]}], "imagePath": "x.png"}), "star"),
    (json.dumps({"shapes": [{"label": "a", "points": [[1, "q"], [2, 2], [3, 3]]}], "imagePath": "x.png"}), "finite"),
    (json.dumps({"shapes": [], "imagePath": "x.png", "imageHeight": 999}), "imageHeight"),
    (json.dumps({"shapes": [], "imagePath": "nope.png"}), "not found"),
    (json.dumps({"shapes": [], "imagePath": None, "imageData": "%%%"}), "base64"),
])
def test_broken_files_are_skipped_with_a_reason(tmp_path: Path, content: str, reason: str) -> None:
    src = tmp_path / "lm"
    write_image(src / "x.png", noise_image(H, W))
    write_image(src / "ok.png", noise_image(H, W))
    labelme_file(src / "ok.json", [], H, W, image="ok.png")
    (src / "x.json").write_text(content)
    report, project = import_labelme(tmp_path, src)
    assert report.images == 1
    assert len(report.skipped) == 1 and Path(report.skipped[0][0]).name == "x.json"
    assert reason in report.skipped[0][1]
