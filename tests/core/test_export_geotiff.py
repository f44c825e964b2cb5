"""`export --format geotiff`: masks of georeferenced images keep the source's CRS and
transform (read back from the written tags), class ids as pixels, the class colours as the
colour map; images without georeferencing give plain TIFFs and a note."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tifffile
from imagery_builders import EPSG, GEOTRANSFORM, ORIGIN, PIXEL, bands_image, dataset, write_mask_png

from segstudio.cli.main import main
from segstudio.core import imageio
from segstudio.core.classes import ClassDef, ClassTable
from segstudio.core.importers import ImportOptions, import_dataset
from segstudio.core.project import Project

CLASSES = ClassTable((ClassDef(0, "background", (0, 0, 0)), ClassDef(1, "field", (0, 200, 0)),
                      ClassDef(255, "void", (128, 128, 128), ignore=True)))


def geo_project(tmp_path: Path) -> Project:
    src = dataset(tmp_path / "src", "geo4")
    (tmp_path / "c.json").write_text(json.dumps({"ignore_index": 255, "classes": CLASSES.to_list()}))
    import_dataset(tmp_path / "p", "folders", ImportOptions(
        images=(src / "images",), masks=(src / "masks",), classes_file=tmp_path / "c.json", splits=("train",)))
    return Project.open(tmp_path / "p")


def test_geotiff_masks_keep_crs_and_transform(tmp_path: Path) -> None:
    project = geo_project(tmp_path)
    out = tmp_path / "out"
    assert main(["export", str(project.root), "--format", "geotiff", "--out", str(out)]) == 0
    for record in project.images:
        path = out / "masks" / f"{record.id}.tif"
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            data = page.asarray()
            tags = page.geotiff_tags
            colormap = page.colormap
        np.testing.assert_array_equal(data, project.read_mask(record))
        assert data.dtype == np.uint8 and data.ndim == 2
        assert int(tags["ProjectedCSTypeGeoKey"]) == EPSG
        assert list(tags["ModelPixelScale"])[:2] == [PIXEL, PIXEL]
        assert list(tags["ModelTiepoint"])[3:5] == list(ORIGIN)
        assert tuple((colormap[:, 1] // 257).tolist()) == (0, 200, 0)  # class 1's colour
        # Our own reader agrees: the same georeferencing as the image.
        info = imageio.read_image_info(path)
        assert (info.crs, info.geotransform) == (f"EPSG:{EPSG}", GEOTRANSFORM)
    assert (out / "classes.json").is_file()


def test_images_without_georeferencing_are_noted(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "masks").mkdir()
    tifffile.imwrite(src / "images" / "plain.tif", bands_image(16, 20, 4, 0), photometric="minisblack",
                     planarconfig="contig")
    write_mask_png(src / "masks" / "plain.png", np.ones((16, 20), np.uint8))
    (tmp_path / "c.json").write_text(json.dumps({"ignore_index": 255, "classes": CLASSES.to_list()}))
    import_dataset(tmp_path / "p", "folders", ImportOptions(
        images=(src / "images",), masks=(src / "masks",), classes_file=tmp_path / "c.json"))
    from segstudio.core.exporters import export_project

    report = export_project(Project.open(tmp_path / "p"), "geotiff", tmp_path / "out")
    assert report.images == 1 and any("no georeferencing" in line for line in report.lines())
    with tifffile.TiffFile(tmp_path / "out" / "masks" / "plain.tif") as tif:
        assert not tif.is_geotiff
        assert int(tif.pages[0].asarray().max()) == 1
