"""Gigapixel images read by tiles (issue 12, point 4): region reads at every level equal the
source, a missing pyramid is built once into the cache, and a read never decodes the image."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from gigapixel_builders import expected, write_pyramid

from segstudio.core import display
from segstudio.core.errors import ImageReadError
from segstudio.core.gigapixel import GigapixelImage, is_gigapixel, overview
from segstudio.core.region import Region

SIDE = 20_000


@pytest.fixture(scope="module")
def big_tiff(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 x 20,000 RGB, 256-px zlib tiles, 7 levels in SubIFDs (~40 MB on disk)."""
    return write_pyramid(tmp_path_factory.mktemp("giga") / "slide.tif", SIDE, SIDE)


def boxes(height: int, width: int) -> list[tuple[int, int, int, int]]:
    """Boxes inside one tile, across tile seams, and touching the bottom-right edge."""
    raw = [(0, 1, 0, 1), (10, 200, 30, 250), (250, 777, 100, 613),
           (height // 2 - 300, height // 2 + 301, width // 3, width // 3 + 555),
           (height - 400, height, width - 333, width)]
    return [(max(0, y0), min(height, y1), max(0, x0), min(width, x1)) for y0, y1, x0, x1 in raw]


def test_threshold() -> None:
    assert not is_gigapixel(8192, 8192)
    assert is_gigapixel(20_000, 20_000)
    assert is_gigapixel(10_000, 40_000)


def test_region_reads_equal_the_source_at_every_level(big_tiff: Path) -> None:
    with GigapixelImage(big_tiff) as image:
        assert image.shape == (SIDE, SIDE)
        assert image.channels == 3 and image.dtype == np.uint8
        assert len(image.levels) == 7
        assert [lv.height for lv in image.levels] == [20000, 10000, 5000, 2500, 1250, 625, 313]
        for level, info in enumerate(image.levels):
            for y0, y1, x0, x1 in boxes(info.height, info.width):
                got = image.read_region(level, y0, y1, x0, x1)
                assert got.shape == (y1 - y0, x1 - x0, 3)
                assert np.array_equal(got, expected(level, 256, y0, y1, x0, x1)), (level, y0, x0)


def test_a_read_decodes_only_the_tiles_under_it(big_tiff: Path) -> None:
    with GigapixelImage(big_tiff) as image:
        image.read_raw(0, 1024, 1300, 2048, 2400)  # 2 x 2 tiles of 256
        assert image.decode_count == 4
        image.read_raw(0, 1024, 1300, 2048, 2400)  # cached
        assert image.decode_count == 4


def test_read_memory_follows_the_box_not_the_image(big_tiff: Path) -> None:
    with GigapixelImage(big_tiff) as image:
        tracemalloc.start()
        try:
            image.read_region(0, 9000, 9512, 9000, 9512)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    # The whole level is 1.2 GB; the box 0.8 MB and its 9 tiles 1.8 MB.
    assert peak < 8 * 1024 * 1024


def test_canvas_levels_read_without_resampling_when_sizes_match(big_tiff: Path) -> None:
    with GigapixelImage(big_tiff) as image:
        # Canvas level k is the ceil(H / 2**k) grid: file level k here, so pixels are exact.
        got = image.read_scaled(3, Region(100, 200, 612, 712))
        assert np.array_equal(got, expected(3, 256, 100, 612, 200, 712))


def test_display_mapping_renders_deep_bands(tmp_path: Path) -> None:
    path = write_pyramid(tmp_path / "deep.tif", 3000, 2600, channels=4, dtype="uint16", levels=2)
    mapping = display.DisplayMapping("rgb", (3, 1, 0), 0, ((0, 200), (10, 120), (0, 255), (5, 90)))
    with GigapixelImage(path, mapping=mapping) as image:
        assert image.channels == 4 and image.dtype == np.uint16
        raw = expected(1, 256, 300, 700, 900, 1300, channels=4, dtype="uint16")
        assert np.array_equal(image.read_raw(1, 300, 700, 900, 1300), raw)
        assert np.array_equal(image.read_region(1, 300, 700, 900, 1300), display.render(raw, mapping))


def test_untiled_file_gets_a_cached_pyramid_once(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    small = rng.integers(0, 255, (75, 55, 3), dtype=np.uint8)
    data = cv2.resize(small, (2200, 3000), interpolation=cv2.INTER_LINEAR)
    path = tmp_path / "strips.tif"
    tifffile.imwrite(path, data, rowsperstrip=16, compression="zlib", photometric="rgb")
    cache = tmp_path / "cache"
    with GigapixelImage(path, cache_dir=cache) as image:
        assert [lv.height for lv in image.levels] == [3000, 1500, 750, 375]
        assert np.array_equal(image.read_raw(0, 0, 3000, 0, 2200), data)  # full level: lossless
        level1 = cv2.resize(data, (1100, 1500), interpolation=cv2.INTER_AREA)
        diff = np.abs(image.read_raw(1, 0, 1500, 0, 1100).astype(int) - level1)
        assert diff.mean() < 2.0  # reduced levels are JPEG
    built = sorted(cache.rglob("*.tif"))
    assert len(built) == 4
    stamps = [p.stat().st_mtime_ns for p in built]
    with GigapixelImage(path, cache_dir=cache) as image:
        assert len(image.levels) == 4
    assert [p.stat().st_mtime_ns for p in built] == stamps  # reused, not rebuilt


def test_tiled_file_without_levels_gets_the_missing_ones(tmp_path: Path) -> None:
    path = write_pyramid(tmp_path / "flat.tif", 2100, 4000, levels=1)
    with GigapixelImage(path) as image:
        assert len(image.levels) == 1  # no cache folder: full resolution only
    with GigapixelImage(path, cache_dir=tmp_path / "cache") as image:
        assert [lv.width for lv in image.levels] == [4000, 2000, 1000, 500]
        assert np.array_equal(image.read_raw(0, 2000, 2100, 3900, 4000), expected(0, 256, 2000, 2100, 3900, 4000))


def test_overview_is_the_smallest_level_and_never_builds(big_tiff: Path, tmp_path: Path) -> None:
    assert np.array_equal(overview(big_tiff), expected(6, 256, 0, 313, 0, 313))
    path = tmp_path / "strips.tif"
    tifffile.imwrite(path, np.zeros((13_000, 300, 3), np.uint8), rowsperstrip=64, photometric="rgb")
    cache = tmp_path / "cache"
    with pytest.raises(ImageReadError, match="no reduced level"):
        overview(path, cache_dir=cache)  # no pyramid yet, and the preview does not build one
    assert not cache.exists()
    GigapixelImage(path, cache_dir=cache).close()  # opening the image builds it
    assert overview(path, cache_dir=cache).shape[:2] == (407, 10)


def test_deep_gigapixel_project_gets_contrast_limits_from_its_overview(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from segstudio.core import imagery
    from segstudio.core.classes import ClassTable
    from segstudio.core.project import Project

    project = Project.create(tmp_path / "proj", ClassTable.from_names(["a", "b"]))
    project.add_image(write_pyramid(tmp_path / "deep.tif", 13_000, 9_000, channels=4, dtype="uint16"))

    def whole(*_args: object) -> None:
        raise AssertionError("a gigapixel image was decoded whole")

    monkeypatch.setattr(Project, "read_raw", whole)
    assert imagery.prepare(project).changed
    mapping = display.mapping_of(project.settings)
    assert mapping is not None and len(mapping.limits) == 4


@pytest.mark.slow  # writes a ~130 MB fixture
def test_a_slide_over_the_decode_ceiling_imports(tmp_path: Path) -> None:
    """34,000 x 34,000 is over what is ever decoded whole (2**30 pixels); as a tiled TIFF it
    imports (header only) and opens by tiles. A header-only bomb of that size does not."""
    from segstudio.core import gigapixel_project
    from segstudio.core.importers.base import ImportOptions
    from segstudio.core.importers.driver import run_import
    from segstudio.core.importers.images import scan as scan_images
    from segstudio.core.project import Project

    pics = tmp_path / "pics"
    pics.mkdir()
    write_pyramid(pics / "slide.tif", 34_000, 34_000)
    report = run_import(tmp_path / "p", "images", scan_images, ImportOptions(sources=(pics,)))
    assert report.images == 1 and not report.skipped
    project = Project.open(tmp_path / "p")
    with gigapixel_project.open_image(project, "slide") as image:
        assert image.shape == (34_000, 34_000)
        assert np.array_equal(image.read_region(0, 33_900, 34_000, 100, 300),
                              expected(0, 256, 33_900, 34_000, 100, 300))


def test_planar_separate_tiles_read_band_by_band(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    data = rng.integers(0, 65535, (3, 700, 900), dtype=np.uint16)
    path = tmp_path / "planes.tif"
    tifffile.imwrite(path, data, tile=(256, 256), planarconfig="separate", photometric="minisblack",
                     compression="zlib", metadata=None)
    with GigapixelImage(path) as image:
        assert image.channels == 3 and image.dtype == np.uint16
        got = image.read_raw(0, 100, 650, 250, 880)
        assert np.array_equal(got, np.moveaxis(data, 0, -1)[100:650, 250:880])
