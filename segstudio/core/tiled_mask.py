"""Masks of gigapixel images: held sparse in memory, stored as compressed chunks on disk.

A 50,000 x 50,000 mask is 2.5 GB as one PNG-sized array and takes tens of seconds to
encode. Here it is:
- in memory, an anonymous zero-filled mapping (`allocate`): the OS hands out a page only
  when it is first written, so memory follows the painted area, and MaskDocument, the tools
  and the canvas use it as the plain uint8 array they already know;
- on disk, a folder of 512 x 512 zlib chunks in the zarr v2 layout (`.zarray` + "i.j"
  files; an all-unlabelled chunk has no file), so any zarr reader opens it, and a save
  writes only the chunks edited since the last one (`DirtyChunks` listens to the document).

Each chunk is replaced atomically (temp file, fsync, rename); a crash mid-save leaves every
chunk whole, either as it was or as saved.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import tempfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from segstudio.core.errors import MaskError
from segstudio.core.region import Region

CHUNK = 512
ZLIB_LEVEL = 1
STORE_SUFFIX = ".zarr"
# Masks with more pixels than this are stored as chunks (and allocated lazily); smaller ones
# stay indexed PNGs, exactly as before.
TILED_MIN_PIXELS = 12_000 * 12_000


def uses_tiles(height: int, width: int, min_pixels: int = TILED_MIN_PIXELS) -> bool:
    return height * width > min_pixels


def allocate(height: int, width: int) -> np.ndarray:
    """A writable, C-contiguous zero uint8 array whose pages exist only once written.

    Huge pages are declined: one brush dab would otherwise commit 2 MB per row band.
    """
    size = max(1, int(height) * int(width))
    # Private: a read of an unwritten page maps the shared zero page (a shared mapping would
    # allocate it); Windows has no flags and commits on write there too.
    if hasattr(mmap, "MAP_PRIVATE"):
        buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | getattr(mmap, "MAP_ANONYMOUS", 0x20))
    else:
        buffer = mmap.mmap(-1, size)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        with contextlib.suppress(OSError):
            buffer.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(buffer, dtype=np.uint8, count=int(height) * int(width)).reshape(int(height), int(width))


def chunk_keys(region: Region, chunk: int = CHUNK) -> set[tuple[int, int]]:
    return set(region.tiles(chunk))


class TiledMaskStore:
    """One mask as a zarr-v2-layout folder of compressed chunks."""

    def __init__(self, path: str | os.PathLike[str], shape: tuple[int, int], chunk: int = CHUNK) -> None:
        self.path = Path(path)
        self.shape = (int(shape[0]), int(shape[1]))
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
        except FileNotFoundError as exc:
            raise MaskError(f"{path}: not a tiled mask (no .zarray header); delete the folder") from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MaskError(f"{path}: tiled mask header is unreadable ({exc}); delete the folder "
                            "to start the mask over") from exc
        if not ok:
            raise MaskError(f"{path}: a tiled mask must be 2-D uint8 with square zlib chunks; "
                            "delete the folder to start the mask over")
        return cls(path, (shape[0], shape[1]), chunks[0])

    def _header(self) -> dict:
        return {"zarr_format": 2, "shape": list(self.shape), "chunks": [self.chunk, self.chunk],
                "dtype": "|u1", "compressor": {"id": "zlib", "level": ZLIB_LEVEL}, "fill_value": 0,
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
        if tuple(mask.shape) != self.shape:
            raise MaskError(f"the mask is {mask.shape[1]}x{mask.shape[0]} but the store holds "
                            f"{self.shape[1]}x{self.shape[0]}")
        self.path.mkdir(parents=True, exist_ok=True)
        if not (self.path / ".zarray").is_file():
            self._write_file(".zarray", json.dumps(self._header(), indent=1).encode("utf-8"))
        if keys is None:
            rows, cols = -(-self.shape[0] // self.chunk), -(-self.shape[1] // self.chunk)
            keys = [(r, c) for r in range(rows) for c in range(cols)]
        count = 0
        padded = np.zeros((self.chunk, self.chunk), dtype=np.uint8)
        for key in sorted(set(keys)):
            box = self._box(key)
            if box.empty:
                continue
            block = mask[box.slices]
            name = f"{key[0]}.{key[1]}"
            if not block.any():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path / name)
                    count += 1
                continue
            if block.shape != padded.shape:  # zarr v2 stores edge chunks at full size
                padded[...] = 0
                padded[:block.shape[0], :block.shape[1]] = block
                block = padded
            self._write_file(name, zlib.compress(np.ascontiguousarray(block).data, ZLIB_LEVEL))
            count += 1
        self._fsync_dir()
        return count

    def read(self) -> np.ndarray:
        """The whole mask as a lazily allocated array (only stored chunks touch memory)."""
        mask = allocate(*self.shape)
        for key in self.stored_keys():
            box = self._box(key)
            if box.empty:
                continue
            try:
                raw = zlib.decompress((self.path / f"{key[0]}.{key[1]}").read_bytes())
            except (OSError, zlib.error) as exc:
                raise MaskError(f"{self.path}: chunk {key[0]}.{key[1]} is damaged ({exc}); delete that "
                                "file to lose only that 512 x 512 block") from exc
            if len(raw) != self.chunk * self.chunk:
                raise MaskError(f"{self.path}: chunk {key[0]}.{key[1]} has {len(raw)} bytes, not "
                                f"{self.chunk * self.chunk}; delete that file")
            block = np.frombuffer(raw, dtype=np.uint8).reshape(self.chunk, self.chunk)
            mask[box.slices] = block[:box.height, :box.width]
        return mask


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
