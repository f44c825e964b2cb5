"""Confusion-matrix metrics against an independent per-class numpy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from segstudio.engine.metrics import IGNORE_INDEX, ConfusionMatrix, metrics_from_confusion


def reference(pred: np.ndarray, truth: np.ndarray, k: int) -> dict[str, object]:
    """Per-class set counting with boolean masks: no confusion matrix involved."""
    valid = truth != IGNORE_INDEX
    ious, dices, accs = [], [], []
    for c in range(k):
        p = (pred == c) & valid
        t = (truth == c) & valid
        inter = np.logical_and(p, t).sum()
        union = np.logical_or(p, t).sum()
        ious.append(inter / union if union else None)
        dices.append(2 * inter / (p.sum() + t.sum()) if union else None)
        accs.append(inter / t.sum() if t.sum() else None)

    def mean(values: list[float | None]) -> float | None:
        kept = [v for v in values if v is not None]
        return sum(kept) / len(kept) if kept else None

    correct = ((pred == truth) & valid).sum()
    return {
        "iou": ious, "dice": dices, "acc": accs, "miou": mean(ious), "mean_dice": mean(dices),
        "pixel_accuracy": correct / valid.sum() if valid.sum() else None, "mean_class_accuracy": mean(accs),
    }


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= 1e-9


def accumulate(pred: np.ndarray, truth: np.ndarray, k: int, batches: int = 1) -> ConfusionMatrix:
    cm = ConfusionMatrix(k)
    for p, t in zip(np.array_split(pred, batches), np.array_split(truth, batches)):
        cm.update(torch.from_numpy(p), torch.from_numpy(t))
    return cm


@pytest.mark.parametrize("seed", range(6))
def test_random_maps_match_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 12))
    truth = rng.integers(0, k, size=(5, 37, 41)).astype(np.uint8)
    truth[rng.random(truth.shape) < 0.1] = IGNORE_INDEX
    # Mostly right predictions, like a model's, plus noise.
    pred = np.where(rng.random(truth.shape) < 0.6, truth % k, rng.integers(0, k, truth.shape)).astype(np.int64)
    pred[truth == IGNORE_INDEX] = rng.integers(0, k, int((truth == IGNORE_INDEX).sum()))
    if seed % 2:  # a class absent from truth and prediction: n/a, left out of the means
        absent = k - 1
        truth[truth == absent] = 0
        pred[pred == absent] = 0
    got = accumulate(pred, truth, k, batches=3).compute()
    ref = reference(pred, truth, k)
    for name in ("miou", "mean_dice", "pixel_accuracy", "mean_class_accuracy"):
        assert close(getattr(got, name), ref[name]), name
    assert all(close(a, b) for a, b in zip(got.iou, ref["iou"]))
    assert all(close(a, b) for a, b in zip(got.dice, ref["dice"]))
    assert all(close(a, b) for a, b in zip(got.class_accuracy, ref["acc"]))
    if seed % 2:
        assert got.iou[k - 1] is None and got.dice[k - 1] is None


def test_hand_computed_case() -> None:
    truth = np.array([[0, 0, 1, 1], [2, 2, IGNORE_INDEX, 1]], dtype=np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 3]], dtype=np.int64)
    m = accumulate(pred, truth, 5).compute()
    # class 0: tp 1, fp 1 (pixel 5), fn 1 (pixel 1) -> IoU 1/3, Dice 2/4
    # class 1: tp 2, fp 1, fn 1 -> IoU 2/4, Dice 4/6; class 2: tp 1, fp 0, fn 1 -> 1/2, 2/3
    # class 3: tp 0, fp 1, fn 0 -> IoU 0; class 4: absent everywhere -> None
    assert m.iou[:4] == pytest.approx((1 / 3, 0.5, 0.5, 0.0), abs=1e-12) and m.iou[4] is None
    assert m.dice[:4] == pytest.approx((0.5, 4 / 6, 2 / 3, 0.0), abs=1e-12) and m.dice[4] is None
    assert m.miou == pytest.approx((1 / 3 + 0.5 + 0.5 + 0.0) / 4, abs=1e-12)
    assert m.pixel_accuracy == pytest.approx(4 / 7, abs=1e-12)  # ignore pixel left out
    # class 3 has no true pixels: its accuracy is undefined, not 0
    assert m.class_accuracy[3] is None
    assert m.mean_class_accuracy == pytest.approx((0.5 + 2 / 3 + 0.5) / 3, abs=1e-12)
    assert m.pixels == 7


def test_ignore_pixels_never_count_whatever_is_predicted() -> None:
    truth = np.full((8, 8), IGNORE_INDEX, dtype=np.uint8)
    truth[:4] = 1
    a = accumulate(np.ones((8, 8), np.int64), truth, 3).numpy()
    b = accumulate(np.where(np.arange(64).reshape(8, 8) < 32, 1, 2), truth, 3).numpy()
    assert np.array_equal(a, b)
    assert a.sum() == 32


def test_nothing_valid_gives_none_not_nan() -> None:
    m = accumulate(np.zeros((4, 4), np.int64), np.full((4, 4), IGNORE_INDEX, np.uint8), 3).compute()
    assert m.miou is None and m.pixel_accuracy is None and m.mean_dice is None
    d = m.to_dict(["a", "b", "c"])
    assert d["per_class"]["a"] == {"iou": None, "dice": None, "accuracy": None}
    assert not any(isinstance(v, float) and math.isnan(v) for v in d.values())


def test_split_accumulation_equals_whole() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 4, (9, 16, 16)).astype(np.uint8)
    pred = rng.integers(0, 4, (9, 16, 16))
    whole = accumulate(pred, truth, 4, 1).numpy()
    assert np.array_equal(whole, accumulate(pred, truth, 4, 9).numpy())
    assert np.array_equal(metrics_from_confusion(whole).iou, accumulate(pred, truth, 4, 4).compute().iou)


def test_update_logits_uses_argmax() -> None:
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 2] = 1.0
    cm = ConfusionMatrix(3)
    cm.update_logits(logits, torch.full((1, 2, 2), 2))
    assert cm.compute().iou == (None, None, 1.0)
