"""TIFF, OME-TIFF, BigTIFF and GeoTIFF through tifffile: any bit depth, any band count.

Scientific and geospatial images are not 8-bit RGB photos: a satellite scene has 4 or more
16-bit bands, a microscopy stack 5 fluorescence channels, an elevation model one float32
band. They are read here as (H, W, C) arrays in their own dtype; what the canvas shows is
decided later by the project's display mapping (core/display.py), and what a model sees by
its channel table (core/channels.py). GeoTIFF georeferencing (CRS and geotransform) is read
from the geo tags and written back, verbatim, on the masks exported for the image.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from segstudio.core.errors import ImageReadError

TIFF_SUFFIXES = frozenset({".tif", ".tiff"})
# More bands than this are a hyperspectral cube or a mis-read stack: refuse with a message.
MAX_CHANNELS = 64
# The GeoTIFF tags copied verbatim from a source image onto its exported masks.
GEO_TAG_CODES = (33550, 33922, 34264, 34735, 34736, 34737)
_GEO_TAG_TYPES = {33550: "d", 33922: "d", 34264: "d", 34735: "H", 34736: "d", 34737: "s"}
# Axes read as channels: samples, channels, and page-like axes of a stack of single bands.
_CHANNEL_AXES = "SC"
_STACK_AXES = "IQ"


@dataclass(frozen=True)
class RasterInfo:
    """What the header says about a TIFF: size, bands, dtype, georeferencing, warnings."""

    width: int
    height: int
    channels: int
    dtype: str
    channel_names: tuple[str, ...] = ()
    crs: str | None = None
    # GDAL order: (x origin, pixel width, row rotation, y origin, column rotation, pixel height)
    geotransform: tuple[float, ...] | None = None
    compression: str = "none"
    orientation: int = 1
    warnings: tuple[str, ...] = ()


def is_tiff(path: Path) -> bool:
    return path.suffix.lower() in TIFF_SUFFIXES


def _tifffile() -> Any:
    try:
        import tifffile
    except ImportError as exc:  # a dependency; only a broken install lacks it
        raise ImageReadError("reading TIFF needs the 'tifffile' package; reinstall segstudio") from exc
    return tifffile


def _open(path: Path) -> Any:
    tifffile = _tifffile()
    try:
        return tifffile.TiffFile(path)
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path}: file not found; was it moved or deleted?") from exc
    except PermissionError as exc:
        raise ImageReadError(f"{path}: permission denied; check the file's read permission") from exc
    except (tifffile.TiffFileError, ValueError, OSError, IndexError, KeyError) as exc:
        raise ImageReadError(f"{path}: not a readable TIFF (corrupt, or not a TIFF at all: {exc})") from exc


@dataclass(frozen=True)
class _Layout:
    """How a series' axes map onto (H, W, C): transpose order, channel count, index."""

    shape: tuple[int, ...]
    axes: str
    channels: int
    alpha: bool


def _main_series(tif: Any, path: Path) -> Any:
    """The image's series; several full-size series of different sizes is an error."""
    series = [s for s in tif.series if not getattr(s, "is_pyramidal", False) or s is tif.series[0]]
    first = tif.series[0]
    if not tif.is_ome and len(series) > 1:
        sizes = {tuple(s.shape[i] for i, a in enumerate(s.axes) if a in "YX") for s in series}
        if len(sizes) > 1:
            listed = ", ".join(f"{w}x{h}" for h, w in sorted(sizes))
            raise ImageReadError(
                f"{path}: its pages disagree in size ({listed}); a multi-page TIFF is read as one "
                "image with one band per page, so every page must have the same size. Save the "
                "pages as separate files")
    return first


def _layout(series: Any, page: Any, path: Path) -> _Layout:
    axes = series.axes
    if "Y" not in axes or "X" not in axes:
        raise ImageReadError(f"{path}: its data has axes {axes}, with no Y and X; it is not an image")
    has_channels = any(a in _CHANNEL_AXES for a in axes)
    channels = 1
    for axis, size in zip(axes, series.shape):
        if axis in _CHANNEL_AXES or (axis in _STACK_AXES and not has_channels):
            channels *= size
    if channels > MAX_CHANNELS:
        raise ImageReadError(f"{path}: {channels} bands; segstudio reads at most {MAX_CHANNELS} "
                             f"(axes {axes}); keep the bands you label in a smaller file")
    # An 8-bit RGB photo with an alpha band shows as RGB, as it always has; any other 4th
    # band (near infrared, a fluorescence channel) is data and is kept.
    extras = tuple(int(v) for v in (getattr(page, "extrasamples", ()) or ()))
    alpha = (channels == 4 and int(page.photometric) == 2 and np.dtype(page.dtype) == np.uint8
             and len(extras) == 1 and extras[0] in (1, 2))
    return _Layout(tuple(series.shape), axes, channels - (1 if alpha else 0), alpha)


