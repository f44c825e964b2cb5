"""How unsure a prediction is, from its class probabilities (C, H, W); pure numpy.

Per pixel: the top probability, the entropy, and the margin between the two best classes.
Per image: mean entropy and the share of low-margin pixels, which the review queue sorts by
(the images the model is least sure of are the ones most worth correcting by hand).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOW_MARGIN = 0.1
_EPS = 1e-12


def _check(probs: np.ndarray) -> np.ndarray:
    if probs.ndim != 3 or probs.shape[0] < 1:
        raise ValueError(f"probabilities must be (C, H, W) with C >= 1, got shape {probs.shape}")
    return probs.astype(np.float32, copy=False)


def max_probability(probs: np.ndarray) -> np.ndarray:
    """(H, W) probability of the winning class."""
    return _check(probs).max(axis=0)


def entropy(probs: np.ndarray, normalized: bool = False) -> np.ndarray:
    """(H, W) Shannon entropy in nats; with `normalized`, divided by log(C) into 0..1."""
    p = _check(probs)
    values = -(p * np.log(np.clip(p, _EPS, 1.0))).sum(axis=0)
    if normalized:
        classes = p.shape[0]
        values = values / np.log(classes) if classes > 1 else np.zeros_like(values)
    return values.astype(np.float32)


def margin(probs: np.ndarray) -> np.ndarray:
    """(H, W) top-1 minus top-2 probability (1 for a single class)."""
    p = _check(probs)
    if p.shape[0] == 1:
        return np.ones(p.shape[1:], dtype=np.float32)
    top2 = np.partition(p, p.shape[0] - 2, axis=0)[-2:]
    return (top2[1] - top2[0]).astype(np.float32)


@dataclass(frozen=True)
class ImageUncertainty:
    """Summary of one image's prediction; larger `mean_entropy` / `low_margin_share` = less sure."""

    mean_entropy: float
    low_margin_share: float
    mean_max_probability: float

    def to_dict(self) -> dict[str, float]:
        return {
            "mean_entropy": self.mean_entropy,
            "low_margin_share": self.low_margin_share,
            "mean_max_probability": self.mean_max_probability,
        }


def image_uncertainty(probs: np.ndarray, low_margin: float = LOW_MARGIN,
                      valid: np.ndarray | None = None) -> ImageUncertainty:
    """Mean normalised entropy, share of pixels with margin < `low_margin`, mean top prob.

    `valid` (H, W bool) restricts the summary to some pixels (e.g. not padding).
    """
    ent = entropy(probs, normalized=True)
    mar = margin(probs)
    top = max_probability(probs)
    if valid is not None:
        ent, mar, top = ent[valid], mar[valid], top[valid]
    if ent.size == 0:
        return ImageUncertainty(0.0, 0.0, 1.0)
    return ImageUncertainty(
        mean_entropy=float(ent.mean()),
        low_margin_share=float((mar < low_margin).mean()),
        mean_max_probability=float(top.mean()),
    )
