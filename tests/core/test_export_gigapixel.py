"""Exports of gigapixel masks (issue 12, points 4 and 5): a chunk store is never read whole.

`geotiff` writes it as a tiled, deflate, single-band class-id GeoTIFF streamed tile by tile
(exact pixels, the source's CRS and transform, the class colours, overviews), `masks` as a
tiled TIFF beside the PNGs of ordinary images, and the whole-image PNG/RLE formats leave it
out with a reason naming `--format geotiff`. Fixture: a 13,000 x 12,000 pyramid GeoTIFF
(written in a fraction of a second from repeated tiles) with a few painted chunks."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile
from gigapixel_builders import write_pyramid
from imagery_builders import EPSG, GEOTRANSFORM, ORIGIN, PIXEL, geo_extratags

from segstudio.cli.main import main
from segstudio.core import gigapixel_project, imageio, tiled_mask
from segstudio.core.classes import ClassDef, ClassTable
from segstudio.core.exporters import export_project
from segstudio.core.project import Project
from segstudio.core.region import Region

CLASSES = ClassTable((ClassDef(0, "background", (0, 0, 0)), ClassDef(1, "tissue", (0, 200, 0)),
                      ClassDef(2, "tumour", (220, 20, 60)), ClassDef(255, "void", (128, 128, 128), ignore=True)))
HEIGHT, WIDTH = 12_000, 13_000  # chunks of 512: 24 x 26, the last ones 224 rows and 200 columns
# Painted boxes (chunk-aligned, one at the bottom-right edge) and what is in them.
RANDOM_BOX = Region(1024, 2048, 2048, 3584)
EDGE_BOX = Region(11_776, 12_800, HEIGHT, WIDTH)
DOT_BOX = Region(6144, 6144, 6656, 6656)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project.create(tmp_path / "proj", CLASSES)
    slide = write_pyramid(tmp_path / "slide.tif", HEIGHT, WIDTH, extratags=geo_extratags())
    project.add_image(slide, split="train", status="labeled")
    small = tmp_path / "small.png"
    from PIL import Image

    Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(small)
    project.add_image(small, split="val", status="labeled")
    project.write_mask("small", np.ones((30, 40), np.uint8))
    project.save()
    store = gigapixel_project.mask_store(project, "slide")
    rng = np.random.default_rng(5)
    store.write_region(RANDOM_BOX.y0, RANDOM_BOX.x0, rng.integers(0, 3, RANDOM_BOX.shape, dtype=np.uint8))
    edge = np.full(EDGE_BOX.shape, 2, np.uint8)
    edge[::7, ::5] = 0
    store.write_region(EDGE_BOX.y0, EDGE_BOX.x0, edge)
    dot = np.full(DOT_BOX.shape, 255, np.uint8)
    dot[100:103, 200:260] = 1
    store.write_region(DOT_BOX.y0, DOT_BOX.x0, dot)
    assert len(store.stored_keys()) == 6 + 1 + 1
    return project


def check_whole_mask(data: np.ndarray, project: Project) -> None:
    """`data` equals the store: the painted boxes exactly, the unlabelled id everywhere else."""
    store = gigapixel_project.mask_store(project, "slide")
    assert data.shape == (HEIGHT, WIDTH) and data.dtype == np.uint8
    for box in (RANDOM_BOX, EDGE_BOX, DOT_BOX):
        np.testing.assert_array_equal(data[box.slices], store.read_region(box))
        data[box.slices] = 255
    assert (data == 255).all()


def test_geotiff_streams_a_gigapixel_mask_exactly_with_its_georeferencing(project: Project, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"

    def whole(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the gigapixel mask was read whole")

    # A whole mask would be a lazily mapped array that tracemalloc does not see: forbid it.
    monkeypatch.setattr(tiled_mask.TiledMaskStore, "read", whole)
    monkeypatch.setattr(tiled_mask, "allocate", whole)
    tracemalloc.start()
    try:
        report = export_project(project, "geotiff", out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The mask is 156 MB as an array; streamed, the export holds a few tiles (~2 MB measured).
    assert peak < 16 * 1024 * 1024, peak / 1e6
    assert report.images == 2 and not report.skipped, report.lines()
    assert report.notes == ("1 image(s) have no georeferencing; their masks are plain TIFFs: small",)
    path = out / "masks" / "slide.tif"
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert page.is_tiled and (page.tilelength, page.tilewidth) == (512, 512)
        assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert page.photometric == tifffile.PHOTOMETRIC.PALETTE and page.samplesperpixel == 1
        assert tuple((page.colormap[:, 2] // 257).tolist()) == (220, 20, 60)  # class 2's colour
        tags = page.geotiff_tags
        assert int(tags["ProjectedCSTypeGeoKey"]) == EPSG
        assert list(tags["ModelPixelScale"])[:2] == [PIXEL, PIXEL]
        assert list(tags["ModelTiepoint"])[3:5] == list(ORIGIN)
        # Overviews for a GIS: nearest class id at 1/2, 1/4, ... down to one tile.
        levels = tif.series[0].levels
        assert [lv.shape for lv in levels] == [(12_000, 13_000), (6000, 6500), (3000, 3250), (1500, 1625),
                                               (750, 813), (375, 407)]
        half = levels[1].asarray()
        quarter_edge = levels[2].asarray()[EDGE_BOX.y0 // 4:, EDGE_BOX.x0 // 4:]
        data = page.asarray()
    store = gigapixel_project.mask_store(project, "slide")
    expected_half = store.read_region(RANDOM_BOX)[::2, ::2]
    np.testing.assert_array_equal(half[RANDOM_BOX.y0 // 2:RANDOM_BOX.y1 // 2, RANDOM_BOX.x0 // 2:RANDOM_BOX.x1 // 2],
                                  expected_half)
    np.testing.assert_array_equal(quarter_edge, store.read_region(EDGE_BOX)[::4, ::4])
    assert half[50, 50] == 255
    check_whole_mask(data, project)
    # Our own reader agrees: the image's georeferencing, one uint8 band.
    info = imageio.read_image_info(path)
    assert (info.crs, info.geotransform, info.channels) == (f"EPSG:{EPSG}", GEOTRANSFORM, 1)
    # The small PNG-masked image of the same project still goes the whole-array way.
    np.testing.assert_array_equal(tifffile.imread(out / "masks" / "small.tif"), np.ones((30, 40), np.uint8))
    assert (out / "train.txt").read_text() == "slide\n"


def test_a_gigapixel_mask_without_georeferencing_is_noted(tmp_path: Path) -> None:
    project = Project.create(tmp_path / "proj", CLASSES)
    project.add_image(write_pyramid(tmp_path / "plain.tif", 12_500, 3000), status="labeled")
    project.save()
    gigapixel_project.mask_store(project, "plain").write_region(0, 0, np.ones((512, 512), np.uint8))
    report = export_project(project, "geotiff", tmp_path / "out")
    assert report.images == 1 and any("no georeferencing" in n and "plain" in n for n in report.notes)
    with tifffile.TiffFile(tmp_path / "out" / "masks" / "plain.tif") as tif:
        assert not tif.is_geotiff and tif.pages[0].is_tiled
        assert int(tif.pages[0].asarray()[:512, :512].min()) == 1


@pytest.mark.parametrize("fmt", ["color", "overlay", "voc", "cityscapes", "coco"])
def test_whole_image_formats_leave_a_gigapixel_image_out_with_the_way(project: Project, tmp_path: Path,
                                                                      fmt: str) -> None:
    out = tmp_path / fmt
    report = export_project(project, fmt, out)
    assert report.images == 1  # the small image
    assert [name for name, _ in report.skipped] == ["slide"]
    reason = report.skipped[0][1]
    assert "13000x12000 gigapixel mask" in reason and "--format geotiff" in reason, reason
    assert any("slide: a 13000x12000 gigapixel mask" in line for line in report.lines())
    assert not [p for p in out.rglob("*") if p.name.startswith("slide")]  # nothing half-written


def test_masks_format_writes_a_tiled_tiff_beside_the_pngs(project: Project, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["export", str(project.root), "--format", "masks", "--out", str(out)]) == 0
    assert (out / "images" / "slide.tif").read_bytes() == project.image_path("slide").read_bytes()
    assert (out / "masks" / "small.png").is_file() and not (out / "masks" / "slide.png").exists()
    with tifffile.TiffFile(out / "masks" / "slide.tif") as tif:
        page = tif.pages[0]
        assert page.is_tiled and page.photometric == tifffile.PHOTOMETRIC.PALETTE
        data = page.asarray()
    check_whole_mask(data, project)
    assert json.loads((out / "classes.json").read_text())["classes"][2]["name"] == "tumour"


def test_a_chunk_with_unknown_class_ids_is_reported_and_leaves_no_file(project: Project,
                                                                       tmp_path: Path) -> None:
    store = gigapixel_project.mask_store(project, "slide")
    store.write_region(0, 0, np.full((512, 512), 7, np.uint8))
    report = export_project(project, "geotiff", tmp_path / "out")
    assert report.images == 1 and [name for name, _ in report.skipped] == ["slide"]
    assert "values 7" in report.skipped[0][1]
    assert sorted(p.name for p in (tmp_path / "out" / "masks").iterdir()) == ["small.tif"]


def test_info_counts_the_chunk_store(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(project.root), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["masks"] == 2
    counts = project.pixel_counts()
    store = gigapixel_project.mask_store(project, "slide")
    painted = np.concatenate([store.read_region(b).ravel() for b in (RANDOM_BOX, EDGE_BOX, DOT_BOX)])
    assert counts[2] == int((painted == 2).sum())
    assert counts[1] == int((painted == 1).sum()) + 30 * 40
    assert counts.sum() == HEIGHT * WIDTH + 30 * 40


def test_masks_export_imports_back_into_a_chunk_store(project: Project, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`segstudio import --format folders` of the `masks` export: the slide's TIFF mask goes,
    band by band, into the new project's chunk store (where the app reads it), exactly."""
    out = tmp_path / "out"
    export_project(project, "masks", out)

    real = imageio.read_mask_array

    def whole(path: Path) -> tuple[np.ndarray, str]:
        assert Path(path).name != "slide.tif", "the gigapixel mask was decoded whole"
        return real(path)

    monkeypatch.setattr(imageio, "read_mask_array", whole)  # what decodes a mask file whole
    tracemalloc.start()
    try:
        assert main(["import", str(tmp_path / "again"), "--format", "folders", str(out)]) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    monkeypatch.undo()
    assert peak < 32 * 1024 * 1024, peak / 1e6  # bands of 512 rows (~15 MB measured), not 156 MB
    again = Project.open(tmp_path / "again")
    assert {r.id: (r.split, r.status) for r in again.images} == {"slide": ("train", "labeled"),
                                                                 "small": ("val", "labeled")}
    assert not again.mask_path("slide").exists()  # no PNG the app would not read
    store = gigapixel_project.mask_store(again, "slide")
    original = gigapixel_project.mask_store(project, "slide")
    assert store.stored_keys() == original.stored_keys()
    for ky, kx in original.stored_keys():
        box = Region(ky * 512, kx * 512, min((ky + 1) * 512, HEIGHT), min((kx + 1) * 512, WIDTH))
        np.testing.assert_array_equal(store.read_region(box), original.read_region(box))
    assert (again.pixel_counts() == project.pixel_counts()).all()
    np.testing.assert_array_equal(again.read_mask("small"), np.ones((30, 40), np.uint8))


