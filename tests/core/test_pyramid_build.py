"""Building a missing pyramid (issue 12, point 4) reports its progress and can be cancelled:
progress rises to 1.0 and never falls, a cancel deletes the level being written and leaves
nothing that looks complete, and the next open finishes the build from where it stopped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from segstudio.core.errors import ImageReadError, SegstudioError
from segstudio.core.gigapixel import GigapixelImage, PyramidBuildCancelled, overview, pyramid_key


@pytest.fixture
def strips(tmp_path: Path) -> Path:
    """4,000 x 3,000 RGB in 32-row strips: no tiles, no pyramid (a full copy and 3 levels)."""
    yy, xx = np.mgrid[0:4000, 0:3000]
    data = np.stack([(yy // 7) % 256, (xx // 5) % 256, ((yy + xx) // 11) % 256], axis=-1).astype(np.uint8)
    path = tmp_path / "strips.tif"
    tifffile.imwrite(path, data, rowsperstrip=32, compression="zlib", photometric="rgb")
    return path


def test_progress_rises_to_one_and_is_not_reported_once_built(strips: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    seen: list[float] = []
    with GigapixelImage(strips, cache_dir=cache, progress=seen.append) as image:
        assert [lv.height for lv in image.levels] == [4000, 2000, 1000, 500]
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert all(b > a for a, b in zip(seen, seen[1:]))  # strictly rising: no repeats, no going back
    assert len(seen) > 10  # band by band, not only per level
    # Most of the work is the full-size copy (4000 rows of 3000): the half-way mark falls in it.
    assert sum(1 for f in seen if f < 0.5) > len(seen) // 3
    again: list[float] = []
    GigapixelImage(strips, cache_dir=cache, progress=again.append).close()
    assert again == []  # nothing to build: no progress shown


def test_cancel_leaves_no_complete_looking_cache_and_the_next_open_finishes(strips: Path,
                                                                           tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    folder = cache / pyramid_key(strips)
    seen: list[float] = []

    def cancel_in_level_1() -> bool:  # past the full-size copy, inside the first reduced level
        return bool(seen) and seen[-1] > 0.5

    with pytest.raises(PyramidBuildCancelled, match="cancelled.*opening the image again") as caught:
        GigapixelImage(strips, cache_dir=cache, progress=seen.append, cancelled=cancel_in_level_1)
    assert isinstance(caught.value, SegstudioError)
    assert seen[-1] < 1.0
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["level_full.tif"]  # the finished level stays; no temp file is left behind
    with tifffile.TiffFile(folder / "level_full.tif") as tif:  # and it is whole
        assert tif.pages[0].shape == (4000, 3000, 3)
    # What never builds (the thumbnail preview) does not take it for a pyramid.
    with pytest.raises(ImageReadError, match="no reduced level"):
        overview(strips, cache_dir=cache, max_side=1000)
    stamp = (folder / "level_full.tif").stat().st_mtime_ns

    rest: list[float] = []
    with GigapixelImage(strips, cache_dir=cache, progress=rest.append) as image:
        assert [lv.height for lv in image.levels] == [4000, 2000, 1000, 500]
        assert np.array_equal(image.read_raw(0, 3990, 4000, 0, 3000),
                              tifffile.imread(strips)[3990:4000])
    assert (folder / "level_full.tif").stat().st_mtime_ns == stamp  # resumed, not redone
    assert rest[0] == 0.0 and rest[-1] == 1.0 and all(b > a for a, b in zip(rest, rest[1:]))
    assert overview(strips, cache_dir=cache).shape == (500, 375, 3)


def test_cancel_before_anything_is_written(strips: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(PyramidBuildCancelled):
        GigapixelImage(strips, cache_dir=cache, cancelled=lambda: True)
    assert list((cache / pyramid_key(strips)).iterdir()) == []
    GigapixelImage(strips, cache_dir=cache).close()
    assert len(list((cache / pyramid_key(strips)).glob("level_*.tif"))) == 4


def test_an_open_image_never_asks_to_cancel(strips: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    GigapixelImage(strips, cache_dir=cache).close()
    # Built already: a cancel request has nothing to stop, the image opens.
    with GigapixelImage(strips, cache_dir=cache, cancelled=lambda: True) as image:
        assert len(image.levels) == 4