def _compression_name(page: Any) -> str:
    value = page.compression
    name = getattr(value, "name", None)
    return str(name).lower() if name else f"unknown code {int(value)}"


def read_tiff_info(path: str | Path) -> RasterInfo:
    """Header facts of a TIFF (no pixel data is decoded)."""
    path = Path(path)
    with _open(path) as tif:
        series = _main_series(tif, path)
        page = series.pages[0] if series.pages else tif.pages[0]
        layout = _layout(series, page, path)
        height = layout.shape[layout.axes.index("Y")]
        width = layout.shape[layout.axes.index("X")]
        crs, transform, notes = _georeference(tif, page)
        names = _channel_names(tif, layout.channels)
        orientation = int(getattr(page.tags.get(274), "value", 1) or 1) if page.tags.get(274) else 1
        return RasterInfo(width, height, layout.channels, np.dtype(series.dtype).name, names, crs,
                          transform, _compression_name(page), orientation, tuple(notes))


def read_tiff(path: str | Path) -> np.ndarray:
    """The pixels as (H, W) for one band or (H, W, C), in the file's own dtype."""
    path = Path(path)
    tifffile = _tifffile()
    with _open(path) as tif:
        series = _main_series(tif, path)
        page = series.pages[0] if series.pages else tif.pages[0]
        layout = _layout(series, page, path)
        try:
            data = series.asarray()
        except (ValueError, KeyError, NotImplementedError, RuntimeError, tifffile.TiffFileError) as exc:
            raise ImageReadError(
                f"{path}: cannot decode its '{_compression_name(page)}' compression ({exc}); "
                "re-save it uncompressed or with deflate/LZW/zstd") from exc
    return _to_hwc(data, layout, path)


def _to_hwc(data: np.ndarray, layout: _Layout, path: Path) -> np.ndarray:
    axes = layout.axes
    has_channels = any(a in _CHANNEL_AXES for a in axes)
    keep_channel = [i for i, a in enumerate(axes) if a in _CHANNEL_AXES or (a in _STACK_AXES and not has_channels)]
    # Other axes (Z, T, ...): their first plane, the image a viewer opens on.
    index = tuple(slice(None) if (a in "YX" or i in keep_channel) else 0 for i, a in enumerate(axes))
    data = data[index]
    kept = [a for i, a in enumerate(axes) if a in "YX" or i in keep_channel]
    order = [kept.index("Y"), kept.index("X")] + [i for i, a in enumerate(kept) if a not in "YX"]
    data = np.transpose(data, order)
    data = data.reshape(data.shape[0], data.shape[1], -1)
    if layout.alpha:
        data = data[:, :, :3]
    if data.shape[2] == 1:
        data = data[:, :, 0]
    return np.ascontiguousarray(data)


def _channel_names(tif: Any, channels: int) -> tuple[str, ...]:
    """OME channel names where the file has them."""
    if not tif.is_ome or not tif.ome_metadata:
        return ()
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(tif.ome_metadata)
    except ET.ParseError:
        return ()
    names = [el.get("Name") or "" for el in root.iter() if el.tag.endswith("}Channel")]
    return tuple(names[:channels]) if len(names) >= channels and all(names[:channels]) else ()


# -- GeoTIFF ---------------------------------------------------------------------------------
def _georeference(tif: Any, page: Any) -> tuple[str | None, tuple[float, ...] | None, list[str]]:
    """CRS as 'EPSG:<code>' and the GDAL geotransform from the geo tags, with warnings."""
    if not tif.is_geotiff:
        return None, None, []
    try:
        tags = page.geotiff_tags or {}
    except Exception:  # tifffile parses keys lazily; a broken directory must not stop the read
        tags = {}
    transform = _geotransform(tags)
    crs = None
    for key in ("ProjectedCSTypeGeoKey", "GeographicTypeGeoKey"):
        code = tags.get(key)
        if code is not None and 1024 <= int(code) < 32767:
            crs = f"EPSG:{int(code)}"
            break
    notes = []
    if crs is None:
        notes.append("GeoTIFF without an EPSG coordinate reference system: imported with its "
                     "geotransform only; exported masks copy its geo tags as they are")
    if transform is None:
        notes.append("GeoTIFF without a pixel-to-map transform: exported masks are not georeferenced")
    return crs, transform, notes


