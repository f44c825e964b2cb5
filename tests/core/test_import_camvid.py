"""Real data: CamVid imported through the CLI (session fixture), its counts and class shares,
and export -> import round trips that must give back bit-identical masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segstudio.cli.main import main
from segstudio.core.exporters import export_project
from segstudio.core.importers import ImportOptions, import_dataset
from segstudio.core.project import Project

# Pixel share per class over trainannot, from ../shared/data/camvid/README.md.
README_SHARES = {
    "Sky": 16.9, "Building": 23.3, "Pole": 1.0, "Road": 31.7, "Pavement": 4.5, "Tree": 9.7,
    "SignSymbol": 1.2, "Fence": 1.1, "Car": 5.9, "Pedestrian": 0.6, "Bicyclist": 0.3, "Unlabelled": 4.0,
}


def test_camvid_counts_and_classes(camvid_project: Path) -> None:
    project = Project.open(camvid_project)
    summary = project.summary()
    assert summary["images"] == 468 and summary["masks"] == 468
    assert summary["splits"]["train"] == 367 and summary["splits"]["val"] == 101
    assert summary["status"]["labeled"] == 468
    assert len(project.classes) == 12
    assert project.classes.ignore_index == 11 and project.classes.by_id(11).name == "Unlabelled"
    assert (project.image("0001TP_006690").width, project.image("0001TP_006690").height) == (480, 360)


def test_camvid_train_pixel_shares_match_the_readme(camvid_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(camvid_project), "--json", "--split", "train"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["images"] == 367
    assert {c["name"] for c in data["classes"]} == set(README_SHARES)
    for name, percent in README_SHARES.items():
        assert abs(data["pixel_share"][name] * 100 - percent) <= 0.1, name
    assert abs(sum(data["pixel_share"].values()) - 1.0) < 1e-9


def test_small_camvid_fixture(small_camvid_project: Path) -> None:
    project = Project.open(small_camvid_project)
    assert project.summary()["splits"] == {"train": 24, "val": 8, "test": 0, "unassigned": 0}
    assert all(project.image_path(r).parent == project.root / "images" for r in project.images)
    assert len(project.classes) == 12


@pytest.mark.parametrize("fmt, source", [
    ("masks", lambda out: ("folders", (out,))),
    ("voc", lambda out: ("voc", (out,))),
    ("coco", lambda out: ("coco", ())),
    ("cityscapes", lambda out: ("cityscapes", (out,))),
])
def test_export_then_import_gives_identical_masks(small_camvid_project: Path, tmp_path: Path, fmt: str,
                                                  source) -> None:  # noqa: ANN001
    # The 32-frame CamVid project keeps this fast; the formats do not care about the count.
    project = Project.open(small_camvid_project)
    out = tmp_path / "out"
    report = export_project(project, fmt, out)
    assert report.images == 32 and report.skipped == []
    import_fmt, sources = source(out)
    if import_fmt == "coco":  # one instances file per split
        sources = (out / "annotations" / "instances_train.json", out / "annotations" / "instances_val.json")
    back = import_dataset(tmp_path / "again", import_fmt, ImportOptions(sources=sources))
    assert (back.images, back.masks) == (32, 32)
    assert back.splits == {"train": 24, "val": 8}
    again = Project.open(tmp_path / "again")
    assert again.classes == project.classes
    for record in again.images:
        original = project.image(record.id)
        assert record.split == original.split
        assert np.array_equal(again.read_mask(record), project.read_mask(original)), record.id
        # the images travel byte for byte
        assert again.image_path(record).read_bytes() == project.image_path(original).read_bytes()
