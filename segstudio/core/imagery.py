"""Channel table and display mapping of a project with scientific or geospatial images.

Run once after an import (`prepare`): when any image is not a plain 8-bit photo, the project
gets a channel table (band names, all fed to the model) and a display mapping whose
contrast limits are percentiles over a sample of the images, so the same value looks the
same in every image. Already set values are kept: a user's choices survive re-imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from segstudio.core import channels, display, gigapixel_project
from segstudio.core.errors import ImageReadError, ProjectError
from segstudio.core.project import ImageRecord, Project

# Images sampled for the contrast limits (spread over the list), pixels per image.
SAMPLE_IMAGES = 16
SAMPLE_PIXELS = 65536


@dataclass(frozen=True)
class Prepared:
    """What `prepare` did: whether it set the table/mapping, and notes for the report."""

    changed: bool
    notes: tuple[str, ...] = ()


def needs_table(records: Sequence[ImageRecord]) -> bool:
    return any(not channels.is_plain(r.channels, r.dtype) for r in records)


def _spread(records: Sequence[ImageRecord], count: int) -> list[ImageRecord]:
    if len(records) <= count:
        return list(records)
    step = len(records) / count
    return [records[int(i * step)] for i in range(count)]


def prepare(project: Project, names: Sequence[str] = (), refresh_limits: bool = False) -> Prepared:
    """Give `project` its channel table and display mapping if its images need them."""
    records = project.images
    if not needs_table(records):
        return Prepared(False)
    counts = {r.channels for r in records if r.channels}
    if len(counts) > 1 and channels.table_of(project.settings) is None:
        # A photo project with a few deep images stays a photo project (shown and trained as
        # 8-bit RGB, as before): a channel table needs every image to have the same bands.
        return Prepared(False, (f"images have different band counts ({', '.join(map(str, sorted(counts)))}): "
                                "all are shown and trained as 8-bit RGB; keep one kind of image per "
                                "project to use their own bands and contrast",))
    notes: list[str] = []
    count = max(counts) if counts else 1
    changed = False
    table = channels.table_of(project.settings)
    if table is None or table.count != count:
        dtype = next((r.dtype for r in records if r.channels == count and r.dtype), "uint16")
        table = channels.ChannelTable(tuple(channels.Channel(n) for n in channels.default_names(count, names)),
                                      dtype)
        project.settings[channels.SETTINGS_KEY] = table.to_dict()
        changed = True
    mapping = display.mapping_of(project.settings)
    if mapping is None or len(mapping.limits) != count or refresh_limits:
        limits = dataset_limits(project, [r for r in records if r.channels == count])
        mapping = (display.DisplayMapping.default(limits) if mapping is None or len(mapping.limits) != count
                   else display.DisplayMapping(mapping.mode, mapping.rgb, mapping.grey, limits))
        project.settings[display.SETTINGS_KEY] = mapping.to_dict()
        changed = True
    return Prepared(changed, tuple(notes))


def dataset_limits(project: Project, records: Sequence[ImageRecord]) -> tuple[tuple[float, float], ...]:
    """0.5 / 99.5 percentiles per band over a sample of the images' pixels."""
    samples = []
    for record in _spread(records, SAMPLE_IMAGES):
        try:
            raw = (gigapixel_project.overview_raw(project, record)  # never decoded whole
                   if gigapixel_project.is_gigapixel_record(project, record) else project.read_raw(record))
            samples.append(channels.sample_pixels(raw, SAMPLE_PIXELS))
        except (ImageReadError, OSError):
            continue  # listed but unreadable: the import reported it; others still count
    if not samples:
        raise ProjectError("no image of the project could be read to set its display contrast")
    width = max(s.shape[1] for s in samples)
    return channels.percentile_limits([s for s in samples if s.shape[1] == width])


def describe(record: ImageRecord) -> str:
    """One line for `segstudio info`: bands, dtype, CRS."""
    parts = [f"{record.channels or '?'} band(s)", record.dtype or "?"]
    if record.crs or record.geotransform:
        parts.append(record.crs or "no CRS")
    if record.geotransform:
        parts.append("geotransform " + ", ".join(f"{v:g}" for v in record.geotransform))
    return ", ".join(parts)


__all__ = ["Prepared", "dataset_limits", "describe", "needs_table", "prepare"]
