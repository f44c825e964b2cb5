"""Which image comes next, and which visited images stay open: Qt-free, so the editing
session's navigation and its document LRU are tested without a window.

The cache keeps the documents of recently visited images alive so their undo history
survives switching away and back; only the newest few keep their decoded pixels.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from segstudio.core.gigapixel import GigapixelImage
from segstudio.core.mask_document import MaskDocument
from segstudio.core.tiled_mask import DirtyChunks

CACHE_SIZE = 8
IMAGE_CACHE_SIZE = 3  # decoded images kept; others are re-read (images never change)


def neighbor_id(ids: Sequence[str], current: str | None, step: int) -> str | None:
    """The image `step` places from `current` in `ids`; the first (or last) when `current`
    is not among them; None past either end."""
    if not ids:
        return None
    if current not in ids:
        return ids[0] if step > 0 else ids[-1]
    index = list(ids).index(current) + step
    return ids[index] if 0 <= index < len(ids) else None


def next_unlabeled_id(ids: Sequence[str], current: str | None,
                      status_of: Callable[[str], str]) -> str | None:
    """The first image after `current` (wrapping around) whose status is unlabeled."""
    ordered = list(ids)
    start = ordered.index(current) + 1 if current in ordered else 0
    for image_id in ordered[start:] + ordered[:start]:
        if image_id != current and status_of(image_id) == "unlabeled":
            return image_id
    return None


@dataclass
class OpenImage:
    """A visited image: its document, maybe its pixels, and what was journalled."""

    image_id: str
    document: MaskDocument
    image: np.ndarray | GigapixelImage | None
    journaled_revision: int = -1
    mask_rejected: bool = False
    listener: object = field(default=None, repr=False)
    # A gigapixel image's mask: the chunks changed since its last save (saved by chunk).
    chunks: DirtyChunks | None = field(default=None, repr=False)


class DocumentCache:
    """Open images, least recently used first; `current` is never evicted or emptied."""

    def __init__(self, capacity: int = CACHE_SIZE, image_capacity: int = IMAGE_CACHE_SIZE) -> None:
        self.capacity = max(1, capacity)
        self.image_capacity = max(1, image_capacity)
        self.current: str | None = None
        self._entries: OrderedDict[str, OpenImage] = OrderedDict()

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._entries

    def __iter__(self) -> Iterator[OpenImage]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, image_id: str | None) -> OpenImage | None:
        return None if image_id is None else self._entries.get(image_id)

    @property
    def current_entry(self) -> OpenImage | None:
        return self.get(self.current)

    def ids(self) -> list[str]:
        return list(self._entries)

    def add(self, entry: OpenImage) -> None:
        self._entries[entry.image_id] = entry

    def make_current(self, image_id: str) -> OpenImage:
        """Mark `image_id` current and most recently used."""
        self.current = image_id
        self._entries.move_to_end(image_id)
        return self._entries[image_id]

    def drop_old_pixels(self) -> list[str]:
        """Forget the decoded pixels of all but the newest `image_capacity` entries."""
        dropped = []
        for position, entry in enumerate(reversed(self._entries.values())):
            if position >= self.image_capacity and entry.image_id != self.current and entry.image is not None:
                entry.image = None
                dropped.append(entry.image_id)
        return dropped

    def evict(self, release: Callable[[OpenImage], bool]) -> list[OpenImage]:
        """Drop the oldest entries beyond capacity; `release(entry)` saves one and says
        whether it may go (a document that cannot be saved is kept, not dropped)."""
        evicted = []
        for key in list(self._entries):
            if len(self._entries) <= self.capacity:
                break
            if key == self.current or not release(self._entries[key]):
                continue
            evicted.append(self._entries.pop(key))
        return evicted

    def clear(self) -> list[OpenImage]:
        entries = list(self._entries.values())
        self._entries.clear()
        self.current = None
        return entries
