"""Embedding caches: an LRU in memory and an optional float16 cache on disk (inside the
project, with a size cap), both keyed by (model key, image key)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from segstudio.assist.embedding import Embedding, Geometry
from segstudio.core.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

CacheKey = tuple[str, str]
_SAMPLE = 1 << 20


def image_key(image: np.ndarray) -> str:
    """A content key for an image array: the same pixels give the same key."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((image.shape, image.dtype.str)).encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


def file_key(path: str | os.PathLike[str]) -> str:
    """A content key for a model file without reading all of it: size, first and last MiB."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(_SAMPLE))
        if size > _SAMPLE:
            handle.seek(max(_SAMPLE, size - _SAMPLE))
            digest.update(handle.read(_SAMPLE))
    return digest.hexdigest()


class EmbeddingCache:
    """Least-recently-used embeddings in memory, capped in bytes (SAM 1: 4 MiB each,
    SAM 2: about 16 MiB). Thread-safe: the encode runs on a worker thread."""

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[CacheKey, Embedding] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: CacheKey) -> Embedding | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: CacheKey, embedding: Embedding) -> None:
        with self._lock:
            self._items[key] = embedding
            self._items.move_to_end(key)
            while len(self._items) > 1 and self.nbytes > self.max_bytes:
                self._items.popitem(last=False)

    def __contains__(self, key: CacheKey) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._items.values())


class DiskEmbeddingCache:
    """Embeddings as float16 .npz files in one folder (e.g. PROJECT/.cache/assist); the
    oldest-used files go first once the folder passes `max_bytes`. Loading never unpickles."""

    def __init__(self, folder: str | os.PathLike[str], max_bytes: int = 512 << 20) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes

    def _path(self, key: CacheKey) -> Path:
        name = hashlib.blake2b("\0".join(key).encode(), digest_size=16).hexdigest()
        return self.folder / f"{name}.npz"

    def get(self, key: CacheKey, family: str) -> Embedding | None:
        path = self._path(key)
        try:
            with np.load(path, allow_pickle=False) as data:
                geometry = Geometry(*(int(v) for v in data["__geometry__"]))
                arrays = {name: data[name].astype(np.float32) for name in data.files
                          if name != "__geometry__"}
            with contextlib.suppress(OSError):
                os.utime(path)  # recently used: evicted last
        except (OSError, KeyError, ValueError) as exc:
            if path.exists():
                log.debug("unreadable assist cache file %s dropped: %s", path, exc)
                with contextlib.suppress(OSError):
                    path.unlink()
            return None
        return Embedding(family, geometry, arrays)

    def put(self, key: CacheKey, embedding: Embedding) -> None:
        g = embedding.geometry
        buffer = io.BytesIO()
        arrays = {name: a.astype(np.float16) for name, a in embedding.arrays.items()}
        np.savez(buffer, __geometry__=np.array([g.height, g.width, g.frame_height, g.frame_width]), **arrays)
        try:
            atomic_write_bytes(self._path(key), buffer.getvalue())
            self._trim()
        except OSError as exc:  # a full or read-only disk only costs a re-encode later
            log.warning("could not write the assist cache in %s: %s", self.folder, exc)

    def _trim(self) -> None:
        files = []
        for path in self.folder.glob("*.npz"):
            with contextlib.suppress(OSError):
                stat = path.stat()
                files.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size

    @property
    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("*.npz")) if self.folder.is_dir() else 0
