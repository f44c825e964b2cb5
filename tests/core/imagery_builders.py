"""Generated scientific and geospatial images for the imagery tests: a 5-channel 16-bit
OME-TIFF, 4-band GeoTIFFs with a CRS, float32 single-band TIFFs, with masks as PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

# UTM zone 33N, 10 m pixels, upper left corner at (500000, 4600000).
EPSG = 32633
ORIGIN = (500000.0, 4600000.0)
PIXEL = 10.0
GEOTRANSFORM = (ORIGIN[0], PIXEL, 0.0, ORIGIN[1], 0.0, -PIXEL)


def geo_extratags(epsg: int | None = EPSG) -> list[tuple[int, str, int, tuple, bool]]:
    keys = [1, 1, 0, 2, 1024, 0, 1, 1, 1025, 0, 1, 1]
    if epsg is not None:
        keys = [1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, epsg]
    return [(33550, "d", 3, (PIXEL, PIXEL, 0.0), True),
            (33922, "d", 6, (0.0, 0.0, 0.0, ORIGIN[0], ORIGIN[1], 0.0), True),
            (34735, "H", len(keys), tuple(keys), True)]


def bands_image(h: int, w: int, channels: int, seed: int, dtype: str = "uint16") -> np.ndarray:
    """(H, W, C) with band c spanning a different range: band c = noise + 1000 * (c + 1)."""
    rng = np.random.default_rng(seed)
    if dtype == "float32":
        return rng.normal(0.5, 0.2, size=(h, w, channels)).astype(np.float32)
    base = rng.integers(0, 3000, size=(h, w, channels))
    return (base + 1000 * (np.arange(channels) + 1)).astype(dtype)


def stripes_mask(h: int, w: int, ids: tuple[int, ...] = (0, 1)) -> np.ndarray:
    mask = np.zeros((h, w), dtype=np.uint8)
    for k, class_id in enumerate(ids):
        mask[:, k * w // len(ids):(k + 1) * w // len(ids)] = class_id
    return mask


def write_geotiff(path: Path, data: np.ndarray, epsg: int | None = EPSG) -> Path:
    tifffile.imwrite(path, data, photometric="minisblack", planarconfig="contig",
                     extratags=geo_extratags(epsg), compression="zlib")
    return path


def write_ome(path: Path, data: np.ndarray, names: tuple[str, ...]) -> Path:
    """(H, W, C) written as an OME-TIFF with axes CYX (one page per channel)."""
    tifffile.imwrite(path, np.ascontiguousarray(data.transpose(2, 0, 1)),
                     metadata={"axes": "CYX", "Channel": {"Name": list(names)}})
    return path


def write_mask_png(path: Path, mask: np.ndarray) -> Path:
    Image.fromarray(mask, mode="L").save(path)
    return path


def dataset(root: Path, kind: str, count: int = 3, h: int = 48, w: int = 64) -> Path:
    """images/ and masks/ of `count` images of `kind`: ome5, geo4 or float1."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    for i in range(count):
        name = f"img{i}"
        if kind == "ome5":
            write_ome(root / "images" / f"{name}.ome.tif", bands_image(h, w, 5, i),
                      ("dapi", "gfp", "rfp", "cy5", "bf"))
        elif kind == "geo4":
            write_geotiff(root / "images" / f"{name}.tif", bands_image(h, w, 4, i))
        elif kind == "float1":
            tifffile.imwrite(root / "images" / f"{name}.tif", bands_image(h, w, 1, i, "float32")[:, :, 0])
        else:
            raise ValueError(kind)
        stem = name + (".ome" if kind == "ome5" else "")
        write_mask_png(root / "masks" / f"{stem}.png", stripes_mask(h, w))
    return root
