"""New classes never look unlabelled, and a class file given with plain images is used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from segstudio.core.classes import DEFAULT_IGNORE_COLOR, ClassTable, parse_labels, voc_color
from segstudio.core.importers import import_dataset
from segstudio.core.importers.base import ImportOptions
from segstudio.core.project import Project


def test_a_first_class_that_is_not_background_is_not_drawn_black() -> None:
    table = parse_labels("road,car,sky".split(","), source="--classes").ensure_ignore()
    colors = {cls.name: cls.color for cls in table}
    assert colors["unlabeled"] == DEFAULT_IGNORE_COLOR
    assert all(colors[name] != DEFAULT_IGNORE_COLOR for name in ("road", "car", "sky"))
    assert len({colors["road"], colors["car"], colors["sky"]}) == 3
    assert colors["car"] == voc_color(1)  # the rest keep the VOC map
    background = ClassTable.from_names(["background", "person"])
    assert background.by_id(0).color == (0, 0, 0)  # VOC's own convention stays


def test_images_import_takes_the_given_class_file(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(3):
        Image.fromarray(np.full((20, 30, 3), index * 60, np.uint8)).save(folder / f"p{index}.png")
    labels = tmp_path / "labels.txt"
    labels.write_text("weed\ncrop\nsoil\n")
    report = import_dataset(tmp_path / "proj", "images", ImportOptions(sources=(folder,), classes_file=labels))
    project = Project.open(tmp_path / "proj")
    assert report.images == 3 and len(project.images) == 3
    assert [cls.name for cls in project.classes.trainable] == ["weed", "crop", "soil"]
    assert project.classes.ignore_index == 255
