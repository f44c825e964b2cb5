"""Augmentation presets (albumentations), applied alike to an image and its mask.

Masks arrive already remapped to model ids (ignore = 255), so every geometric transform
fills new mask pixels with 255 and interpolates masks nearest-neighbour; colour transforms
touch the image only. Every preset ends with pad-if-needed + random crop to the crop size
(optionally class-aware: RareClassCrop puts a share of crops around rare-class pixels).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check at import

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from segstudio.core.errors import TrainingError  # noqa: E402
from segstudio.engine.config import PRESETS  # noqa: E402
from segstudio.engine.metrics import IGNORE_INDEX  # noqa: E402


def _affine(scale: tuple[float, float], rotate: float, p: float) -> A.BasicTransform:
    return A.Affine(
        scale=scale, rotate=(-rotate, rotate), interpolation=cv2.INTER_LINEAR,
        mask_interpolation=cv2.INTER_NEAREST, border_mode=cv2.BORDER_CONSTANT,
        fill=0, fill_mask=IGNORE_INDEX, p=p,
    )


def preset_transforms(preset: str) -> list[A.BasicTransform]:
    """The augmenting part of a preset, before the final pad and crop."""
    if preset == "none":
        return []
    if preset == "light":
        return [A.HorizontalFlip(p=0.5)]
    if preset == "standard":
        return [
            A.HorizontalFlip(p=0.5),
            _affine((0.75, 1.5), 10.0, p=0.7),
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5),
        ]
    if preset == "strong":
        return [
            A.HorizontalFlip(p=0.5),
            _affine((0.5, 2.0), 20.0, p=0.8),
            A.ColorJitter(brightness=0.35, contrast=0.35, saturation=0.35, hue=0.05, p=0.8),
            A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=(3, 7))], p=0.3),
            A.GaussNoise(std_range=(0.02, 0.06), p=0.3),
        ]
    raise TrainingError(f"unknown augmentation preset '{preset}'; use one of {', '.join(PRESETS)}")


def inverse_frequency(pixel_counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Per model class id: 1 / (its share of the labelled training pixels); 0 for a class
    with no pixels (never drawn). Counts are computed once, e.g. ImageStore.pixel_counts."""
    counts = np.asarray(pixel_counts, dtype=np.float64)[:IGNORE_INDEX]
    total = counts.sum()
    weights = np.zeros(IGNORE_INDEX, dtype=np.float64)
    if total > 0:
        present = counts > 0
        weights[: counts.size][present] = total / counts[present]
    return weights


