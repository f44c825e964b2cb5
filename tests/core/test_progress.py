"""Import and export report progress the same way: (done, total, item)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from dataset_builders import noise_image, write_image

from segstudio.core.classes import ClassTable
from segstudio.core.exporters import export_project
from segstudio.core.importers import ImportOptions, import_dataset
from segstudio.core.progress import UNKNOWN_TOTAL
from segstudio.core.project import Project

CLASSES = ClassTable.from_names(["bg", "fg", "void"], ignore="void")


def test_import_and_export_report_done_total_item(tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    for i, name in enumerate(names):
        write_image(tmp_path / "src" / f"{name}.png", noise_image(4, 6, seed=i))
    Project.create(tmp_path / "p", CLASSES)
    imported: list[tuple[int, int, str]] = []
    import_dataset(tmp_path / "p", "images", ImportOptions(sources=(tmp_path / "src",)),
                   lambda *args: imported.append(args))
    # An import discovers its files as it goes, so its total stays unknown.
    assert [(done, total) for done, total, _ in imported] == [(1, UNKNOWN_TOTAL), (2, UNKNOWN_TOTAL),
                                                              (3, UNKNOWN_TOTAL)]
    assert sorted(Path(item).stem for _, _, item in imported) == names

    project = Project.open(tmp_path / "p")
    for record in project.images[:2]:
        project.write_mask(record, np.zeros((4, 6), np.uint8), status="labeled")
    exported: list[tuple[int, int, str]] = []
    export_project(project, "masks", tmp_path / "out", progress=lambda *args: exported.append(args))
    assert exported == [(1, 2, project.images[0].id), (2, 2, project.images[1].id)]
