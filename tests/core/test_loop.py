"""Model in the loop without Qt: layers, accepts as undoable edits, review order, effort."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from segstudio.core import imageio
from segstudio.core.classes import ClassDef, ClassTable, load_class_file
from segstudio.core.loop import (
    DISAGREE_COLOR,
    ImageScore,
    Prediction,
    accept_all,
    accept_region,
    accept_unlabeled,
    confidence_rgba,
    disagreement,
    disagreement_rgba,
    from_bytes,
    next_in_queue,
    prediction_rgba,
    review_order,
    uncertainty_bytes,
    uncertainty_map,
)
from segstudio.core.loop_store import EffortTracker, PredictionCache, drop_other_models, model_hash
from segstudio.core.mask_document import MaskDocument

CAMVID = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "camvid"
U = 255  # unlabelled


@pytest.fixture
def classes() -> ClassTable:
    return ClassTable((ClassDef(0, "sky", (128, 128, 128)), ClassDef(1, "road", (128, 64, 128)),
                       ClassDef(2, "car", (64, 0, 128)), ClassDef(U, "unlabeled", (0, 0, 0), ignore=True)))


@pytest.fixture
def camvid_pair() -> tuple[np.ndarray, ClassTable]:
    """A real CamVid mask (class ids) and its class table."""
    if not (CAMVID / "classes.json").is_file():
        pytest.skip(f"CamVid data not found at {CAMVID}")
    classes = load_class_file(CAMVID / "classes.json")
    mask_path = sorted((CAMVID / "trainannot").glob("*.png"))[0]
    mask, _ = imageio.read_mask_array(mask_path)
    return mask, classes


def _prediction(labels: np.ndarray, num_classes: int = 3) -> Prediction:
    shape = labels.shape
    return Prediction(labels.astype(np.uint8), np.full(shape, 0.9, np.float32),
                      np.full(shape, 0.2, np.float32), np.full(shape, 0.8, np.float32), num_classes)


def _camvid_prediction(mask: np.ndarray) -> np.ndarray:
    """A plausible 'prediction': the true mask shifted by 7 pixels, with unlabelled filled."""
    labels = np.roll(mask, 7, axis=1).copy()
    labels[labels == 11] = 0
    return labels


# -- accept ---------------------------------------------------------------------------------
def test_accept_all_is_one_undoable_edit(classes: ClassTable) -> None:
    rng = np.random.default_rng(0)
    start = rng.choice([0, 1, U], size=(300, 520)).astype(np.uint8)
    labels = rng.integers(0, 3, size=(300, 520)).astype(np.uint8)
    doc = MaskDocument(start.copy(), classes)  # the document takes ownership
    edit = accept_all(doc.mask, labels, U)
    assert edit.apply(doc)
    np.testing.assert_array_equal(doc.mask, labels)
    assert doc.undo_label == "Accept prediction"
    doc.undo()
    np.testing.assert_array_equal(doc.mask, start)
    assert not doc.can_undo  # exactly one step
    doc.redo()
    np.testing.assert_array_equal(doc.mask, labels)


def test_accept_unlabeled_leaves_labelled_pixels(camvid_pair: tuple[np.ndarray, ClassTable]) -> None:
    truth, classes = camvid_pair
    unlabeled = classes.unlabeled_id
    half = truth.copy()
    half[:, truth.shape[1] // 2:] = unlabeled  # the user labelled the left half
    labels = _camvid_prediction(truth)
    doc = MaskDocument(half.copy(), classes)
    edit = accept_unlabeled(doc.mask, labels, unlabeled)
    assert edit.apply(doc)
    was_labelled = half != unlabeled
    np.testing.assert_array_equal(doc.mask[was_labelled], half[was_labelled])
    np.testing.assert_array_equal(doc.mask[~was_labelled], labels[~was_labelled])
    assert edit.pixels == int((~was_labelled).sum())
    doc.undo()
    np.testing.assert_array_equal(doc.mask, half)


def test_accept_region_takes_exactly_the_clicked_component(classes: ClassTable) -> None:
    labels = np.zeros((40, 60), np.uint8)
    labels[5:15, 5:20] = 2          # car A
    labels[5:15, 30:50] = 2         # car B, same class, not connected
    labels[20:30, 10:20] = 1        # road touching nothing
    labels[14, 20] = 2              # diagonal neighbour of A only: 4-connectivity keeps it out
    labels[15, 21] = 2
    mask = np.full(labels.shape, U, np.uint8)
    mask[0:3, :] = 0
    doc = MaskDocument(mask.copy(), classes)
    edit = accept_region(doc.mask, labels, x=7, y=8, unlabeled_id=U)
    expected = np.zeros(labels.shape, bool)
    expected[5:15, 5:20] = True
    expected[14, 20] = True  # 4-connected to A through (14, 19)
    assert edit.apply(doc)
    changed = doc.mask != mask
    np.testing.assert_array_equal(changed, expected)
    assert (doc.mask[expected] == 2).all()
    assert doc.mask[15, 21] == U and doc.mask[8, 35] == U
    doc.undo()
    np.testing.assert_array_equal(doc.mask, mask)


def test_accept_region_outside_or_on_ignore_does_nothing(classes: ClassTable) -> None:
    labels = np.full((10, 10), U, np.uint8)
    doc = MaskDocument(np.zeros((10, 10), np.uint8), classes)
    assert not accept_region(doc.mask, labels, 3, 3, U).apply(doc)
    assert not accept_region(doc.mask, labels, -1, 30, U).apply(doc)
    assert not doc.can_undo


def test_accept_never_writes_unlabelled_from_the_prediction(classes: ClassTable) -> None:
    mask = np.zeros((8, 8), np.uint8)
    labels = np.full((8, 8), 1, np.uint8)
    labels[:4] = U
    doc = MaskDocument(mask.copy(), classes)
    accept_all(doc.mask, labels, U).apply(doc)
    assert (doc.mask[:4] == 0).all() and (doc.mask[4:] == 1).all()


# -- layers ---------------------------------------------------------------------------------
def test_prediction_layer_styles(classes: ClassTable) -> None:
    labels = np.zeros((32, 32), np.uint8)
    labels[8:24, 8:24] = 2
    fill = prediction_rgba(labels, classes, "fill", 0.5)
    assert fill.shape == (32, 32, 4) and fill.dtype == np.uint8
    assert tuple(fill[16, 16, :3]) == (64, 0, 128) and fill[16, 16, 3] == 128
    outline = prediction_rgba(labels, classes, "outline")
    assert outline[16, 16, 3] == 0 and outline[1, 1, 3] == 0  # inside areas clear
    assert outline[8, 16, 3] == 255 and outline[7, 16, 3] == 255  # both sides of the border
    assert tuple(outline[8, 16, :3]) == (64, 0, 128) and tuple(outline[7, 16, :3]) == (128, 128, 128)
    assert tuple(outline[10, 16]) == (0, 0, 0, 160)  # dark halo just inside the line
    hatch = prediction_rgba(labels, classes, "hatch", 0.6)
    alphas = set(np.unique(hatch[12:20, 12:20, 3]).tolist())
    assert alphas == {255, 51}  # stripes and a faint fill
    labels[0, 0] = U
    assert prediction_rgba(labels, classes, "fill")[0, 0, 3] == 0
    with pytest.raises(ValueError, match="fill, outline, hatch"):
        prediction_rgba(labels, classes, "dots")


def test_confidence_map_is_hot_where_unsure() -> None:
    labels = np.zeros((2, 3), np.uint8)
    max_prob = np.array([[1.0, 0.5, 0.25], [0.9, 0.6, 0.3]], np.float32)
    entropy = np.array([[0.0, 0.5, 1.0], [0.1, 0.4, 0.9]], np.float32)
    pred = Prediction(labels, max_prob, entropy, np.zeros_like(entropy), num_classes=4)
    unsure = uncertainty_map(pred, "max_prob")
    np.testing.assert_allclose(unsure[0], [0.0, 2 / 3, 1.0], atol=1e-6)
    np.testing.assert_allclose(uncertainty_map(pred, "entropy"), entropy)
    rgba = confidence_rgba(unsure)
    assert rgba[0, 2, 3] > rgba[0, 1, 3] > rgba[0, 0, 3] > 0
    assert rgba[0, 2, 0] > rgba[0, 2, 2]  # unsure is red, not blue
    assert rgba[0, 0, 2] > rgba[0, 0, 0]


def test_disagreement_marks_labelled_differences_only(camvid_pair: tuple[np.ndarray, ClassTable]) -> None:
    truth, classes = camvid_pair
    unlabeled = classes.unlabeled_id
    labels = _camvid_prediction(truth)
    differ = disagreement(truth, labels, unlabeled)
    expected = (truth != unlabeled) & (truth != labels)
    np.testing.assert_array_equal(differ, expected)
    assert 0 < differ.sum() < differ.size
    rgba = disagreement_rgba(truth, labels, unlabeled)
    assert (rgba[differ, :3] == DISAGREE_COLOR).all()
    assert (rgba[differ, 3] > 0).all()
    far = ~differ & (truth == labels)
    # agreeing pixels are transparent apart from the thin rim around differences
    assert (rgba[far, :3] == 0).all()


# -- review queue ---------------------------------------------------------------------------
def _crafted(probs: list[list[float]], size: int = 4) -> Prediction:
    """A prediction whose pixels carry the given class distributions, tiled."""
    p = np.array(probs, np.float64)
    c = p.shape[1]
    reps = size * size // len(p)
    p = np.repeat(p, reps, axis=0).reshape(size, size, c)
    top = np.sort(p, axis=-1)
    ent = -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0)).sum(-1) / math.log(c)
    return Prediction(p.argmax(-1).astype(np.uint8), top[..., -1].astype(np.float32),
                      ent.astype(np.float32), (top[..., -1] - top[..., -2]).astype(np.float32), c)


def test_review_order_matches_hand_computed_uncertainty() -> None:
    sure = _crafted([[1.0, 0.0, 0.0]])
    mixed = _crafted([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])   # half the pixels uniform
    leaning = _crafted([[0.5, 0.5, 0.0]])                           # entropy log2/log3 = 0.631
    close = _crafted([[0.52, 0.48, 0.0], [0.9, 0.1, 0.0]])          # margin 0.04 on half
    scores = {"sure": sure.score(), "mixed": mixed.score(), "leaning": leaning.score(),
              "close": close.score()}
    # by hand: mean entropy sure 0, mixed 0.5, leaning 0.631, close (0.6302 + 0.2959) / 2 = 0.4631
    assert scores["leaning"].mean_entropy == pytest.approx(math.log(2) / math.log(3), rel=1e-5)
    assert review_order(scores, "mean_entropy") == ["leaning", "mixed", "close", "sure"]
    # low-margin share (< 0.1): leaning 1.0, mixed 0.5, close 0.5, sure 0 -> ties by id
    assert review_order(scores, "low_margin_share") == ["leaning", "close", "mixed", "sure"]
    assert review_order(scores, only={"sure", "mixed"}) == ["mixed", "sure"]
    order = review_order(scores)
    assert next_in_queue(order, "leaning") == "mixed"
    assert next_in_queue(order, "leaning", done={"mixed"}) == "close"
    assert next_in_queue(order, None, done=set(order)) is None
    with pytest.raises(ValueError, match="mean_entropy"):
        ImageScore(0, 0).get("area")


# -- cache and effort ------------------------------------------------------------------------
def test_prediction_cache_round_trip_and_model_change(tmp_path: Path) -> None:
    model_a = tmp_path / "a.safetensors"
    model_b = tmp_path / "b.safetensors"
    model_a.write_bytes(b"weights a")
    model_b.write_bytes(b"weights b")
    key_a, key_b = model_hash(model_a), model_hash(model_b)
    assert key_a != key_b and key_a == model_hash(model_a)
    pred = _crafted([[0.7, 0.2, 0.1], [0.2, 0.3, 0.5]], size=6)
    cache = PredictionCache(tmp_path, key_a, memory_items=1)
    cache.put("img 1/x", pred)
    cache.put("other", pred)  # pushes the first out of memory
    again = cache.get("img 1/x")
    assert again is not None and cache.path("img 1/x").parent == cache.folder
    np.testing.assert_array_equal(again.labels, pred.labels)
    np.testing.assert_allclose(from_bytes(again.max_prob), pred.max_prob, atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(from_bytes(again.entropy), pred.entropy, atol=0.5 / 255 + 1e-6)
    assert again.num_classes == 3
    # views from the 8-bit maps match views from the float maps to within one step
    for kind in ("max_prob", "entropy"):
        fast = uncertainty_bytes(again, kind).astype(int)
        exact = uncertainty_map(pred, kind) * 255
        assert np.abs(fast - exact).max() <= 2.0
    assert PredictionCache(tmp_path, key_b).get("other") is None
    assert PredictionCache(tmp_path, key_a).scores() == {
        "img 1/x": pred.score(),
        "other": pred.score(),
    }
    assert drop_other_models(tmp_path, keep=key_b) == 1
    assert PredictionCache(tmp_path, key_a).get("other") is None


def test_effort_counts_exactly_the_changed_pixels(tmp_path: Path, camvid_pair: tuple[np.ndarray, ClassTable]) -> None:
    truth, classes = camvid_pair
    unlabeled = classes.unlabeled_id
    tracker = EffortTracker(tmp_path, unlabeled)
    blank = np.full(truth.shape, unlabeled, np.uint8)
    prelabel = _camvid_prediction(truth)
    tracker.model_wrote("a", blank, prelabel)
    assert "a" not in tracker.entries  # nobody has looked at the pre-label yet
    entry = tracker.record("a", prelabel)
    assert entry.source == "model" and entry.changed == 0
    # the user fixes a 20x30 block and then undoes part of it by hand again
    fixed = prelabel.copy()
    fixed[100:120, 200:230] = (prelabel[100:120, 200:230] + 1) % 11
    entry = tracker.record("a", fixed)
    assert entry.changed == 600
    fixed[100:110, 200:230] = prelabel[100:110, 200:230]
    assert tracker.record("a", fixed).changed == 300
    # a second model write (accept a region) keeps the hand work done before it
    accepted = fixed.copy()
    accepted[0:5, 0:8] = 3
    tracker.model_wrote("a", fixed, accepted)
    edited = accepted.copy()
    edited[300, 0:4] = (accepted[300, 0:4] + 1) % 11
    entry = tracker.record("a", edited)
    assert entry.changed == 300 + 4
    assert entry.labelled == int((edited != unlabeled).sum())
    # scratch image: every labelled pixel is hand work
    scratch = blank.copy()
    scratch[:50] = 2
    assert tracker.record("b", scratch).hand_pixels == 50 * truth.shape[1]
    summary = tracker.summary()
    assert (summary.model_images, summary.scratch_images) == (1, 1)
    assert summary.hand_pixels == 304 + 50 * truth.shape[1]
    assert summary.saved_pixels == entry.labelled - 304
    # it persists across restarts
    reopened = EffortTracker(tmp_path, unlabeled)
    assert reopened.entries == tracker.entries
    edited[301, 0] = (edited[301, 0] + 1) % 11
    assert reopened.record("a", edited).changed == 305


def test_effort_baseline_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A baseline write that fails at the rename leaves the previous baseline and no stray file."""
    tracker = EffortTracker(tmp_path, unlabeled_id=255)
    first = np.arange(30, dtype=np.uint8).reshape(5, 6)
    tracker.model_wrote("a", np.full((5, 6), 255, np.uint8), first)
    np.testing.assert_array_equal(tracker.baseline("a"), first)
    before = sorted(p.name for p in tracker.folder.iterdir())

    def refuse(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", refuse)
    with pytest.raises(OSError):  # the write fails (core/atomic may word it as it likes)
        tracker.model_wrote("a", first, first + 1)
    monkeypatch.undo()
    np.testing.assert_array_equal(tracker.baseline("a"), first)
    assert sorted(p.name for p in tracker.folder.iterdir()) == before
