"""Exporters: masks, color, overlay, voc, coco, cityscapes, geotiff (each with split lists).

    report = export_project(project, "voc", Path("out"), split="train")

Default images: statuses labeled and reviewed; add "predicted" to include predictions.
Exported masks imported again (`segstudio import`) give back the same pixel values.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from segstudio.core.errors import ExportError
from segstudio.core.exporters.common import (
    DEFAULT_STATUSES,
    ExportReport,
    ExportRun,
    prepare_out,
    select_records,
)
from segstudio.core.progress import ProgressCallback
from segstudio.core.project import Project

FORMATS = ("masks", "color", "overlay", "voc", "coco", "cityscapes", "geotiff")

__all__ = ["DEFAULT_STATUSES", "FORMATS", "ExportReport", "export_project"]


def _writer(fmt: str) -> Callable[[ExportRun], None]:
    if fmt == "masks":
        from segstudio.core.exporters.simple import export_masks
        return export_masks
    if fmt == "color":
        from segstudio.core.exporters.simple import export_color
        return export_color
    if fmt == "overlay":
        from segstudio.core.exporters.simple import export_overlay
        return export_overlay
    if fmt == "voc":
        from segstudio.core.exporters.voc import export_voc
        return export_voc
    if fmt == "coco":
        from segstudio.core.exporters.coco import export_coco
        return export_coco
    if fmt == "cityscapes":
        from segstudio.core.exporters.cityscapes import export_cityscapes
        return export_cityscapes
    if fmt == "geotiff":
        from segstudio.core.exporters.geotiff import export_geotiff
        return export_geotiff
    raise ExportError(f"unknown export format '{fmt}'; use one of {', '.join(FORMATS)}")


def export_project(project: Project, fmt: str, out: str | Path, split: str | None = None,
                   statuses: tuple[str, ...] = DEFAULT_STATUSES,
                   progress: ProgressCallback | None = None) -> ExportReport:
    """Write the chosen images' masks to `out` in format `fmt`."""
    writer = _writer(fmt)
    records = select_records(project, split, statuses)
    if not records:
        raise ExportError(
            f"no images to export (split {split or 'any'}, status {', '.join(statuses)}); "
            "label some images or widen --status/--split"
        )
    out = Path(out)
    prepare_out(out)
    run = ExportRun(project, out, fmt, records, progress)
    try:
        writer(run)
    except OSError as exc:
        raise ExportError(f"cannot write into {out}: {exc.strerror or exc}; is it writable, with free space?") from exc
    return run.report()
