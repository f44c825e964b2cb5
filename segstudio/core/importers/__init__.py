"""Dataset importers: one module per format, one shared driver (driver.run_import).

    report = import_dataset("my-project", "folders", ImportOptions(images=(...), masks=(...)))

Formats: folders, images, voc, cityscapes, coco, labelme. Each module has
`scan(options, project_classes) -> DatasetSource`, a lazy stream of items.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from segstudio.core.errors import DatasetImportError
from segstudio.core.importers.base import (
    DatasetSource,
    ImportItem,
    ImportOptions,
    ImportReport,
    Skip,
    SourceMask,
)
from segstudio.core.importers.driver import run_import
from segstudio.core.progress import ProgressCallback

FORMATS = ("folders", "images", "voc", "cityscapes", "coco", "labelme")

__all__ = [
    "FORMATS",
    "DatasetSource",
    "ImportItem",
    "ImportOptions",
    "ImportReport",
    "Skip",
    "SourceMask",
    "import_dataset",
]


def import_dataset(project_root: str | Path, fmt: str, options: ImportOptions,
                   progress: ProgressCallback | None = None) -> ImportReport:
    """Import a dataset of format `fmt` into a project (created if it does not exist)."""
    if fmt not in FORMATS:
        raise DatasetImportError(f"unknown import format '{fmt}'; use one of {', '.join(FORMATS)}")
    module = importlib.import_module(f"segstudio.core.importers.{fmt}")
    return run_import(Path(project_root), fmt, module.scan, options, progress)
