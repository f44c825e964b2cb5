"""Scientific and geospatial images: TIFF/OME-TIFF/GeoTIFF read with bands, dtype and geo
tags; the project records them, builds a channel table and display mapping; bad input."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile
from imagery_builders import EPSG, GEOTRANSFORM, bands_image, dataset, write_geotiff, write_ome

from segstudio.core import channels, display, imageio
from segstudio.core.classes import ClassDef, ClassTable
from segstudio.core.errors import ImageReadError
from segstudio.core.importers import ImportOptions, import_dataset
from segstudio.core.project import Project

CLASSES = ClassTable((ClassDef(0, "background", (0, 0, 0)), ClassDef(1, "field", (0, 200, 0)),
                      ClassDef(255, "void", (128, 128, 128), ignore=True)))


def classes_json(path: Path) -> Path:
    path.write_text(json.dumps({"ignore_index": 255, "classes": CLASSES.to_list()}))
    return path


def import_kind(tmp_path: Path, kind: str) -> tuple[Project, list[str]]:
    src = dataset(tmp_path / "src", kind)
    report = import_dataset(tmp_path / "p", "folders", ImportOptions(
        images=(src / "images",), masks=(src / "masks",), classes_file=classes_json(tmp_path / "c.json"),
        splits=("train",)))
    assert report.images == 3 and report.masks == 3, report.lines()
    return Project.open(tmp_path / "p"), report.lines()


def test_four_band_16_bit_tiff_keeps_its_fourth_band(tmp_path: Path) -> None:
    data = bands_image(20, 30, 4, 0)
    for photometric in ("rgb", "minisblack"):  # tifffile marks the 4th of 'rgb' as alpha
        path = tmp_path / f"{photometric}.tif"
        tifffile.imwrite(path, data, photometric=photometric, planarconfig="contig")
        info = imageio.read_image_info(path)
        assert (info.channels, info.dtype) == (4, "uint16")
        np.testing.assert_array_equal(imageio.read_image_raw(path), data)


def test_five_band_ome_tiff_reads_with_channel_names(tmp_path: Path) -> None:
    data = bands_image(20, 30, 5, 1)
    path = write_ome(tmp_path / "a.ome.tif", data, ("a", "b", "c", "d", "e"))
    info = imageio.read_image_info(path, verify=True)
    assert (info.width, info.height, info.channels, info.dtype) == (30, 20, 5, "uint16")
    assert info.channel_names == ("a", "b", "c", "d", "e")
    np.testing.assert_array_equal(imageio.read_image_raw(path), data)


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint32", "float32", "float64"])
def test_depths_and_compressed_tiffs(tmp_path: Path, dtype: str) -> None:
    data = (np.arange(12 * 16 * 2).reshape(12, 16, 2) % 200).astype(dtype)
    for compression in (None, "zlib", "lzw", "zstd"):
        path = tmp_path / f"{compression}.tif"
        tifffile.imwrite(path, data, photometric="minisblack", planarconfig="contig", compression=compression)
        assert imageio.read_image_info(path).channels == 2
        np.testing.assert_array_equal(imageio.read_image_raw(path), data)


def test_bigtiff_and_rgba_photo_tiff(tmp_path: Path) -> None:
    data = bands_image(10, 12, 3, 2)
    tifffile.imwrite(tmp_path / "big.tif", data, bigtiff=True, photometric="rgb")
    np.testing.assert_array_equal(imageio.read_image_raw(tmp_path / "big.tif"), data)
    rgba = np.random.default_rng(0).integers(0, 255, (10, 12, 4), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb")  # an 8-bit photo with alpha
    assert imageio.read_image_info(tmp_path / "rgba.tif").channels == 3
    np.testing.assert_array_equal(imageio.read_image_rgb(tmp_path / "rgba.tif"), rgba[:, :, :3])


def test_geotiff_crs_and_geotransform(tmp_path: Path) -> None:
    path = write_geotiff(tmp_path / "g.tif", bands_image(16, 24, 4, 0))
    info = imageio.read_image_info(path)
    assert info.crs == f"EPSG:{EPSG}"
    assert info.geotransform == GEOTRANSFORM
    assert info.warnings == ()


def test_pages_that_disagree_in_size_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as writer:
        writer.write(np.zeros((10, 10), np.uint16))
        writer.write(np.zeros((12, 10), np.uint16))
    with pytest.raises(ImageReadError, match="pages disagree in size.*10x10, 10x12"):
        imageio.read_image_info(path)


def test_unknown_compression_is_named(tmp_path: Path) -> None:
    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, np.zeros((16, 16), np.uint16))
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages[0].tags["Compression"].valueoffset
    raw = bytearray(path.read_bytes())
    raw[offset:offset + 2] = struct.pack("<H", 50999)
    path.write_bytes(bytes(raw))
    with pytest.raises(ImageReadError, match="compression.*unknown code 50999"):
        imageio.read_image_raw(path)


def test_geotiff_without_crs_imports_with_a_warning(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    write_geotiff(src / "images" / "nocrs.tif", bands_image(16, 24, 4, 0), epsg=None)
    report = import_dataset(tmp_path / "p", "images", ImportOptions(sources=(src / "images",)))
    assert report.images == 1
    assert any("without an EPSG" in line for line in report.lines())
    record = Project.open(tmp_path / "p").images[0]
    assert record.crs is None and record.geotransform == GEOTRANSFORM


def test_geotiff_import_records_bands_crs_and_display(tmp_path: Path) -> None:
    project, _ = import_kind(tmp_path, "geo4")
    record = project.images[0]
    assert (record.channels, record.dtype, record.crs, record.geotransform) == (
        4, "uint16", f"EPSG:{EPSG}", GEOTRANSFORM)
    table = channels.table_of(project.settings)
    assert table is not None and table.names == ("red", "green", "blue", "nir")
    assert table.model_indices == (0, 1, 2, 3)
    mapping = display.mapping_of(project.settings)
    assert mapping is not None and mapping.mode == "rgb" and mapping.rgb == (0, 1, 2)
    # Limits: percentiles over all images' pixels (every image is small: all pixels sampled).
    raws = np.concatenate([project.read_raw(r).reshape(-1, 4) for r in project.images]).astype(np.float64)
    for band in range(4):
        expected = np.percentile(raws[:, band], (0.5, 99.5))
        assert mapping.limits[band] == pytest.approx(tuple(expected))
    summary = project.summary()
    assert summary["rasters"][record.id]["crs"] == f"EPSG:{EPSG}"


def test_display_pixels_follow_the_mapping(tmp_path: Path) -> None:
    project, _ = import_kind(tmp_path, "ome5")
    table = channels.table_of(project.settings)
    assert table is not None and table.names == ("dapi", "gfp", "rfp", "cy5", "bf")
    record = project.images[1]
    raw = project.read_raw(record)
    mapping = display.mapping_of(project.settings)
    assert mapping is not None
    shown = project.read_image(record)
    for colour, band in enumerate((0, 1, 2)):
        lo, hi = mapping.limits[band]
        expected = np.rint(np.clip((raw[:, :, band] - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
        np.testing.assert_array_equal(shown[:, :, colour], expected)
    grey = display.DisplayMapping("grey", (0, 1, 2), 4, mapping.limits)
    out = display.render(raw, grey)
    lo, hi = mapping.limits[4]
    expected = np.rint(np.clip((raw[:, :, 4] - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    for colour in range(3):
        np.testing.assert_array_equal(out[:, :, colour], expected)


def test_float_single_band_project(tmp_path: Path) -> None:
    project, _ = import_kind(tmp_path, "float1")
    record = project.images[0]
    assert (record.channels, record.dtype) == (1, "float32")
    mapping = display.mapping_of(project.settings)
    assert mapping is not None and mapping.mode == "grey"
    raw = project.read_raw(record)
    lo, hi = mapping.limits[0]
    expected = np.rint(np.clip((raw.astype(np.float64) - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(project.read_image(record)[:, :, 1], expected)
    model = project.read_model_input(record)
    assert model.dtype == np.float32 and model.shape == (*raw.shape, 1)
    np.testing.assert_array_equal(model[:, :, 0], raw)


def test_old_manifest_loads_and_photo_projects_get_no_table(tmp_path: Path) -> None:
    from dataset_builders import folders_dataset

    src = tmp_path / "src"
    folders_dataset(src, kind="gray", ids=(0, 1), classes=CLASSES)
    import_dataset(tmp_path / "p", "folders", ImportOptions(
        images=(src / "images",), masks=(src / "masks",), classes_file=classes_json(tmp_path / "c.json")))
    project = Project.open(tmp_path / "p")
    assert "channels" not in project.settings and "display" not in project.settings
    record = project.images[0]
    assert (record.channels, record.dtype) == (3, "uint8")
    np.testing.assert_array_equal(project.read_image(record),
                                  imageio.read_image_rgb(project.image_path(record)))
    data = json.loads(project.manifest_path.read_text())
    for item in data["images"]:
        for key in ("channels", "dtype"):
            item.pop(key)
    project.manifest_path.write_text(json.dumps(data))
    old = Project.open(tmp_path / "p")
    assert old.images[0].channels == 0 and old.images[0].crs is None


def test_new_fields_merge_between_writers(tmp_path: Path) -> None:
    project, _ = import_kind(tmp_path, "geo4")
    other = Project.open(tmp_path / "p")
    image_id = project.images[0].id
    other.update_image(image_id, split="val")
    other.save()
    project.update_image(image_id, crs="EPSG:4326")
    project.save()
    merged = Project.open(tmp_path / "p").image(image_id)
    assert (merged.split, merged.crs, merged.geotransform) == ("val", "EPSG:4326", GEOTRANSFORM)
