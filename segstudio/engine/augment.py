"""Augmentation presets (albumentations), applied alike to an image and its mask.

Masks arrive already remapped to model ids (ignore = 255), so every geometric transform
fills new mask pixels with 255 and interpolates masks nearest-neighbour; colour transforms
touch the image only. Every preset ends with pad-if-needed + random crop to the crop size.
"""

from __future__ import annotations

import os

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


def train_transform(preset: str, crop: tuple[int, int]) -> A.Compose:
    """Augment, then pad (image 0, mask ignore) and take a random crop of `crop` (h, w)."""
    height, width = crop
    return A.Compose(
        [
            *preset_transforms(preset),
            A.PadIfNeeded(min_height=height, min_width=width, border_mode=cv2.BORDER_CONSTANT,
                          fill=0, fill_mask=IGNORE_INDEX),
            A.RandomCrop(height=height, width=width),
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
    image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    if mask is not None:
        mask = cv2.copyMakeBorder(mask, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=IGNORE_INDEX)
    return image, mask
