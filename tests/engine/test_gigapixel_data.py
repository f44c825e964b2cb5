"""Training leaves gigapixel images out, with a note, instead of decoding them whole
(random crops of tiled images are not built yet)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from segstudio.core import gigapixel_project
from segstudio.core.classes import ClassTable
from segstudio.core.project import Project
from segstudio.engine.data import prepare_data

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from gigapixel_builders import write_pyramid  # noqa: E402


def test_labelled_gigapixel_image_is_left_out_with_a_note(tmp_path: Path) -> None:
    project = Project.create(tmp_path / "proj", ClassTable.from_names(["a", "b"]))
    for name in ("one", "two"):
        path = tmp_path / f"{name}.png"
        Image.fromarray(np.full((32, 32, 3), 50, np.uint8)).save(path)
        project.add_image(path, split="train", status="labeled")
        project.write_mask(name, np.zeros((32, 32), np.uint8))
    project.add_image(write_pyramid(tmp_path / "slide.tif", 13_000, 12_000), split="train", status="labeled")
    mask = gigapixel_project.read_mask(project, "slide")
    mask[:5, :5] = 1
    gigapixel_project.save_chunks(project, "slide", mask, {(0, 0)})
    assert project.has_mask("slide")
    data = prepare_data(project)
    assert "slide" not in {r.id for r in data.train + data.val}
    assert any("gigapixel" in note and "slide" in note for note in data.warnings)