class RareClassCrop(A.RandomCrop):
    """A random crop that, with probability `rare_p`, is placed around a pixel of a class
    drawn with weight `class_weights[c]` (inverse pixel frequency) among the classes in view.

    It is the pipeline's last step, so it sees the mask after flips and affine warps: the
    chosen pixel is inside the crop, at a random place (a crop always centred on it would
    teach the model that rare things sit in the middle). Otherwise, or when no weighted
    class is in view, it is RandomCrop. Draws come from the transform's own generators, so
    Compose.set_random_seed and the loader's worker seeding make it reproducible.
    """

    class InitSchema(A.BasicTransform.InitSchema):  # albumentations checks __init__ against it
        height: int
        width: int
        class_weights: Any
        rare_p: float

    def __init__(self, height: int, width: int, class_weights: Sequence[float] | np.ndarray,
                 rare_p: float, p: float = 1.0) -> None:
        super().__init__(height=height, width=width, p=p)
        weights = np.zeros(IGNORE_INDEX, dtype=np.float64)
        given = np.asarray(class_weights, dtype=np.float64)[:IGNORE_INDEX]
        weights[: given.size] = np.clip(given, 0.0, None)
        self.class_weights = weights
        self.rare_p = float(rare_p)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        if self.rare_p <= 0.0 or self.py_random.random() >= self.rare_p:
            return super().get_params_dependent_on_data(params, data)
        mask = np.asarray(data["mask"])
        centre = self.rare_pixel(mask)
        if centre is None:
            return super().get_params_dependent_on_data(params, data)
        return {"crop_coords": self.window(mask.shape[:2], centre), "pad_params": None}

    def rare_pixel(self, mask: np.ndarray) -> tuple[int, int] | None:
        """(y, x) of a pixel of a weighted class drawn by weight, or None when none is in view."""
        held = np.bincount(mask.ravel(), minlength=256)[:IGNORE_INDEX] > 0
        weights = np.where(held, self.class_weights, 0.0)
        total = weights.sum()
        if total <= 0:
            return None
        rng = self.random_generator
        class_id = int(rng.choice(IGNORE_INDEX, p=weights / total))
        where = np.flatnonzero(mask.ravel() == class_id)
        flat = int(where[rng.integers(where.size)])
        return divmod(flat, mask.shape[1])

    def window(self, shape: tuple[int, int], centre: tuple[int, int]) -> tuple[int, int, int, int]:
        """(x_min, y_min, x_max, y_max) of a crop inside `shape` that holds `centre`, its
        offset uniform among the crops that do."""
        starts = []
        for extent, size, at in ((shape[0], self.height, centre[0]), (shape[1], self.width, centre[1])):
            if size > extent:
                raise ValueError(f"crop {size} exceeds the image {extent}; pad first (PadIfNeeded)")
            low, high = max(0, at - size + 1), min(at, extent - size)
            starts.append(int(self.random_generator.integers(low, high + 1)))
        y0, x0 = starts
        return (x0, y0, x0 + self.width, y0 + self.height)


def geometric_only(transforms: list[A.BasicTransform]) -> list[A.BasicTransform]:
    """The preset without its colour transforms (jitter, blur, noise): those assume 8-bit RGB
    photos; raw bands (16-bit, float, any count) are flipped and warped only."""
    return [t for t in transforms if isinstance(t, (A.HorizontalFlip, A.Affine))]


def train_transform(preset: str, crop: tuple[int, int], rare_crop_p: float = 0.0,
                    class_weights: Sequence[float] | np.ndarray | None = None,
                    photo: bool = True) -> A.Compose:
    """Augment, then pad (image 0, mask ignore) and take a random crop of `crop` (h, w).

    With `rare_crop_p` > 0, that share of crops is placed around a pixel of a class drawn
    by `class_weights` (see RareClassCrop; `inverse_frequency` makes them); 0 keeps the
    plain random crop, draw for draw.
    """
    height, width = crop
    if not 0.0 <= rare_crop_p <= 1.0:
        raise TrainingError(f"rare_crop_p must lie between 0 and 1, got {rare_crop_p}")
    final: A.BasicTransform = A.RandomCrop(height=height, width=width)
    if rare_crop_p > 0.0:
        if class_weights is None:
            raise ValueError("rare_crop_p > 0 needs class_weights (inverse_frequency of the training masks)")
        final = RareClassCrop(height, width, class_weights, rare_crop_p)
    augment = preset_transforms(preset)
    return A.Compose(
        [
            *(augment if photo else geometric_only(augment)),
            A.PadIfNeeded(min_height=height, min_width=width, border_mode=cv2.BORDER_CONSTANT,
                          fill=0, fill_mask=IGNORE_INDEX),
            final,
        ]
    )


def pad_to_multiple(image: np.ndarray, mask: np.ndarray | None, divisor: int
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """Pad bottom/right to the next multiple of `divisor`: image with 0, mask with ignore.

    Bottom/right only, so a prediction is cropped back with [:h, :w].
    """
    height, width = image.shape[:2]
    pad_h = (-height) % divisor
    pad_w = (-width) % divisor
    if pad_h == 0 and pad_w == 0:
        return image, mask
    single = image.ndim == 3 and image.shape[2] == 1
    image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    if single and image.ndim == 2:  # OpenCV drops a single band's axis
        image = image[:, :, None]
    if mask is not None:
        mask = cv2.copyMakeBorder(mask, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=IGNORE_INDEX)
    return image, mask
