"""Our own mask post-processing from low-resolution logits (never the decoder's `masks`
output: decoders exported with segment-anything 1.0 froze the example's aspect ratio)."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from segstudio.assist.embedding import Geometry

SAM_SIDE = 1024
LOW_RES_SIDE = 256
SAM_MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
SAM_STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def longest_side_geometry(height: int, width: int, side: int = SAM_SIDE) -> Geometry:
    """SAM 1's resize: scale so the longest side is `side`, rounding half up."""
    scale = side / max(height, width)
    return Geometry(height, width, int(height * scale + 0.5), int(width * scale + 0.5))


def resize_rgb(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of an HxWx3 uint8 image through PIL, as SAM 1's reference does."""
    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def sam1_input(image: np.ndarray, geometry: Geometry) -> np.ndarray:
    """[1,3,1024,1024] float32: resized, normalised with SAM's mean/std, zero-padded
    bottom/right."""
    resized = resize_rgb(image, geometry.frame_height, geometry.frame_width).astype(np.float32)
    normalised = (resized - SAM_MEAN) / SAM_STD
    padded = np.zeros((SAM_SIDE, SAM_SIDE, 3), dtype=np.float32)
    padded[: geometry.frame_height, : geometry.frame_width] = normalised
    return padded.transpose(2, 0, 1)[None]


def sam2_input(image: np.ndarray) -> np.ndarray:
    """[1,3,1024,1024] float32: stretched to 1024x1024, /255, ImageNet mean/std."""
    resized = cv2.resize(image, (SAM_SIDE, SAM_SIDE), interpolation=cv2.INTER_LINEAR)
    normalised = (resized.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return normalised.transpose(2, 0, 1)[None].astype(np.float32)


def _resize_logits(logits: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear with half-pixel centres, as torch's interpolate(align_corners=False)."""
    if logits.shape == (height, width):
        return logits
    return cv2.resize(logits.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def sam1_mask(low_res: np.ndarray, geometry: Geometry) -> np.ndarray:
    """256x256 logits over the padded 1024 square -> bool mask of the image's size."""
    full = _resize_logits(low_res, SAM_SIDE, SAM_SIDE)
    cropped = full[: geometry.frame_height, : geometry.frame_width]
    return _resize_logits(cropped, geometry.height, geometry.width) > 0.0


def stretched_mask(low_res: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Logits over the whole (stretched) image -> bool mask of the image's size (SAM 2)."""
    return _resize_logits(low_res, geometry.height, geometry.width) > 0.0
