"""Masks of gigapixel images on import: read band by band, stored as chunk stores.

The app keeps a gigapixel image's mask as the chunk store masks/<id>.zarr (core/tiled_mask.py)
and never reads a PNG for it, so an import must put the mask there. A single-band TIFF mask
at that size (segstudio's own `masks` export writes one) is never decoded whole: one pass
counts its class ids (to merge the classes), a second maps them onto the project's ids and
writes the chunks, 512 rows at a time. A smaller decoded mask of a gigapixel image (a PNG)
is stored as chunks too.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from segstudio.core import gigapixel, rasters
from segstudio.core.classes import ClassTable
from segstudio.core.errors import ImageReadError, MaskError
from segstudio.core.importers.base import SourceMask
from segstudio.core.tiled_mask import CHUNK, TiledMaskStore

BAND = CHUNK  # rows read and stored at a time: whole chunk rows


class TiledIds:
    """A single-band TIFF mask read band by band (through `lut` when given); `counts` is the
    pixels per value of the file, found in one pass when the mask is opened."""

    def __init__(self, path: Path, lut: np.ndarray | None = None, counts: np.ndarray | None = None,
                 shape: tuple[int, int] | None = None) -> None:
        self.path = Path(path)
        self.lut = lut
        if counts is None or shape is None:
            shape, counts = self._scan()
        self.shape = shape
        self.counts = counts

    def _open(self) -> gigapixel.GigapixelImage:
        try:
            return gigapixel.GigapixelImage(self.path, cache_bytes=0)  # each tile is read once
        except ImageReadError as exc:
            raise MaskError(str(exc)) from exc

    def _scan(self) -> tuple[tuple[int, int], np.ndarray]:
        with self._open() as image:
            if image.channels != 1 or not np.issubdtype(image.dtype, np.integer):
                raise MaskError(f"{self.path}: a gigapixel mask must be one band of integer class ids "
                                f"(this one has {image.channels} band(s) of {image.dtype}); save it as a "
                                "single-band 8-bit TIFF")
            counts = np.zeros(256, dtype=np.int64)
            for _y, band in self._raw_bands(image):
                for x in range(0, band.shape[1], BAND):  # a tile at a time: bincount widens to 64 bits
                    counts += np.bincount(band[:, x:x + BAND].ravel(), minlength=256)
            return image.shape, counts

    def _raw_bands(self, image: gigapixel.GigapixelImage) -> Iterator[tuple[int, np.ndarray]]:
        height, width = image.shape
        for y in range(0, height, BAND):
            band = image.read_raw(0, y, min(y + BAND, height), 0, width)
            if band.dtype != np.uint8:
                top = int(band.max()) if band.size else 0
                if top > 255:
                    raise MaskError(f"{self.path}: holds value {top} at rows {y}-{y + band.shape[0]}; "
                                    "class ids must be 0-255")
                band = band.astype(np.uint8)
            yield y, band

    def bands(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, ids) for every BAND rows of the mask, mapped through the lut."""
        with self._open() as image:
            for y, band in self._raw_bands(image):
                yield y, band if self.lut is None else self.lut[band]

    def mapped(self, lut: np.ndarray) -> TiledIds:
        """The same file read through `lut` (after any lut it already has)."""
        combined = lut if self.lut is None else lut[self.lut]
        return TiledIds(self.path, combined, self.counts, self.shape)

    def array(self) -> np.ndarray:
        """The whole mask (only for an image that is itself decoded whole)."""
        out = np.empty(self.shape, dtype=np.uint8)
        for y, band in self.bands():
            out[y:y + band.shape[0]] = band
        return out


def wants_tiles(mask_path: Path, height: int, width: int) -> bool:
    """Whether a mask file for an image of this size is read band by band."""
    return rasters.is_tiff(mask_path) and gigapixel.is_gigapixel(height, width)


def read_tiled_ids_mask(path: Path, classes: ClassTable | None, infer: bool = False) -> SourceMask:
    """`common.read_ids_mask` for a gigapixel TIFF mask: ids counted, not decoded whole."""
    ids = TiledIds(path)
    if classes is None or infer:
        classes = ClassTable.from_ids(int(v) for v in np.flatnonzero(ids.counts))
    return SourceMask(ids, classes)  # type: ignore[arg-type]


def check_counts(counts: np.ndarray, classes: ClassTable, source: str) -> None:
    """imageio.check_mask_values from the counts alone (the mask is never whole)."""
    valid = classes.valid_lut()
    bad = np.flatnonzero((counts > 0) & ~valid)
    if bad.size:
        listed = ", ".join(f"{int(v)} ({int(counts[v])} px)" for v in bad[:8])
        raise MaskError(f"{source}: values {listed} are not class ids of this project; "
                        f"valid ids are {list(classes.ids)}. Add the classes or remap the mask")


def write_store(store: TiledMaskStore, ids: np.ndarray | TiledIds) -> list[Path]:
    """Write a new store from `ids` (a decoded mask or a band reader); the files written.
    A failure removes the store, so an image is never left with half a mask."""
    try:
        if isinstance(ids, TiledIds):
            for y, band in ids.bands():
                store.write_region(y, 0, band)
        else:
            store.write(np.ascontiguousarray(ids, dtype=np.uint8))
    except BaseException:
        shutil.rmtree(store.path, ignore_errors=True)
        raise
    return [store.path / ".zarray", *(store.path / f"{ky}.{kx}" for ky, kx in store.stored_keys())]


__all__ = ["TiledIds", "check_counts", "read_tiled_ids_mask", "wants_tiles", "write_store"]