def test_a_gigapixel_mask_with_ids_outside_the_classes_is_skipped(project: Project, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_project(project, "masks", out)
    (out / "classes.json").write_text(json.dumps({"ignore_index": 255, "classes": CLASSES.to_list()[:2]
                                                  + CLASSES.to_list()[3:]}))  # no class 2
    from segstudio.core.importers import ImportOptions, import_dataset

    report = import_dataset(tmp_path / "again", "folders", ImportOptions(sources=(out,)))
    assert report.images == 1 and [Path(p).name for p, _ in report.skipped] == ["slide.tif"]
    assert "values 2" in report.skipped[0][1]
    assert not (tmp_path / "again" / "masks" / "slide.zarr").exists()


def test_a_png_mask_of_a_gigapixel_image_is_imported_into_chunks(tmp_path: Path) -> None:
    """Any decoded mask of a gigapixel image goes to its chunk store: a PNG there would never
    be read by the app (it opens such an image's mask from the store)."""
    src = tmp_path / "src"
    (src / "masks").mkdir(parents=True)
    (src / "images").mkdir()
    write_pyramid(src / "images" / "tall.tif", 12_500, 600)  # over the gigapixel side, cheap
    mask = np.zeros((12_500, 600), np.uint8)
    mask[5000:7000, 100:300] = 1
    mask[-10:, -10:] = 2
    imageio.write_mask(src / "masks" / "tall.png", mask, CLASSES)
    (src / "classes.json").write_text(json.dumps({"ignore_index": 255, "classes": CLASSES.to_list()}))
    from segstudio.core.importers import ImportOptions, import_dataset

    report = import_dataset(tmp_path / "p", "folders", ImportOptions(
        images=(src / "images",), masks=(src / "masks",), classes_file=src / "classes.json"))
    assert report.images == 1 and report.masks == 1 and not report.skipped
    project = Project.open(tmp_path / "p")
    assert not project.mask_path("tall").exists()
    store = gigapixel_project.mask_store(project, "tall")
    np.testing.assert_array_equal(store.read_region(Region(0, 0, 12_500, 600)), mask)
