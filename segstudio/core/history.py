"""Undo/redo history of a mask as compressed per-tile XOR diffs, one entry per stroke.

Each entry keeps, for every tile a stroke changed, the bounding box of the change within
the tile and `old XOR new` of that box, compressed (as runs, or deflated). XOR makes the diff symmetric (the
same patch undoes and redoes) and mostly zeros, so it compresses far better than old and
new bytes side by side; memory and time follow what changed, never the image size.
"""

from __future__ import annotations

import itertools
import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from segstudio.core.region import Region

# Rough Python object overhead of a patch and an entry, so the byte count stays honest
# for strokes made of many tiny patches.
PATCH_OVERHEAD = 160
ENTRY_OVERHEAD = 240
ZLIB_LEVEL = 1

_ids = itertools.count(1)


def new_state_id() -> int:
    """A process-unique id naming one mask state (0 is the state a document opens in)."""
    return next(_ids)


def encode_block(block: np.ndarray) -> bytes:
    """Compress a uint8 block: as runs (start, value) when it has few, else deflate.

    Mask diffs are mostly long runs; finding them with numpy and deflating the short run
    list is several times faster than deflating the pixels, and as small.
    """
    flat = np.ascontiguousarray(block).reshape(-1)
    starts = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    if starts.size * 5 < flat.size:
        values = flat[np.concatenate(([0], starts))]
        payload = starts.astype("<u4").tobytes() + values.tobytes()
        return b"R" + zlib.compress(payload, ZLIB_LEVEL)
    packer = zlib.compressobj(ZLIB_LEVEL, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
    return b"Z" + packer.compress(flat.data) + packer.flush()


def decode_block(data: bytes, size: int) -> np.ndarray:
    """The flat uint8 array of `size` pixels that encode_block(data) was made from."""
    raw = zlib.decompress(memoryview(data)[1:])
    if data[:1] == b"Z":
        return np.frombuffer(raw, dtype=np.uint8)
    runs = (len(raw) + 4) // 5  # runs-1 uint32 starts, then one value byte per run
    starts = np.frombuffer(raw, dtype="<u4", count=runs - 1)
    values = np.frombuffer(raw, dtype=np.uint8, offset=4 * (runs - 1))
    bounds = np.empty(runs + 1, dtype=np.int64)
    bounds[0], bounds[1:-1], bounds[-1] = 0, starts, size
    return np.repeat(values, np.diff(bounds))


@dataclass(frozen=True)
class TilePatch:
    """`old ^ new` over `region` (absolute image coordinates), compressed."""

    region: Region
    diff: bytes

    @property
    def nbytes(self) -> int:
        return len(self.diff) + PATCH_OVERHEAD

    def xor_into(self, mask: np.ndarray) -> None:
        """Toggle the mask between the old and new contents of this patch."""
        flat = decode_block(self.diff, self.region.area)
        target = mask[self.region.slices]
        np.bitwise_xor(target, flat.reshape(self.region.shape), out=target)


def make_patch(origin_y: int, origin_x: int, old: np.ndarray, new: np.ndarray) -> TilePatch | None:
    """The patch turning `old` into `new` (same-shape blocks at origin), or None if equal."""
    diff = np.bitwise_xor(old, new)
    cols = np.flatnonzero(np.bitwise_or.reduce(diff, axis=0))
    if cols.size == 0:
        return None
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    rows = np.flatnonzero(np.bitwise_or.reduce(diff[:, c0:c1], axis=1))
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    region = Region(origin_y + r0, origin_x + c0, origin_y + r1, origin_x + c1)
    return TilePatch(region, encode_block(diff[r0:r1, c0:c1]))


@dataclass(frozen=True)
class EditEntry:
    """One undoable step: its label, its patches, and the mask states before and after."""

    label: str
    patches: tuple[TilePatch, ...]
    state_before: int
    state_after: int

    @property
    def nbytes(self) -> int:
        return ENTRY_OVERHEAD + sum(p.nbytes for p in self.patches)

    @property
    def regions(self) -> list[Region]:
        return [p.region for p in self.patches]

    @property
    def region(self) -> Region:
        return Region.bounding(self.regions)

    def apply(self, mask: np.ndarray) -> None:
        """Undo it if the mask is in the after state, redo it if in the before state."""
        for patch in self.patches:
            patch.xor_into(mask)


class EditHistory:
    """Two stacks of entries within a byte budget and a step limit; oldest dropped first.

    The newest entry is always kept, even alone over budget: one huge edit (accepting a
    prediction on a giant image) must still be undoable.
    """

    def __init__(self, budget_bytes: int, max_steps: int) -> None:
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        self.budget_bytes = int(budget_bytes)
        self.max_steps = int(max_steps)
        self._undo: deque[EditEntry] = deque()
        self._redo: list[EditEntry] = []
        self._bytes = 0
        self.dropped = 0  # entries dropped for budget or step limit, for status displays

    def __len__(self) -> int:
        return len(self._undo) + len(self._redo)

    @property
    def nbytes(self) -> int:
        return self._bytes

    @property
    def undo_depth(self) -> int:
        return len(self._undo)

    @property
    def redo_depth(self) -> int:
        return len(self._redo)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_label(self) -> str | None:
        return self._undo[-1].label if self._undo else None

    @property
    def redo_label(self) -> str | None:
        return self._redo[-1].label if self._redo else None

    def push(self, entry: EditEntry) -> None:
        """Record a new step; the redo branch is dropped, then the oldest beyond the limits."""
        self._drop(self._redo)
        self._redo.clear()
        self._undo.append(entry)
        self._bytes += entry.nbytes
        while len(self._undo) > 1 and (
            len(self._undo) > self.max_steps or self._bytes > self.budget_bytes
        ):
            oldest = self._undo.popleft()
            self._bytes -= oldest.nbytes
            self.dropped += 1

    def pop_undo(self) -> EditEntry | None:
        """The step to undo (moved onto the redo stack), or None."""
        if not self._undo:
            return None
        entry = self._undo.pop()
        self._redo.append(entry)
        return entry

    def pop_redo(self) -> EditEntry | None:
        """The step to redo (moved back onto the undo stack), or None."""
        if not self._redo:
            return None
        entry = self._redo.pop()
        self._undo.append(entry)
        return entry

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self._bytes = 0

    def _drop(self, entries: Iterable[EditEntry]) -> None:
        for entry in entries:
            self._bytes -= entry.nbytes
