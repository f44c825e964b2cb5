"""`geotiff` export: each mask as a single-band GeoTIFF in its image's place on the map.

    OUT/masks/<id>.tif   uint8 class ids, the class table as the TIFF colour map, and the
                         source image's GeoTIFF tags copied verbatim (CRS, tie points, pixel
                         scale or transformation matrix), so a GIS lays it over the image
    OUT/classes.json     the class table; OUT/train.txt ... the split lists

Images without georeferencing are exported too (a plain indexed TIFF) and listed in the
report, so that a user sees which masks will not line up in a GIS.
"""

from __future__ import annotations

from segstudio.core import rasters
from segstudio.core.exporters.common import ExportRun, write_classes, write_split_lists


def export_geotiff(run: ExportRun) -> None:
    classes = run.project.classes
    palette = classes.color_lut()
    folder = run.out / "masks"
    folder.mkdir(parents=True, exist_ok=True)
    plain: list[str] = []
    for record, mask in run.masks(need_image=True):
        source = run.project.image_path(record)
        tags = rasters.geo_tags(source) if rasters.is_tiff(source) else []
        if not tags:
            plain.append(record.id)
        rasters.write_class_geotiff(folder / f"{record.id}.tif", mask, palette, tags)
    write_classes(run.out, classes)
    write_split_lists(run.out, run.done)
    if plain:
        listed = ", ".join(plain[:8]) + (f" and {len(plain) - 8} more" if len(plain) > 8 else "")
        run.notes.append(f"{len(plain)} image(s) have no georeferencing; their masks are plain TIFFs: {listed}")
