"""The image list: long names are elided in the middle, never scrolled sideways; the tooltip
carries the full name and path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt

from segstudio.core.project import Project
from segstudio.ui.project.dataset_dock import DatasetDock


def test_long_names_fit_a_narrow_list_without_a_sideways_scroll_bar(qtbot, make_project) -> None:  # noqa: ANN001
    project: Project = make_project(count=30, labeled=0)  # enough rows for a vertical scroll bar
    long_name = "2026-11-30_field-survey_drone-flight-07_orthomosaic_tile_000123_of_004096_rgb_nir"
    path = project.root / "images" / f"{long_name}.png"
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(path)
    project.add_image(path, split="train")
    project.save()
    dock = DatasetDock()
    qtbot.addWidget(dock)
    dock.resize(190, 400)
    dock.show()
    qtbot.waitExposed(dock)
    dock.set_project(project)
    qtbot.wait(50)
    view = dock.view
    assert not view.horizontalScrollBar().isVisible()
    assert view.horizontalScrollBar().maximum() == 0  # nothing to scroll to either
    row = next(r for r in range(view.model().rowCount()) if long_name in str(view.model().index(r, 0).data()))
    index = view.model().index(row, 0)
    assert view.visualRect(index).width() <= view.viewport().width()
    tip = str(index.data(Qt.ItemDataRole.ToolTipRole))
    assert long_name in tip and str(Path(path)) in tip
