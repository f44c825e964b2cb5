"""EditHistory and tile patches: XOR round trips, tight boxes, budget and step limits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from segstudio.core.history import (
    EditEntry,
    EditHistory,
    TilePatch,
    decode_block,
    encode_block,
    make_patch,
    new_state_id,
)
from segstudio.core.region import Region


def _entry(label: str, nbytes_payload: int) -> EditEntry:
    patch = TilePatch(Region(0, 0, 1, 1), b"x" * nbytes_payload)
    return EditEntry(label, (patch,), new_state_id(), new_state_id())


def test_make_patch_is_none_for_equal_blocks() -> None:
    block = np.arange(64, dtype=np.uint8).reshape(8, 8)
    assert make_patch(0, 0, block, block.copy()) is None


def test_patch_box_is_tight_and_toggles_between_old_and_new() -> None:
    rng = np.random.default_rng(3)
    old = rng.integers(0, 12, size=(32, 40), dtype=np.uint8)
    new = old.copy()
    new[5:9, 11:30] = 7
    new[20, 3] = (old[20, 3] + 1) % 12
    changed = np.argwhere(old != new)
    patch = make_patch(100, 200, old, new)
    assert patch is not None
    assert patch.region == Region(
        100 + changed[:, 0].min(),
        200 + changed[:, 1].min(),
        100 + changed[:, 0].max() + 1,
        200 + changed[:, 1].max() + 1,
    )
    canvas = np.zeros((200, 300), dtype=np.uint8)
    canvas[100:132, 200:240] = new
    patch.xor_into(canvas)
    assert np.array_equal(canvas[100:132, 200:240], old)
    patch.xor_into(canvas)
    assert np.array_equal(canvas[100:132, 200:240], new)
    assert not canvas[:100].any() and not canvas[132:].any()


def test_constant_fill_compresses_far_below_raw_size() -> None:
    old = np.full((256, 256), 3, np.uint8)
    new = np.full((256, 256), 9, np.uint8)
    patch = make_patch(0, 0, old, new)
    assert patch is not None and len(patch.diff) < 256 * 256 // 50


def test_push_clears_redo_and_labels_follow_the_stacks() -> None:
    history = EditHistory(budget_bytes=10**9, max_steps=10)
    history.push(_entry("a", 10))
    history.push(_entry("b", 10))
    assert history.undo_label == "b" and history.redo_label is None
    assert history.pop_undo().label == "b"
    assert history.undo_label == "a" and history.redo_label == "b"
    history.push(_entry("c", 10))
    assert not history.can_redo and history.redo_label is None
    assert [history.pop_undo().label, history.pop_undo().label] == ["c", "a"]
    assert history.pop_undo() is None
    assert history.pop_redo().label == "a"


def test_step_limit_drops_the_oldest() -> None:
    history = EditHistory(budget_bytes=10**9, max_steps=3)
    for label in "abcde":
        history.push(_entry(label, 5))
    labels = []
    while history.can_undo:
        labels.append(history.pop_undo().label)
    assert labels == ["e", "d", "c"]
    assert history.dropped == 2


def test_byte_budget_drops_the_oldest_but_keeps_the_newest() -> None:
    history = EditHistory(budget_bytes=10_000, max_steps=1000)
    for i in range(30):
        history.push(_entry(str(i), 1000))
        assert history.nbytes <= 10_000
    kept = history.undo_depth
    assert 1 < kept < 30
    assert history.undo_label == "29"
    # A single step over budget on its own is still kept: it must stay undoable.
    history.push(_entry("huge", 50_000))
    assert history.undo_depth == 1 and history.undo_label == "huge"


def test_bytes_account_for_both_stacks_and_clear() -> None:
    history = EditHistory(budget_bytes=10**9, max_steps=100)
    entries = [_entry(str(i), 100 * (i + 1)) for i in range(4)]
    for entry in entries:
        history.push(entry)
    total = sum(e.nbytes for e in entries)
    assert history.nbytes == total
    history.pop_undo()
    history.pop_undo()
    assert history.nbytes == total
    history.push(_entry("new", 10))
    assert history.nbytes == entries[0].nbytes + entries[1].nbytes + _entry("x", 10).nbytes
    history.clear()
    assert history.nbytes == 0 and len(history) == 0


def test_max_steps_must_be_positive() -> None:
    with pytest.raises(ValueError):
        EditHistory(budget_bytes=100, max_steps=0)


@settings(max_examples=150, deadline=None)
@given(
    block=hnp.arrays(
        np.uint8,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
        elements=st.sampled_from([0, 0, 0, 3, 7, 255]) | st.integers(0, 255),
    )
)
def test_encode_decode_round_trip(block: np.ndarray) -> None:
    data = encode_block(block)
    assert np.array_equal(decode_block(data, block.size), block.reshape(-1))


@pytest.mark.parametrize("kind", ["runs", "noise", "one pixel"])
def test_both_encodings_round_trip(kind: str) -> None:
    rng = np.random.default_rng(0)
    if kind == "runs":
        block = np.zeros((256, 256), np.uint8)
        block[40:90, 10:250] = 6
        expected_tag = b"R"
    elif kind == "noise":
        block = rng.integers(0, 12, size=(256, 256), dtype=np.uint8)
        expected_tag = b"Z"
    else:
        block = np.full((1, 1), 9, np.uint8)
        expected_tag = b"R"
    data = encode_block(block)
    assert data[:1] == expected_tag
    assert np.array_equal(decode_block(data, block.size), block.reshape(-1))
