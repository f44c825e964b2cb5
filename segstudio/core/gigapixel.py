"""Gigapixel images read by tiles: a slide or orthomosaic is never decoded whole.

A 50,000 x 50,000 RGB image is 7.5 GB of pixels; the canvas shows about a million of them
at a time. `GigapixelImage` reads any box of any pyramid level by decoding only the TIFF
tiles (or strips) under it, straight from the file through tifffile's per-segment decoder
(no zarr needed: the store layer would add a dependency for what one seek, one read and one
decode do here). Levels come from the file's own pyramid (SubIFDs or reduced pages, as
tifffile's `series.levels` lists them); a file without one, or whose full level is not
tiled, gets a pyramid built once, band by band, into a cache folder as tiled TIFFs.

Pixels come out in the file's dtype (`read_raw`) or as 8-bit RGB through the project's
display mapping (`read_region`), the same rule every other view uses (core/display.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segstudio.core import display, imageio, rasters
from segstudio.core.errors import ImageReadError, SegstudioError
from segstudio.core.region import Region

ProgressFn = Callable[[float], None]  # fraction done, 0.0 .. 1.0, never decreasing
CancelCheck = Callable[[], bool]  # True: stop as soon as possible

# An image with a side above this, or more pixels than MIN_PIXELS, is read by tiles.
MIN_SIDE = 12_000
MIN_PIXELS = 300_000_000
# Decoded segments kept for re-reads (panning back, a brush re-rendering its tile).
CACHE_BYTES = 96 * 1024 * 1024
# Built pyramids: tile side, smallest level side, compression.
CACHE_TILE = 512
SMALLEST_SIDE = 512


def is_gigapixel(height: int, width: int, min_side: int = MIN_SIDE, min_pixels: int = MIN_PIXELS) -> bool:
    """True when an image of this size is read by tiles instead of decoded whole."""
    return max(height, width) > min_side or height * width > min_pixels


def is_gigapixel_file(path: str | os.PathLike[str]) -> bool:
    """True for a TIFF whose header says it is read by tiles; False for anything else, and
    for a file whose header cannot be read (the ordinary read then names its problem)."""
    path = Path(path)
    if not rasters.is_tiff(path):
        return False
    try:
        info = rasters.read_tiff_info(path)
    except SegstudioError:
        return False
    return is_gigapixel(info.height, info.width)


def check_plausible(path: Path, height: int, width: int) -> None:
    """A gigapixel TIFF has no pixel ceiling, but a few-kB file claiming gigapixels is a
    decompression bomb (the same ratio rule as imageio's budget) and is refused."""
    try:
        size = Path(path).stat().st_size
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if height * width > imageio.BOMB_RATIO * max(size, 1):
        raise ImageReadError(f"{path}: a {size}-byte file claims {width}x{height} pixels; this looks "
                             "like a decompression bomb, so it is not opened")


class PyramidBuildCancelled(SegstudioError):
    """Building a pyramid was cancelled; the levels finished so far stay in the cache (a
    later open resumes from them), the one in progress is deleted."""


@dataclass(frozen=True)
class Level:
    """One pyramid level: its size and how many full-resolution pixels one of its spans."""

    height: int
    width: int
    factor: float


class _PageReader:
    """Boxes of one TIFF page (a pyramid level), decoded segment by segment."""

    def __init__(self, tif: Any, page: Any, lock: threading.Lock, cache: _SegmentCache, key: str) -> None:
        self._tif, self._page, self._lock, self._cache, self._key = tif, page, lock, cache, key
        if page.is_tiled:
            self.seg_h, self.seg_w = int(page.tilelength), int(page.tilewidth)
        else:
            self.seg_h, self.seg_w = int(page.rowsperstrip or page.imagelength), int(page.imagewidth)
            self.seg_h = min(self.seg_h, int(page.imagelength))
        self.height, self.width = int(page.imagelength), int(page.imagewidth)
        self.samples = int(page.samplesperpixel)
        self.dtype = np.dtype(page.dtype)
        self.separate = int(page.planarconfig) == 2 and self.samples > 1
        self.across = -(-self.width // self.seg_w)
        self.down = -(-self.height // self.seg_h)
        if int(getattr(page, "imagedepth", 1) or 1) != 1:
            raise ImageReadError(f"{tif.filehandle.path}: a 3-D (volume) TIFF cannot be opened as a gigapixel "
                                 "image; save one plane of it as a 2-D tiled TIFF")
        self.decode_count = 0  # segments decoded (tests check reads stay local)

    def _segment(self, index: int) -> np.ndarray:
        """Decoded segment `index` as (rows, cols, samples) for contig or (rows, cols) per plane."""
        key = (self._key, index)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        page = self._page
        offset, count = int(page.dataoffsets[index]), int(page.databytecounts[index])
        with self._lock:
            fh = self._tif.filehandle
            if count and offset:
                fh.seek(offset)
                data = fh.read(count)
            else:
                data = None
        try:
            segment, _indices, shape = page.decode(data, index, jpegtables=page.jpegtables)
        except (ValueError, KeyError, NotImplementedError, RuntimeError) as exc:
            raise ImageReadError(
                f"{self._tif.filehandle.path}: cannot decode its '{rasters._compression_name(page)}' "
                f"tiles ({exc}); re-save it with deflate, LZW, zstd or JPEG tiles") from exc
        self.decode_count += 1
        if segment is None:  # an empty segment (offset 0): fill value
            segment = np.zeros(shape, dtype=self.dtype)
        segment = np.asarray(segment).reshape(shape[1], shape[2], shape[3])
        if self.separate:
            segment = segment[:, :, 0]
        self._cache.put(key, segment)
        return segment

    def read(self, region: Region) -> np.ndarray:
        """The box as (h, w, samples) in the page's dtype (the box must lie inside the page)."""
        out = np.empty((region.height, region.width, self.samples), dtype=self.dtype)
        per_plane = self.across * self.down
        for sy in range(region.y0 // self.seg_h, -(-region.y1 // self.seg_h)):
            for sx in range(region.x0 // self.seg_w, -(-region.x1 // self.seg_w)):
                seg_box = Region(sy * self.seg_h, sx * self.seg_w, (sy + 1) * self.seg_h, (sx + 1) * self.seg_w)
                box = region.intersect(seg_box)
                if box.empty:
                    continue
                src = box.shifted(-seg_box.y0, -seg_box.x0).slices
                dst = box.shifted(-region.y0, -region.x0).slices
                index = sy * self.across + sx
                if self.separate:
                    for plane in range(self.samples):
                        out[(*dst, plane)] = self._segment(plane * per_plane + index)[src]
                else:
                    out[dst] = self._segment(index)[src]
        return out


class _SegmentCache:
    """A byte-bounded LRU of decoded segments, shared by the levels of one image."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._items: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> np.ndarray | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: tuple[str, int], value: np.ndarray) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._bytes += value.nbytes
            while self._bytes > self.budget and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes


class GigapixelImage:
    """A huge TIFF opened for region reads at any pyramid level; close() when done.

    `cache_dir` is where a missing pyramid is built (a project passes PROJECT/.cache/pyramids);
    without one, a file lacking a pyramid is read at full resolution only (slow at "fit").
    """

    def __init__(self, path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None,
                 mapping: display.DisplayMapping | None = None,
                 progress: ProgressFn | None = None, build: bool = True,
                 cancelled: CancelCheck | None = None, cache_bytes: int = CACHE_BYTES) -> None:
        self.path = Path(path)
        self.mapping = mapping
        self.closed = False
        self._lock = threading.Lock()
        self._cache = _SegmentCache(cache_bytes)  # 0: a one-pass reader keeps no decoded tiles
        self._files: list[Any] = []
        try:
            self._setup(cache_dir, progress, build, cancelled)
        except BaseException:  # a failed or cancelled open gives its files back
            self.close()
            raise

    def _setup(self, cache_dir: str | os.PathLike[str] | None, progress: ProgressFn | None, build: bool,
               cancelled: CancelCheck | None) -> None:
        info = rasters.read_tiff_info(self.path)
        if info.orientation not in (0, 1):
            raise ImageReadError(f"{self.path}: EXIF orientation {info.orientation} is not supported for "
                                 "gigapixel images; re-save it upright")
        self.info = info
        tif = self._open(self.path)
        series = tif.series[0]
        pages = [lvl.keyframe for lvl in getattr(series, "levels", [series])]
        full = pages[0]
        if (int(full.imagelength), int(full.imagewidth)) != (info.height, info.width):
            raise ImageReadError(f"{self.path}: its first page is not the full image; save the image as "
                                 "the first page of the TIFF")
        if len(pages) == 1 and full.samplesperpixel > 1 and series.ndim > 3:
            raise ImageReadError(f"{self.path}: axes {series.axes} are not a 2-D image with bands; "
                                 "save one plane as a tiled TIFF")
        readers = [_PageReader(tif, p, self._lock, self._cache, f"0.{i}") for i, p in enumerate(pages)]
        readers = [r for r in readers if r.samples == readers[0].samples]
        wanted = cache_dir is not None and (not full.is_tiled or _smallest(readers) > SMALLEST_SIDE)
        if wanted and (build or _cache_complete(Path(cache_dir) / pyramid_key(self.path), readers)):
            readers = self._cached_pyramid(readers, Path(cache_dir), progress, cancelled)
        self._readers = readers
        self.height, self.width = info.height, info.width
        self.levels = tuple(Level(r.height, r.width, self.width / r.width) for r in readers)

    # -- opening -----------------------------------------------------------------------------
    def _open(self, path: Path) -> Any:
        tif = rasters._open(path)
        self._files.append(tif)
        return tif

    def close(self) -> None:
        self.closed = True
        for tif in self._files:
            tif.close()
        self._files = []

    def __enter__(self) -> GigapixelImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _cached_pyramid(self, readers: list[_PageReader], cache_dir: Path, progress: ProgressFn | None,
                        cancelled: CancelCheck | None) -> list[_PageReader]:
        """The file's levels plus a pyramid built once into `cache_dir` (reused while the
        source keeps its size and modification time): an untiled file gets every level there,
        a tiled one only the levels below its own smallest."""
        folder = cache_dir / pyramid_key(self.path)
        tiled = readers[0]._page.is_tiled
        base = readers[-1] if tiled else readers[0]
        built = build_pyramid(base, folder, tile_full=not tiled, progress=progress, cancelled=cancelled)
        out = list(readers) if tiled else []
        for number, path in enumerate(built):
            tif = self._open(path)
            out.append(_PageReader(tif, tif.pages[0], self._lock, self._cache, f"c.{number}"))
        out.sort(key=lambda r: -r.width)
        return out

    # -- facts -------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def channels(self) -> int:
        return self._readers[0].samples

    @property
    def dtype(self) -> np.dtype:
        return self._readers[0].dtype

    @property
    def decode_count(self) -> int:
        """Segments decoded so far, over every level (what a read really cost)."""
        return sum(r.decode_count for r in self._readers)

    # -- reading -----------------------------------------------------------------------------
    def read_raw(self, level: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels of the box at `level`, (h, w) for one band or (h, w, C), in the file's dtype."""
        if self.closed:
            raise ImageReadError(f"{self.path}: the image was closed; open it again to read it")
        if not 0 <= level < len(self._readers):
            raise IndexError(f"level {level} does not exist; the image has {len(self._readers)}")
        reader = self._readers[level]
        region = Region(int(y0), int(x0), int(y1), int(x1))
        if region.clip(reader.height, reader.width) != region or region.empty:
            raise IndexError(f"box {region} is outside level {level} ({reader.width}x{reader.height})")
        data = reader.read(region)
        return data[:, :, 0] if data.shape[2] == 1 else data

    def read_region(self, level: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The box at `level` as (h, w, 3) uint8 RGB, through the display mapping if any."""
        return self._to_rgb8(self.read_raw(level, y0, y1, x0, x1))

    def _to_rgb8(self, raw: np.ndarray) -> np.ndarray:
        if self.mapping is not None:
            return display.render(raw, self.mapping)
        if raw.dtype != np.uint8:
            # Without a mapping: the dtype's range (never per tile, which would make seams).
            if np.issubdtype(raw.dtype, np.integer):
                info = np.iinfo(raw.dtype)
                limits = (float(info.min), float(info.max))
            else:
                limits = (0.0, 1.0)
            bands = raw.shape[2] if raw.ndim == 3 else 1
            mapping = display.DisplayMapping.default([limits] * bands)
            return display.render(raw, mapping)
        if raw.ndim == 2:
            return cv2.cvtColor(raw, cv2.COLOR_GRAY2RGB)
        if raw.shape[2] == 3:
            return raw
        if raw.shape[2] == 1:
            return cv2.cvtColor(raw[:, :, 0], cv2.COLOR_GRAY2RGB)
        return np.ascontiguousarray(raw[:, :, :3]) if raw.shape[2] > 3 else np.dstack([raw, raw[:, :, :1]])

    def level_for(self, factor: float) -> int:
        """The coarsest level at least as fine as `factor` full-resolution pixels per pixel."""
        best = 0
        for index, level in enumerate(self.levels):
            if level.factor <= factor * 1.001:
                best = index
        return best

    def read_scaled(self, k: int, region: Region) -> np.ndarray:
        """RGB8 of `region` in the 1/2**k grid (size ceil(H / 2**k)), the canvas's own levels:
        read from the nearest finer file level and resized only when the sizes differ."""
        if self.closed:  # a view repainting after its image was let go draws nothing
            return np.zeros((*region.shape, 3), dtype=np.uint8)
        f = 1 << k
        level = self.level_for(f)
        reader = self._readers[level]
        ey0, ex0 = region.y0 * f, region.x0 * f
        ey1, ex1 = min(region.y1 * f, self.height), min(region.x1 * f, self.width)
        sy, sx = reader.height / self.height, reader.width / self.width
        box = Region(int(math.floor(ey0 * sy)), int(math.floor(ex0 * sx)),
                     int(math.ceil(ey1 * sy)), int(math.ceil(ex1 * sx))).clip(reader.height, reader.width)
        if box.empty:
            return np.zeros((*region.shape, 3), dtype=np.uint8)
        rgb = self._to_rgb8(self.read_raw(level, box.y0, box.y1, box.x0, box.x1))
        if rgb.shape[:2] != region.shape:
            rgb = cv2.resize(rgb, (region.width, region.height), interpolation=cv2.INTER_AREA)
        return rgb


def _cache_complete(folder: Path, readers: list[_PageReader]) -> bool:
    """Whether a built pyramid is there already (readers that must not build one use it)."""
    size, count = _smallest(readers), 0
    while size > SMALLEST_SIDE:
        size, count = -(-size // 2), count + 1
    full = 0 if readers[0]._page.is_tiled else 1
    return len(list(folder.glob("level_*.tif"))) >= count + full


def overview(path: str | os.PathLike[str], mapping: display.DisplayMapping | None = None,
             cache_dir: str | os.PathLike[str] | None = None, raw: bool = False,
             max_side: int = 4096) -> np.ndarray:
    """The smallest pyramid level, whole (thumbnails, histograms), RGB8 or `raw`; never
    builds a pyramid (that happens when the image is opened) and refuses a level above
    `max_side`, so a file without one is never decoded whole here."""
    with GigapixelImage(path, cache_dir=cache_dir, mapping=mapping, build=False) as image:
        level = len(image.levels) - 1
        info = image.levels[level]
        if max(info.height, info.width) > max_side:
            raise ImageReadError(f"{path}: no reduced level to preview yet (the file has no pyramid); "
                                 "open the image once to build it")
        read = image.read_raw if raw else image.read_region
        return read(level, 0, info.height, 0, info.width)


def _smallest(readers: list[_PageReader]) -> int:
    return min(max(r.height, r.width) for r in readers)


def pyramid_key(path: Path) -> str:
    """A cache name that changes when the source file does (path, size, modification time)."""
    stat = path.stat()
    text = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]


def _tiles_of_level(source: _PageReader, factor: int, tile: int, height: int, width: int,
                    step: Callable[[int], None] | None = None) -> Iterator[np.ndarray]:
    """Tiles (row-major) of `source` shrunk by `factor`, made one band of tile rows at a time,
    so memory is one band of the source (its width x factor*tile rows), not the image.
    `step(rows)` is called before each band is read (progress and the cancel check)."""
    for y in range(0, source.height, tile * factor):
        if step is not None:
            step(y)
        band = source.read(Region(y, 0, min(y + tile * factor, source.height), source.width))
        rows = min(tile, height - y // factor)
        if factor > 1:
            band = cv2.resize(band, (width, rows), interpolation=cv2.INTER_AREA)
        band = band.reshape(rows, width, -1)
        for x in range(0, width, tile):
            piece = band[:, x:x + tile]
            if piece.shape[:2] != (tile, tile):
                padded = np.zeros((tile, tile, piece.shape[2]), dtype=piece.dtype)
                padded[:piece.shape[0], :piece.shape[1]] = piece
                piece = padded
            yield piece


class _Meter:
    """Fraction done over the levels of a build, weighted by the source pixels each reads
    (a full-size copy of a 50k image is most of the work); also the cancel point."""

    def __init__(self, weights: list[int], progress: ProgressFn | None, cancelled: CancelCheck | None,
                 path: Path) -> None:
        self.total = max(1, sum(weights))
        self.weights = weights
        self.before = 0  # weight of the levels finished
        self.last = -1.0
        self.progress, self.cancelled, self.path = progress, cancelled, path

    def report(self, fraction: float) -> None:
        fraction = min(1.0, max(self.last, fraction))
        if self.progress is not None and fraction > self.last:
            self.progress(fraction)
        self.last = fraction

    def check(self) -> None:
        if self.cancelled is not None and self.cancelled():
            raise PyramidBuildCancelled(f"{self.path}: building its overview pyramid was cancelled; "
                                        "opening the image again continues it")

    def level_step(self, width: int) -> Callable[[int], None]:
        def step(rows_done: int) -> None:
            self.check()
            self.report((self.before + rows_done * width) / self.total)
        return step

    def level_done(self, level: int) -> None:
        self.before += self.weights[level]
        self.report(self.before / self.total)


def build_pyramid(source: _PageReader, folder: Path, tile_full: bool = False,
                  progress: ProgressFn | None = None, cancelled: CancelCheck | None = None) -> list[Path]:
    """Tiled TIFFs of `source` at 1/2, 1/4, ... (and at full size if `tile_full`) in
    `folder`, each written to a temp name and renamed, so a killed build is never read.

    `progress(fraction)` is called as bands are read (0.0 first, 1.0 last, never
    decreasing); `cancelled()` is asked before each band and, when it answers True, the
    level being written is deleted and PyramidBuildCancelled raised. Levels finished before
    stay: they are complete files, and a later build reuses them instead of starting over.
    """
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    plan: list[tuple[Path, int]] = []
    if tile_full:
        plan.append((folder / "level_full.tif", 1))
    size, k = max(source.height, source.width), 1
    while size > SMALLEST_SIDE:
        plan.append((folder / f"level_{k}.tif", 2))
        size, k = -(-size // 2), k + 1
    weights, (h, w) = [], (source.height, source.width)
    for path, factor in plan:  # each level reads the one before it, whole; built ones cost nothing
        weights.append(0 if path.is_file() else h * w)
        h, w = -(-h // factor), -(-w // factor)
    building = any(weights)
    meter = _Meter(weights, progress if building else None, cancelled, Path(source._tif.filehandle.path))
    meter.report(0.0)
    done: list[Path] = []
    current = source
    handles = []
    try:
        for number, (path, factor) in enumerate(plan):
            height, width = -(-current.height // factor), -(-current.width // factor)
            if not path.is_file():
                meter.check()
                _write_level(tifffile, current, path, factor, height, width, meter.level_step(current.width))
            done.append(path)
            tif = tifffile.TiffFile(path)
            handles.append(tif)
            current = _PageReader(tif, tif.pages[0], threading.Lock(), _SegmentCache(16 << 20), f"b.{number}")
            meter.level_done(number)
    finally:
        for tif in handles:
            tif.close()
    meter.report(1.0)
    return done


def _write_level(tifffile: Any, current: _PageReader, path: Path, factor: int, height: int, width: int,
                 step: Callable[[int], None]) -> None:
    """One level as a tiled TIFF: written under a temp name, renamed when whole; a failed or
    cancelled write leaves nothing (a killed process leaves only the temp file, never read)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    shape = (height, width, current.samples)
    # Reduced 8-bit levels as JPEG (small, fast to decode, only ever looked at);
    # a full-resolution copy stays lossless: it is what the user labels.
    lossy = factor > 1 and current.dtype == np.uint8 and current.samples in (1, 3)
    compression = "jpeg" if lossy else "zlib"
    try:
        with tifffile.TiffWriter(tmp, bigtiff=height * width * current.samples > 2**31) as writer:
            writer.write(_tiles_of_level(current, factor, CACHE_TILE, height, width, step),
                         shape=shape, dtype=current.dtype, tile=(CACHE_TILE, CACHE_TILE),
                         compression=compression, photometric="rgb" if current.samples == 3 else
                         "minisblack", planarconfig="contig", metadata=None)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


__all__ = ["GigapixelImage", "Level", "PyramidBuildCancelled", "build_pyramid", "is_gigapixel", "overview", "pyramid_key"]
