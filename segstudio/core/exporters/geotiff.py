"""`geotiff` export: each mask as a single-band GeoTIFF in its image's place on the map.

    OUT/masks/<id>.tif   uint8 class ids, the class table as the TIFF colour map, and the
                         source image's GeoTIFF tags copied verbatim (CRS, tie points, pixel
                         scale or transformation matrix), so a GIS lays it over the image
    OUT/classes.json     the class table; OUT/train.txt ... the split lists

Images without georeferencing are exported too (a plain indexed TIFF) and listed in the
report, so that a user sees which masks will not line up in a GIS.

Gigapixel masks (chunk stores) are written the same way but tiled: 512 x 512 deflate tiles
streamed from the store one at a time (BigTIFF past 2 GB of pixels), plus reduced-resolution
overviews, so memory follows a tile, never the mask (core/exporters/tiled.py).
"""

from __future__ import annotations

from segstudio.core import rasters
from segstudio.core.exporters.common import ExportRun, write_classes, write_split_lists
from segstudio.core.exporters.tiled import write_tiled_mask
from segstudio.core.project import ImageRecord
from segstudio.core.tiled_mask import TiledMaskStore


def export_geotiff(run: ExportRun) -> None:
    classes = run.project.classes
    palette = classes.color_lut()
    folder = run.out / "masks"
    folder.mkdir(parents=True, exist_ok=True)
    plain: list[str] = []

    def tags_of(record: ImageRecord) -> list:
        source = run.project.image_path(record)
        tags = rasters.geo_tags(source) if rasters.is_tiff(source) else []
        if not tags:
            plain.append(record.id)
        return tags

    def tiled(record: ImageRecord, store: TiledMaskStore) -> None:
        write_tiled_mask(folder / f"{record.id}.tif", store, classes, tags_of(record))

    for record, mask in run.masks(need_image=True, tiled=tiled):
        rasters.write_class_geotiff(folder / f"{record.id}.tif", mask, palette, tags_of(record))
    write_classes(run.out, classes)
    write_split_lists(run.out, run.done)
    if plain:
        listed = ", ".join(plain[:8]) + (f" and {len(plain) - 8} more" if len(plain) > 8 else "")
        run.notes.append(f"{len(plain)} image(s) have no georeferencing; their masks are plain TIFFs: {listed}")
