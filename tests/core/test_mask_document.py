"""MaskDocument: strokes, listeners, dirty/revision, undo/redo (property-tested), budget."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segstudio.core import tools
from segstudio.core.classes import ClassTable, load_class_file
from segstudio.core.errors import MaskError
from segstudio.core.imageio import read_mask
from segstudio.core.mask_document import MaskDocument, StrokeError
from segstudio.core.region import EMPTY, Region

CAMVID = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "camvid"
CLASSES = ClassTable.from_names([f"c{i}" for i in range(11)] + ["void"], ignore="void")
VOID = 11


def blocks(height: int, width: int, seed: int = 0, cell: int = 8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 12, size=(height // cell + 1, width // cell + 1), dtype=np.uint8)
    return np.ascontiguousarray(np.repeat(np.repeat(cells, cell, 0), cell, 1)[:height, :width])


def digest(array: np.ndarray) -> str:
    return hashlib.blake2b(array.tobytes(), digest_size=8).hexdigest()


class Recorder:
    """A listener that keeps every region it was told about."""

    def __init__(self) -> None:
        self.regions: list[Region] = []

    def __call__(self, region: Region) -> None:
        self.regions.append(region)

    def covered(self, shape: tuple[int, int]) -> np.ndarray:
        cover = np.zeros(shape, dtype=bool)
        for region in self.regions:
            cover[region.slices] = True
        self.regions.clear()
        return cover


# -- construction and basic writes -------------------------------------------------------------
def test_rejects_masks_that_are_not_2d_class_ids() -> None:
    with pytest.raises(MaskError):
        MaskDocument(np.zeros((4, 4, 3), np.uint8), CLASSES)
    with pytest.raises(MaskError):
        MaskDocument(np.full((4, 4), 300, np.int32), CLASSES)
    doc = MaskDocument(np.full((4, 5), 7, np.int64), CLASSES)
    assert doc.mask.dtype == np.uint8 and doc.shape == (4, 5) and (doc.mask == 7).all()


def test_mask_is_read_only_for_views_and_writes_need_a_stroke() -> None:
    doc = MaskDocument(np.zeros((8, 8), np.uint8), CLASSES)
    with pytest.raises(ValueError):
        doc.mask[0, 0] = 3
    with pytest.raises(StrokeError):
        doc.write(Region(0, 0, 2, 2), 3)
    doc.begin_stroke("x")
    with pytest.raises(MaskError):
        doc.write(Region(0, 0, 2, 2), 256)
    doc.abort_stroke()


def test_write_returns_the_tight_changed_box_and_clips_arrays_at_the_edge() -> None:
    mask = np.zeros((20, 30), np.uint8)
    mask[5:8, 5:8] = 4
    doc = MaskDocument(mask.copy(), CLASSES, tile=8)
    doc.begin_stroke("Brush")
    # Region half outside the image: values and where are cropped with it.
    values = np.arange(100, dtype=np.uint8).reshape(10, 10) % 5
    where = np.zeros((10, 10), bool)
    where[6:, 6:] = True
    changed = doc.write(Region(-4, -4, 6, 6), values, where)
    expected = np.zeros((20, 30), np.uint8)
    expected[5:8, 5:8] = 4
    expected[2:6, 2:6] = values[6:, 6:]
    assert np.array_equal(doc.mask, expected)
    diff = np.argwhere(expected != mask)
    assert changed == Region(
        diff[:, 0].min(), diff[:, 1].min(), diff[:, 0].max() + 1, diff[:, 1].max() + 1
    )
    # Writing what is already there changes nothing.
    assert doc.write(Region(5, 5, 8, 8), 4) == EMPTY
    assert doc.write(Region(40, 40, 50, 50), 1) == EMPTY
    assert doc.end_stroke()


def test_empty_stroke_makes_no_history_entry() -> None:
    doc = MaskDocument(np.full((16, 16), 2, np.uint8), CLASSES)
    doc.begin_stroke("Brush")
    doc.write(Region(0, 0, 4, 4), 2)
    assert not doc.end_stroke()
    assert not doc.can_undo and doc.undo() is None and not doc.dirty


def test_abort_restores_every_tile_and_notifies() -> None:
    mask = blocks(40, 50, seed=1)
    doc = MaskDocument(mask.copy(), CLASSES, tile=16)
    rec = Recorder()
    doc.add_listener(rec)
    doc.begin_stroke("Brush")
    tools.stroke_segment(doc, 2, 3, 47, 38, 4, 9)
    tools.dab(doc, 45, 5, 6, 10)
    assert not np.array_equal(doc.mask, mask) and doc.dirty
    rec.covered(doc.shape)
    doc.abort_stroke()
    assert np.array_equal(doc.mask, mask)
    assert not doc.dirty and not doc.can_undo
    assert rec.covered(doc.shape).any()


def test_dirty_and_revision_follow_saves_and_undo() -> None:
    doc = MaskDocument(np.zeros((32, 32), np.uint8), CLASSES, tile=8)
    assert not doc.dirty
    rev = doc.revision
    assert doc.apply_edit("a", Region(0, 0, 5, 5), 3)
    assert doc.dirty and doc.revision > rev
    doc.mark_saved()
    assert not doc.dirty
    rev = doc.revision
    doc.apply_edit("b", Region(10, 10, 12, 12), 4)
    assert doc.dirty and doc.revision > rev
    rev = doc.revision
    doc.undo()
    assert not doc.dirty and doc.revision > rev  # back at the saved state
    doc.undo()
    assert doc.dirty
    doc.redo()
    assert not doc.dirty
    # A new edit after undoing below the save point keeps the document dirty.
    doc.undo()
    doc.apply_edit("c", Region(20, 20, 22, 22), 5)
    assert doc.dirty


def test_save_in_the_middle_of_a_stroke_does_not_break_it() -> None:
    doc = MaskDocument(np.zeros((32, 32), np.uint8), CLASSES, tile=8)
    doc.begin_stroke("Brush")
    tools.dab(doc, 5, 5, 2, 3)
    doc.mark_saved()  # e.g. an autosave timer while the button is held
    assert doc.in_stroke and doc.dirty
    tools.dab(doc, 20, 20, 2, 3)  # the stroke goes on
    assert doc.end_stroke() and doc.dirty
    doc.mark_saved()
    assert not doc.dirty
    doc.undo()
    assert doc.dirty and not doc.mask.any()
    # A where mask of 0/1 integers works like a bool one.
    doc.apply_edit("Fill", Region(0, 0, 4, 4), 2, np.eye(4, dtype=np.uint8))
    assert np.array_equal(doc.mask[:4, :4], 2 * np.eye(4, dtype=np.uint8))


def test_labels_and_open_stroke_are_committed_by_undo() -> None:
    doc = MaskDocument(np.zeros((32, 32), np.uint8), CLASSES, tile=8)
    doc.apply_edit("Fill", Region(0, 0, 4, 4), 1)
    doc.begin_stroke("Brush")
    tools.dab(doc, 20, 20, 3, 2)
    assert doc.can_undo and doc.undo_label == "Brush" and not doc.can_redo
    doc.undo()  # commits the open stroke, then undoes it
    assert not doc.in_stroke and (doc.mask[17:24, 17:24] == 0).all()
    assert doc.redo_label == "Brush" and doc.undo_label == "Fill"


def test_history_memory_follows_the_change_not_the_image() -> None:
    doc = MaskDocument(blocks(4096, 4096, cell=64), CLASSES)
    doc.begin_stroke("Brush")
    tools.dab(doc, 2000.5, 2000.5, 10, 5)
    doc.end_stroke()
    assert 0 < doc.history_bytes() < 4096


def test_replace_all_and_remap_are_single_undoable_edits() -> None:
    mask = blocks(50, 70, seed=2)
    doc = MaskDocument(mask.copy(), CLASSES, tile=16)
    with pytest.raises(MaskError):
        doc.replace_all("Accept", np.zeros((10, 10), np.uint8))
    assert not doc.replace_all("Accept", mask.copy())
    new = mask.copy()
    new[10:20, 30:60] = 1
    new[45:, :5] = 2
    assert doc.replace_all("Accept", new)
    assert np.array_equal(doc.mask, new) and doc.undo_label == "Accept"
    lut = np.arange(256, dtype=np.uint8)
    lut[3] = VOID
    assert doc.remap("Delete class", lut)
    assert np.array_equal(doc.mask, lut[new]) and not (doc.mask == 3).any()
    doc.undo()
    assert np.array_equal(doc.mask, new)
    doc.undo()
    assert np.array_equal(doc.mask, mask)


# -- listeners cover every changed pixel --------------------------------------------------------
def test_listeners_cover_every_changed_pixel() -> None:
    doc = MaskDocument(blocks(60, 80, seed=4), CLASSES, tile=16)
    rec = Recorder()
    doc.add_listener(rec)
    image = np.zeros((60, 80, 3), np.uint8)
    image[:, 40:] = 200

    def check(action) -> None:  # type: ignore[no-untyped-def]
        before = doc.mask.copy()
        action()
        changed = before != doc.mask
        cover = rec.covered(doc.shape)
        assert not (changed & ~cover).any()

    def brush() -> None:
        doc.begin_stroke("Brush")
        tools.stroke_segment(doc, -5, 10, 90, 50, 3, 1)
        doc.end_stroke()

    def aborted() -> None:
        doc.begin_stroke("Brush")
        tools.dab(doc, 30, 30, 9, 4)
        before_abort = doc.mask.copy()
        rec.regions.clear()
        doc.abort_stroke()
        assert not (before_abort != doc.mask)[~rec.covered(doc.shape)].any()

    check(brush)
    check(aborted)
    check(lambda: tools.flood_fill(doc, 5, 5, 7))
    check(lambda: tools.polygon_fill(doc, [(0, 0), (70, 10), (20, 55)], 8))
    check(lambda: tools.magic_wand(doc, image, 60, 30, 10, 2))
    check(lambda: doc.replace_all("All", blocks(60, 80, seed=9)))
    check(doc.undo)
    check(doc.undo)
    check(doc.redo)
    doc.remove_listener(rec)
    doc.apply_edit("x", Region(0, 0, 10, 10), 3)
    assert rec.regions == []


# -- undo/redo property test -----------------------------------------------------------------
H, W = 37, 53
coord_x = st.floats(-10, W + 10, allow_nan=False)
coord_y = st.floats(-10, H + 10, allow_nan=False)
value = st.integers(0, 11)
op = st.one_of(
    st.tuples(st.just("dab"), coord_x, coord_y, st.integers(0, 6), value, st.booleans()),
    st.tuples(
        st.just("segments"),
        st.lists(st.tuples(coord_x, coord_y), min_size=2, max_size=5),
        st.integers(0, 5),
        value,
        st.booleans(),
    ),
    st.tuples(st.just("fill"), coord_x, coord_y, value, st.booleans()),
    st.tuples(
        st.just("polygon"), st.lists(st.tuples(coord_x, coord_y), min_size=3, max_size=6), value
    ),
    st.tuples(st.just("replace_all"), st.integers(0, 1000)),
    st.tuples(st.just("remap"), value, value),
)


def apply_op(doc: MaskDocument, item: tuple) -> None:  # type: ignore[type-arg]
    kind = item[0]
    if kind == "dab":
        _, x, y, r, v, protect = item
        doc.begin_stroke("Brush")
        tools.dab(doc, x, y, r, v, protect)
        doc.end_stroke()
    elif kind == "segments":
        _, points, r, v, protect = item
        doc.begin_stroke("Brush")
        for (xa, ya), (xb, yb) in zip(points, points[1:]):
            tools.stroke_segment(doc, xa, ya, xb, yb, r, v, protect)
        doc.end_stroke()
    elif kind == "fill":
        _, x, y, v, protect = item
        tools.flood_fill(doc, x, y, v, protect)
    elif kind == "polygon":
        _, points, v = item
        tools.polygon_fill(doc, points, v)
    elif kind == "replace_all":
        doc.replace_all("Accept", blocks(H, W, seed=item[1], cell=5))
    else:
        _, src, dst = item
        lut = np.arange(256, dtype=np.uint8)
        lut[src] = dst
        doc.remap("Remap", lut)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, min_size=1, max_size=12), extra=op, back=st.integers(0, 12))
def test_undo_all_restores_and_redo_all_replays(ops: list, extra: tuple, back: int) -> None:  # type: ignore[type-arg]
    original = blocks(H, W, seed=7, cell=6)
    doc = MaskDocument(original.copy(), CLASSES, tile=16)
    states = [original.copy()]
    for item in ops:
        apply_op(doc, item)
        if not np.array_equal(doc.mask, states[-1]):
            states.append(doc.mask.copy())
    final = doc.mask.copy()
    steps = 0
    while doc.can_undo:
        doc.undo()
        steps += 1
        assert np.array_equal(doc.mask, states[-1 - steps])
    assert steps == len(states) - 1
    assert np.array_equal(doc.mask, original) and not doc.dirty
    while doc.can_redo:
        doc.redo()
    assert np.array_equal(doc.mask, final)
    # Undo some steps, then a new edit: the redo branch is gone, and undo still walks back.
    back = min(back, steps)
    for _ in range(back):
        doc.undo()
    assert np.array_equal(doc.mask, states[len(states) - 1 - back])
    apply_op(doc, extra)
    if not np.array_equal(doc.mask, states[len(states) - 1 - back]):
        assert not doc.can_redo
    while doc.can_undo:
        doc.undo()
    assert np.array_equal(doc.mask, original)


# -- memory budget ---------------------------------------------------------------------------
def random_stroke(doc: MaskDocument, rng: np.random.Generator, radius: int) -> None:
    height, width = doc.shape
    start = rng.uniform((0, 0), (width, height))
    walk = start + np.cumsum(rng.normal(0, 15, size=(6, 2)), axis=0)
    doc.begin_stroke("Brush")
    for (xa, ya), (xb, yb) in zip(walk, walk[1:]):
        tools.stroke_segment(doc, xa, ya, xb, yb, radius, int(rng.integers(0, 12)))
    doc.end_stroke()


def test_600_strokes_stay_within_budget_and_the_last_500_undo_exactly() -> None:
    rng = np.random.default_rng(5)
    doc = MaskDocument(blocks(2048, 2048, cell=64), CLASSES, history_budget_mb=20)
    mark = ""
    while doc.history.undo_depth < 600:
        if doc.history.undo_depth == 100 and not mark:
            mark = digest(doc.mask)
        random_stroke(doc, rng, 12)
        assert doc.history_bytes() <= 20 * 2**20
    assert doc.history.dropped == 0
    for _ in range(500):
        doc.undo()
    assert digest(doc.mask) == mark


def test_budget_drops_oldest_steps_and_keeps_the_rest_exact() -> None:
    rng = np.random.default_rng(6)
    budget_mb = 0.03
    doc = MaskDocument(blocks(512, 512, cell=32), CLASSES, tile=64, history_budget_mb=budget_mb)
    before_step = []  # mask digest before each committed step
    while len(before_step) < 80:
        state = digest(doc.mask)
        random_stroke(doc, rng, 20)
        if digest(doc.mask) != state:
            before_step.append(state)
        assert doc.history_bytes() <= budget_mb * 2**20
    depth = doc.history.undo_depth
    assert 1 <= depth < 80 and doc.history.dropped == 80 - depth
    for _ in range(depth):
        doc.undo()
    assert not doc.can_undo
    # Oldest were dropped: undoing everything lands on the state before the oldest kept step.
    assert digest(doc.mask) == before_step[80 - depth]


# -- real data ---------------------------------------------------------------------------------
def test_camvid_mask_paint_fill_undo_is_exact() -> None:
    if not CAMVID.is_dir():
        pytest.skip(f"CamVid sample data not found at {CAMVID}; run the data bootstrap first")
    classes = load_class_file(CAMVID / "classes.json")
    path = sorted((CAMVID / "trainannot").glob("*.png"))[0]
    mask = read_mask(path, classes)
    doc = MaskDocument(mask.copy(), classes, tile=64)
    road = classes.by_name("Road").id
    doc.begin_stroke("Brush")
    tools.stroke_segment(doc, -20, 100, 500, 300, 15, road)
    tools.stroke_segment(doc, 500, 300, 100, 350, 15, road)
    doc.end_stroke()
    tools.flood_fill(doc, 240, 20, classes.by_name("Car").id)
    doc.begin_stroke("Eraser")
    tools.dab(doc, 470, 355, 30, tools.erase_value(doc), protect=False)
    doc.end_stroke()
    painted = doc.mask.copy()
    assert (painted != mask).sum() > 5000
    while doc.can_undo:
        doc.undo()
    assert np.array_equal(doc.mask, mask)
    while doc.can_redo:
        doc.redo()
    assert np.array_equal(doc.mask, painted)
