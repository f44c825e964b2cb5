"""Class-aware crops (issue 10): rare classes land in far more crops; p = 0 is today's crop."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest

from segstudio.core.errors import TrainingError
from segstudio.engine.augment import (
    RareClassCrop,
    inverse_frequency,
    preset_transforms,
    train_transform,
)
from segstudio.engine.metrics import IGNORE_INDEX

HEIGHT, WIDTH = 120, 160
CROP = (32, 32)
RARE = 1
BLOCK = (slice(10, 13), slice(140, 143))  # 3x3 pixels of class 1 near the top-right corner


def _scene() -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[80:, :] = 2
    mask[100:, :20] = IGNORE_INDEX
    mask[BLOCK] = RARE
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    return image, mask


def _weights(mask: np.ndarray) -> np.ndarray:
    return inverse_frequency(np.bincount(mask.ravel(), minlength=256))


def _random_crop_hit_rate() -> float:
    """Exact share of 32x32 crop positions (uniform, inside the image) that hold the block."""
    def share(extent: int, size: int, first: int, last: int) -> float:
        starts = np.arange(extent - size + 1)
        return float(np.mean((starts <= last) & (starts + size - 1 >= first)))

    return (share(HEIGHT, CROP[0], BLOCK[0].start, BLOCK[0].stop - 1)
            * share(WIDTH, CROP[1], BLOCK[1].start, BLOCK[1].stop - 1))


def _hit_rate(transform: A.Compose, draws: int) -> float:
    image, mask = _scene()
    hits = 0
    for _ in range(draws):
        out = transform(image=image, mask=mask)
        assert out["mask"].shape == CROP and out["image"].shape == (*CROP, 3)
        hits += bool((out["mask"] == RARE).any())
    return hits / draws


def test_inverse_frequency_weights() -> None:
    counts = np.zeros(256, np.int64)
    counts[[0, 1, 2, IGNORE_INDEX]] = [600, 100, 300, 5000]  # ignore pixels are not counted
    weights = inverse_frequency(counts)
    assert weights.shape == (IGNORE_INDEX,)
    np.testing.assert_allclose(weights[:4], [1000 / 600, 1000 / 100, 1000 / 300, 0.0])
    assert not weights[3:].any()


def test_rare_crops_hold_the_rare_class_far_more_often() -> None:
    _, mask = _scene()
    exact = _random_crop_hit_rate()
    assert exact < 0.05
    plain = train_transform("none", CROP)
    plain.set_random_seed(0)
    assert _hit_rate(plain, 2000) == pytest.approx(exact, abs=0.02)
    always = train_transform("none", CROP, rare_crop_p=1.0, class_weights=_weights(mask))
    always.set_random_seed(0)
    # weight of the rare class: 1 / (9 / labelled) dwarfs the others, so nearly every draw picks it
    weights = _weights(mask)
    chosen = weights[RARE] / weights.sum()
    assert _hit_rate(always, 500) >= chosen - 0.02 > 0.95
    half = train_transform("none", CROP, rare_crop_p=0.5, class_weights=weights)
    half.set_random_seed(0)
    assert _hit_rate(half, 2000) == pytest.approx(0.5 * chosen + (1 - 0.5 * chosen) * exact, abs=0.04)


def test_rare_crops_survive_the_standard_augmentation() -> None:
    _, mask = _scene()
    rare = train_transform("standard", CROP, rare_crop_p=1.0, class_weights=_weights(mask))
    rare.set_random_seed(1)
    plain = train_transform("standard", CROP)
    plain.set_random_seed(1)
    # the warp sometimes pushes the corner block out of view; then no crop can hold it
    assert _hit_rate(rare, 400) > 10 * max(_hit_rate(plain, 400), 0.01)


def test_zero_probability_gives_exactly_todays_crops() -> None:
    image, mask = _scene()
    height, width = CROP
    today = A.Compose([
        *preset_transforms("standard"),
        A.PadIfNeeded(min_height=height, min_width=width, border_mode=cv2.BORDER_CONSTANT,
                      fill=0, fill_mask=IGNORE_INDEX),
        A.RandomCrop(height=height, width=width),
    ])
    zero = train_transform("standard", CROP, rare_crop_p=0.0, class_weights=_weights(mask))
    direct = A.Compose([RareClassCrop(height, width, _weights(mask), 0.0)])
    plain = A.Compose([A.RandomCrop(height=height, width=width)])
    for pipeline in (today, zero, direct, plain):
        pipeline.set_random_seed(7)
    for _ in range(30):
        a, b = today(image=image, mask=mask), zero(image=image, mask=mask)
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["mask"], b["mask"])
        c, d = direct(image=image, mask=mask), plain(image=image, mask=mask)
        np.testing.assert_array_equal(c["mask"], d["mask"])


def test_window_holds_the_pixel_at_every_place() -> None:
    crop = RareClassCrop(24, 40, np.ones(3), 1.0)
    crop.set_random_seed(5)
    rng = np.random.default_rng(0)
    places = set()
    for _ in range(2000):
        height, width = int(rng.integers(24, 90)), int(rng.integers(40, 90))
        y, x = int(rng.integers(height)), int(rng.integers(width))
        x0, y0, x1, y1 = crop.window((height, width), (y, x))
        assert (y1 - y0, x1 - x0) == (24, 40)
        assert 0 <= y0 <= y < y1 <= height and 0 <= x0 <= x < x1 <= width
        places.add((y - y0, x - x0))
    assert len(places) > 500  # not always centred: the pixel lands anywhere in the crop


def test_a_crop_without_weighted_classes_falls_back_to_random() -> None:
    image, mask = _scene()
    weights = np.zeros(IGNORE_INDEX)
    weights[7] = 1.0  # a class absent from the image
    fallback = A.Compose([RareClassCrop(*CROP, weights, 1.0)])
    fallback.set_random_seed(2)
    out = fallback(image=image, mask=mask)
    assert out["mask"].shape == CROP


def test_bad_settings_are_reported() -> None:
    with pytest.raises(TrainingError, match="between 0 and 1"):
        train_transform("none", CROP, rare_crop_p=1.5, class_weights=np.ones(3))
    with pytest.raises(ValueError, match="class_weights"):
        train_transform("none", CROP, rare_crop_p=0.2)


class _Store:
    """The one thing make_train_transform reads from an ImageStore: per-class pixel counts."""

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = mask

    def pixel_counts(self, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
        counts = np.bincount(self.mask.ravel(), minlength=256)[:num_classes]
        return counts, (counts > 0).astype(np.int64)


def test_the_rare_crops_option_reaches_the_training_crops() -> None:
    from segstudio.engine.config import TrainConfig, resolve_config
    from segstudio.engine.run_setup import make_train_transform

    image, mask = _scene()
    hits = {}
    for share in (0.0, 1.0):
        config = TrainConfig(augment="none", rare_crops=share)
        transform = make_train_transform(config, CROP, _Store(mask), num_classes=3)
        count = 0
        for seed in range(200):
            transform.set_random_seed(seed)
            out = transform(image=image, mask=mask)["mask"]
            count += int((out == RARE).any())
        hits[share] = count / 200
    assert hits[1.0] >= 0.95 and hits[0.0] < 0.1
    with pytest.raises(TrainingError, match="--rare-crops"):
        TrainConfig(rare_crops=1.5).validate()
    planned = resolve_config(TrainConfig(), "cpu", train_images=20)
    assert planned.rare_crops is not None and 0.0 <= planned.rare_crops <= 1.0