def _geotransform(tags: dict[str, Any]) -> tuple[float, ...] | None:
    matrix = tags.get("ModelTransformation")
    if matrix is not None:
        m = np.asarray(matrix, dtype=np.float64).reshape(4, 4)
        return (float(m[0, 3]), float(m[0, 0]), float(m[0, 1]), float(m[1, 3]), float(m[1, 0]), float(m[1, 1]))
    tie, scale = tags.get("ModelTiepoint"), tags.get("ModelPixelScale")
    if tie is None or scale is None or len(tie) < 6 or len(scale) < 2:
        return None
    i, j, x, y = float(tie[0]), float(tie[1]), float(tie[3]), float(tie[4])
    sx, sy = float(scale[0]), float(scale[1])
    if not all(math.isfinite(v) for v in (i, j, x, y, sx, sy)):
        return None
    return (x - i * sx, sx, 0.0, y + j * sy, 0.0, -sy)


def geo_tags(path: str | Path) -> list[tuple[int, str, int, Any, bool]]:
    """The source's GeoTIFF tags as tifffile `extratags`, to write them verbatim elsewhere."""
    path = Path(path)
    out = []
    with _open(path) as tif:
        page = tif.pages[0]
        for code in GEO_TAG_CODES:
            tag = page.tags.get(code)
            if tag is None:
                continue
            value = tag.value
            if code == 34737:
                value = str(value)
                out.append((code, "s", 0, value, True))
            else:
                values = tuple(np.asarray(value).ravel().tolist())
                out.append((code, _GEO_TAG_TYPES[code], len(values), values, True))
    return out


def class_colormap(palette: np.ndarray) -> np.ndarray:
    """A 256 x 3 uint8 class palette as the TIFF ColorMap (3 x 256 uint16)."""
    return (np.asarray(palette, dtype=np.uint16).reshape(256, 3).T * 257).astype(np.uint16)


def write_class_geotiff(path: str | Path, mask: np.ndarray, palette: np.ndarray,
                        extratags: list[tuple[int, str, int, Any, bool]]) -> None:
    """A single-band uint8 class-id GeoTIFF with `palette` (256 x 3 uint8) as its colour map."""
    tifffile = _tifffile()
    tifffile.imwrite(path, np.ascontiguousarray(mask, dtype=np.uint8), photometric="palette",
                     colormap=class_colormap(palette), compression="zlib", extratags=extratags, metadata=None)


# (height, width) of a level and its tiles, row-major, each tile x tile (edge ones padded):
# arrays, or all of them as their zlib-deflated bytes.
TiledLevel = tuple[tuple[int, int], Iterable[np.ndarray] | Iterable[bytes]]


def write_tiled_class_geotiff(target: str | Path | IO[bytes], levels: Sequence[TiledLevel], palette: np.ndarray,
                              extratags: list[tuple[int, str, int, Any, bool]], tile: int = 512) -> None:
    """`write_class_geotiff` for masks too big to hold: the same single-band uint8 class ids,
    colour map and geo tags, written as deflate tiles taken one at a time from an iterator
    (memory follows a tile, not the mask). `levels[0]` is the mask, any further levels are
    reduced-resolution overviews (NewSubfileType 1 in the main IFD chain, GDAL's layout).
    BigTIFF when the mask holds over 2 GB of pixels."""
    tifffile = _tifffile()
    colormap = class_colormap(palette)
    (height, width), _ = levels[0]
    if not isinstance(target, (str, Path)):  # a handle from os.fdopen is named by a number
        target = tifffile.FileHandle(target, name="mask.tif")
    with tifffile.TiffWriter(target, bigtiff=height * width > 2**31) as writer:
        for number, (shape, tiles) in enumerate(levels):
            writer.write(iter(tiles), shape=shape, dtype=np.uint8, tile=(tile, tile), photometric="palette",
                         colormap=colormap, compression="zlib", metadata=None,
                         extratags=extratags if number == 0 else (), subfiletype=0 if number == 0 else 1)
