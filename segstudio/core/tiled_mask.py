"""Masks of gigapixel images: held sparse in memory, stored as compressed chunks on disk.

A 50,000 x 50,000 mask is 2.5 GB as one PNG-sized array and takes tens of seconds to
encode. Here it is:
- in memory, a lazily committed mapping reading as the unlabelled id (`allocate`): the OS
  hands out a page only when it is first written, so memory follows the painted area, and
  MaskDocument, the tools and the canvas use it as the plain uint8 array they already know;
- on disk, a folder of 512 x 512 zlib chunks in the zarr v2 layout (`.zarray` + "i.j"
  files; a chunk holding only the fill value, the unlabelled id, has no file), so any zarr
  reader opens it, and a save writes only the chunks edited since the last one
  (`DirtyChunks` listens to the document).

Each chunk is replaced atomically (temp file, fsync, rename); a crash mid-save leaves every
chunk whole, either as it was or as saved.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import mmap
import os
import sys
import tempfile
import weakref
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from segstudio.core.errors import MaskError
from segstudio.core.region import Region

CHUNK = 512
ZLIB_LEVEL = 1
WRITE_BATCH = 64  # chunk files written, then fsynced, then renamed together
STORE_SUFFIX = ".zarr"
# Masks with more pixels than this are stored as chunks (and allocated lazily); smaller ones
# stay indexed PNGs, exactly as before.
TILED_MIN_PIXELS = 12_000 * 12_000


def uses_tiles(height: int, width: int, min_pixels: int = TILED_MIN_PIXELS) -> bool:
    return height * width > min_pixels


def allocate(height: int, width: int, fill: int = 0) -> np.ndarray:
    """A writable, C-contiguous uint8 array of `fill` whose memory follows what is written.

    0: an anonymous private mapping (unwritten pages read as the kernel's zero page). Any
    other value (a project's unlabelled id is usually 255): one FILL_BLOCK of that value in
    memory, mapped copy-on-write over and over to span the mask, so reads share those pages
    and a write copies only the 4 kB page it lands in. Where neither exists (Windows), the
    array is filled for real. Huge pages are declined: a dab would commit 2 MB per row band.
    """
    height, width = int(height), int(width)
    size = max(1, height * width)
    if not 0 <= int(fill) <= 255:
        raise MaskError(f"fill value {fill} is not a class id 0-255")
    if fill == 0 and hasattr(mmap, "MAP_PRIVATE"):
        # Private: a read of an unwritten page maps the zero page (a shared one would allocate it).
        buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | getattr(mmap, "MAP_ANONYMOUS", 0x20))
        if hasattr(mmap, "MADV_NOHUGEPAGE"):
            with contextlib.suppress(OSError):
                buffer.madvise(mmap.MADV_NOHUGEPAGE)
        return np.frombuffer(buffer, dtype=np.uint8, count=height * width).reshape(height, width)
    mapped = _fill_mapping(size, int(fill)) if size >= FILL_BLOCK else None
    if mapped is None:  # zeros still come lazily from the allocator; another fill is written
        if fill == 0:
            return np.zeros((height, width), dtype=np.uint8)
        return np.full((height, width), int(fill), dtype=np.uint8)
    return np.frombuffer(mapped, dtype=np.uint8, count=height * width).reshape(height, width)


FILL_BLOCK = 2 * 1024 * 1024
_MAP_FIXED = 0x10  # the same on Linux and macOS


def _fill_mapping(size: int, fill: int) -> ctypes.Array | None:
    """`size` bytes reading as `fill`: one FILL_BLOCK file mapped copy-on-write repeatedly
    (about 1,200 mappings for 50,000 x 50,000; Linux allows 65,530). None: not available."""
    if not (sys.platform.startswith("linux") and hasattr(os, "memfd_create")):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                          ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    total = -(-size // FILL_BLOCK) * FILL_BLOCK
    failed = ctypes.c_void_p(-1).value
    base = libc.mmap(None, total, mmap.PROT_NONE if hasattr(mmap, "PROT_NONE") else 0,
                     mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    if base in (None, failed):
        return None
    fd = os.memfd_create("segstudio-mask-fill")
    try:
        block = memoryview(bytes([fill]) * FILL_BLOCK)
        while block:
            block = block[os.write(fd, block):]
        prot = mmap.PROT_READ | mmap.PROT_WRITE
        for offset in range(0, total, FILL_BLOCK):
            got = libc.mmap(base + offset, FILL_BLOCK, prot, mmap.MAP_PRIVATE | _MAP_FIXED, fd, 0)
            if got != base + offset:
                libc.munmap(base, total)
                return None
    finally:
        os.close(fd)  # the mappings keep the memory alive
    # No fault-around: a read would map 16 neighbouring pages per touched row, and each
    # mapping of the shared block counts in the resident size again.
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.madvise(base, total, getattr(mmap, "MADV_RANDOM", 1))
    array = (ctypes.c_uint8 * size).from_address(base)
    # Unmapped when the last numpy view of it is gone (numpy keeps this object as its base).
    weakref.finalize(array, libc.munmap, base, total)
    return array


def chunk_keys(region: Region, chunk: int = CHUNK) -> set[tuple[int, int]]:
    return set(region.tiles(chunk))


class TiledMaskStore:
    """One mask as a zarr-v2-layout folder of compressed chunks."""

    def __init__(self, path: str | os.PathLike[str], shape: tuple[int, int], fill: int = 0,
                 chunk: int = CHUNK) -> None:
        self.path = Path(path)
        self.shape = (int(shape[0]), int(shape[1]))
        self.fill = int(fill)  # the value of a chunk without a file (the unlabelled id)
        self.chunk = int(chunk)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> TiledMaskStore:
        """An existing store; its header must describe a 2-D uint8 chunked mask."""
        path = Path(path)
        try:
            meta = json.loads((path / ".zarray").read_text(encoding="utf-8"))
            shape = tuple(int(v) for v in meta["shape"])
            chunks = tuple(int(v) for v in meta["chunks"])
            ok = len(shape) == 2 and chunks[0] == chunks[1] and meta.get("dtype") in ("|u1", "uint8")
            ok = ok and (meta.get("compressor") or {}).get("id") in ("zlib", None)
            fill = int(meta.get("fill_value") or 0)
        except FileNotFoundError as exc:
            raise MaskError(f"{path}: not a tiled mask (no .zarray header); delete the folder") from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MaskError(f"{path}: tiled mask header is unreadable ({exc}); delete the folder "
                            "to start the mask over") from exc
        if not ok:
            raise MaskError(f"{path}: a tiled mask must be 2-D uint8 with square zlib chunks; "
                            "delete the folder to start the mask over")
        return cls(path, (shape[0], shape[1]), fill, chunks[0])

    def _header(self) -> dict:
        return {"zarr_format": 2, "shape": list(self.shape), "chunks": [self.chunk, self.chunk],
                "dtype": "|u1", "compressor": {"id": "zlib", "level": ZLIB_LEVEL}, "fill_value": self.fill,
                "order": "C", "filters": None, "dimension_separator": "."}

    def _write_file(self, name: str, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.path)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path / name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _fsync_dir(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def chunk_box(self, key: tuple[int, int]) -> Region:
        """The pixels chunk `key` covers (an edge chunk is cut at the mask's edge)."""
        return self._box(key)

    def ensure_header(self) -> None:
        """Create the store with its header (a store without chunks reads as all fill)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not (self.path / ".zarray").is_file():
            self._write_file(".zarray", json.dumps(self._header(), indent=1).encode("utf-8"))

    def _box(self, key: tuple[int, int]) -> Region:
        c = self.chunk
        return Region(key[0] * c, key[1] * c, (key[0] + 1) * c, (key[1] + 1) * c).clip(*self.shape)

    def stored_keys(self) -> list[tuple[int, int]]:
        keys = []
        if not self.path.is_dir():
            return keys
        for entry in os.scandir(self.path):
            parts = entry.name.split(".")
            if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                keys.append((int(parts[0]), int(parts[1])))
        return sorted(keys)

    def write(self, mask: np.ndarray, keys: Iterable[tuple[int, int]] | None = None) -> int:
        """Write the chunks `keys` of `mask` (None: every chunk); returns files written or removed."""
        if isinstance(mask, np.ndarray) and tuple(mask.shape) != self.shape:
            raise MaskError(f"the mask is {mask.shape[1]}x{mask.shape[0]} but the store holds "
                            f"{self.shape[1]}x{self.shape[0]}")
        self.ensure_header()
        if keys is None:
            rows, cols = -(-self.shape[0] // self.chunk), -(-self.shape[1] // self.chunk)
            keys = [(r, c) for r in range(rows) for c in range(cols)]
        count = 0
        batch: list[tuple[str, bytes]] = []
        padded = np.full((self.chunk, self.chunk), self.fill, dtype=np.uint8)
        for key in sorted(set(keys)):
            box = self._box(key)
            if box.empty:
                continue
            block = mask[box.slices]
            name = f"{key[0]}.{key[1]}"
            if not (block != self.fill).any():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path / name)
                    count += 1
                continue
            if block.shape != padded.shape:  # zarr v2 stores edge chunks at full size
                padded[...] = self.fill
                padded[:block.shape[0], :block.shape[1]] = block
                block = padded
            batch.append((name, zlib.compress(np.ascontiguousarray(block).data, ZLIB_LEVEL)))
            count += 1
            if len(batch) >= WRITE_BATCH:
                self._write_files(batch)
                batch = []
        self._write_files(batch)
        self._fsync_dir()
        return count

    def _write_files(self, batch: list[tuple[str, bytes]]) -> None:
        """Write a batch of chunks: all temp files first, then fsync each, then rename each,
        so the disk commits them together instead of one journal commit per chunk."""
        opened: list[tuple[int, str, str]] = []
        try:
            for name, data in batch:
                fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.path)
                opened.append((fd, tmp, name))
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            for fd, _tmp, _name in opened:
                os.fsync(fd)
            for fd, tmp, name in opened:
                os.close(fd)
                os.replace(tmp, self.path / name)
            opened = []
        finally:
            for fd, tmp, _name in opened:
                with contextlib.suppress(OSError):
                    os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def _read_chunk(self, key: tuple[int, int]) -> np.ndarray:
        """One stored chunk, cropped to the mask (an edge chunk is stored padded)."""
        try:
            raw = zlib.decompress((self.path / f"{key[0]}.{key[1]}").read_bytes())
        except (OSError, zlib.error) as exc:
            raise MaskError(f"{self.path}: chunk {key[0]}.{key[1]} is damaged ({exc}); delete that "
                            "file to lose only that 512 x 512 block") from exc
        if len(raw) != self.chunk * self.chunk:
            raise MaskError(f"{self.path}: chunk {key[0]}.{key[1]} has {len(raw)} bytes, not "
                            f"{self.chunk * self.chunk}; delete that file")
        box = self._box(key)
        return np.frombuffer(raw, dtype=np.uint8).reshape(self.chunk, self.chunk)[:box.height, :box.width]

    def read_region(self, region: Region) -> np.ndarray:
        """The pixels of `region` (inside the mask) from the stored chunks, fill elsewhere:
        memory follows the box, never the mask (training crops, exports, merges)."""
        if region.clip(*self.shape) != region or region.empty:
            raise MaskError(f"box {region} is outside the {self.shape[1]}x{self.shape[0]} mask")
        out = np.full(region.shape, self.fill, dtype=np.uint8)
        for key in chunk_keys(region, self.chunk):
            if not (self.path / f"{key[0]}.{key[1]}").is_file():
                continue
            box = self._box(key)
            part = box.intersect(region)
            block = self._read_chunk(key)
            out[part.y0 - region.y0:part.y1 - region.y0, part.x0 - region.x0:part.x1 - region.x0] = \
                block[part.y0 - box.y0:part.y1 - box.y0, part.x0 - box.x0:part.x1 - box.x0]
        return out

    def write_region(self, y0: int, x0: int, block: np.ndarray) -> int:
        """Store `block` at (y0, x0), replacing whole chunks: the box must start on the chunk
        grid and end on it or at the mask's edge. Files written or removed."""
        region = Region(int(y0), int(x0), int(y0) + block.shape[0], int(x0) + block.shape[1])
        c = self.chunk
        aligned = (region.y0 % c == 0 and region.x0 % c == 0
                   and (region.y1 % c == 0 or region.y1 == self.shape[0])
                   and (region.x1 % c == 0 or region.x1 == self.shape[1]))
        if block.ndim != 2 or region.clip(*self.shape) != region or not aligned:
            raise MaskError(f"box {region} of the {self.shape[1]}x{self.shape[0]} mask does not cover "
                            f"whole {c} x {c} chunks")
        view = _Offset(block, region)
        return self.write(view, chunk_keys(region, c))  # type: ignore[arg-type]

    def counts(self) -> np.ndarray:
        """Pixels per class id (256 entries): stored chunks, plus the fill of the others."""
        counts = np.zeros(256, dtype=np.int64)
        stored = 0
        for key in self.stored_keys():
            if self._box(key).empty:
                continue
            block = self._read_chunk(key)
            counts += np.bincount(block.ravel(), minlength=256)
            stored += block.size
        counts[self.fill] += self.shape[0] * self.shape[1] - stored
        return counts

    def remap(self, lut: np.ndarray) -> bool:
        """Map every pixel through a 256-entry table, chunk by chunk; True if anything changed."""
        changed = False
        for key in self.stored_keys():
            if self._box(key).empty:
                continue
            block = self._read_chunk(key)
            new = lut[block]
            if not np.array_equal(new, block):
                padded = np.full((self.chunk, self.chunk), self.fill, dtype=np.uint8)
                padded[:new.shape[0], :new.shape[1]] = new
                self._write_file(f"{key[0]}.{key[1]}", zlib.compress(padded.data, ZLIB_LEVEL))
                changed = True
        if int(lut[self.fill]) != self.fill:  # chunks without a file follow the new fill value
            self.fill = int(lut[self.fill])
            self._write_file(".zarray", json.dumps(self._header(), indent=1).encode("utf-8"))
            changed = True
        self._fsync_dir()
        return changed

    def read(self) -> np.ndarray:
        """The whole mask as a lazily allocated array (only stored chunks touch memory)."""
        mask = allocate(*self.shape, fill=self.fill)
        for key in self.stored_keys():
            box = self._box(key)
            if not box.empty:
                mask[box.slices] = self._read_chunk(key)
        return mask


class _Offset:
    """A block of a mask indexed in whole-mask coordinates (for TiledMaskStore.write)."""

    def __init__(self, block: np.ndarray, region: Region) -> None:
        self.block, self.region = block, region

    def __getitem__(self, slices: tuple[slice, slice]) -> np.ndarray:
        rows, cols = slices
        return self.block[rows.start - self.region.y0:rows.stop - self.region.y0,
                          cols.start - self.region.x0:cols.stop - self.region.x0]


class DirtyChunks:
    """A MaskDocument listener that remembers which chunks changed since the last save."""

    def __init__(self, chunk: int = CHUNK) -> None:
        self.chunk = chunk
        self.keys: set[tuple[int, int]] = set()

    def __call__(self, region: Region) -> None:
        self.keys |= chunk_keys(region, self.chunk)

    def take(self) -> set[tuple[int, int]]:
        keys, self.keys = self.keys, set()
        return keys


__all__ = ["CHUNK", "DirtyChunks", "TiledMaskStore", "allocate", "chunk_keys", "uses_tiles"]
