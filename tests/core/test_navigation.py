"""Navigation between images and the open-document LRU, without Qt."""

from __future__ import annotations

import numpy as np

from segstudio.core.classes import ClassDef, ClassTable
from segstudio.core.mask_document import MaskDocument
from segstudio.core.navigation import DocumentCache, OpenImage, neighbor_id, next_unlabeled_id

IDS = ["a", "b", "c", "d"]
CLASSES = ClassTable((ClassDef(0, "road", (1, 2, 3)), ClassDef(255, "unlabeled", (0, 0, 0), ignore=True)))


def test_neighbor_steps_within_the_order_and_stops_at_the_ends() -> None:
    assert neighbor_id(IDS, "b", 1) == "c"
    assert neighbor_id(IDS, "b", -1) == "a"
    assert neighbor_id(IDS, "b", 2) == "d"
    assert neighbor_id(IDS, "d", 1) is None
    assert neighbor_id(IDS, "a", -1) is None
    # not in the (filtered) order: forward starts at the first, backward at the last
    assert neighbor_id(IDS, "zz", 1) == "a"
    assert neighbor_id(IDS, None, -1) == "d"
    assert neighbor_id([], "a", 1) is None


def test_next_unlabeled_wraps_and_skips_the_current_image() -> None:
    status = {"a": "unlabeled", "b": "labeled", "c": "in_progress", "d": "reviewed"}
    assert next_unlabeled_id(IDS, "b", status.__getitem__) == "a"  # wrapped past the end
    assert next_unlabeled_id(IDS, "a", status.__getitem__) is None  # only the current one
    status["d"] = "unlabeled"
    assert next_unlabeled_id(IDS, "a", status.__getitem__) == "d"
    assert next_unlabeled_id(IDS, None, status.__getitem__) == "a"
    assert next_unlabeled_id([], None, status.__getitem__) is None


def _entry(image_id: str) -> OpenImage:
    mask = np.full((4, 6), 255, np.uint8)
    return OpenImage(image_id, MaskDocument(mask, CLASSES), np.zeros((4, 6, 3), np.uint8))


def test_cache_evicts_least_recently_used_but_never_the_current_or_an_unsaved_one() -> None:
    cache = DocumentCache(capacity=2, image_capacity=1)
    for image_id in ("a", "b", "c"):
        cache.add(_entry(image_id))
        cache.make_current(image_id)
    cache.make_current("a")  # a is now the newest: b is the oldest
    assert cache.ids() == ["b", "c", "a"]
    asked: list[str] = []

    def release(entry: OpenImage) -> bool:
        asked.append(entry.image_id)
        return entry.image_id != "b"  # b cannot be saved: it must stay

    evicted = cache.evict(release)
    assert asked == ["b", "c"] and [e.image_id for e in evicted] == ["c"]
    assert cache.ids() == ["b", "a"] and cache.current == "a"
    assert cache.evict(lambda _entry: True) == []  # within capacity now


def test_cache_keeps_pixels_only_for_the_newest_images() -> None:
    cache = DocumentCache(capacity=8, image_capacity=2)
    for image_id in IDS:
        cache.add(_entry(image_id))
        cache.make_current(image_id)
    cache.make_current("a")  # order b, c, d, a: a and d are the newest two
    assert sorted(cache.drop_old_pixels()) == ["b", "c"]
    assert [e.image_id for e in cache if e.image is not None] == ["d", "a"]
    assert cache.drop_old_pixels() == []
    cleared = cache.clear()
    assert len(cleared) == 4 and len(cache) == 0 and cache.current is None
    assert cache.current_entry is None
