"""Values passed between the encoder, the cache and the decoder."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Geometry:
    """How an image maps into a model's input frame.

    height, width: the image; frame_height, frame_width: the part of the model's input the
    image fills (SAM 1: resized longest side 1024; SAM 2: 1024x1024 stretched; EfficientSAM:
    the image itself)."""

    height: int
    width: int
    frame_height: int
    frame_width: int


@dataclass(frozen=True)
class Embedding:
    """An image's encoder outputs (by the decoder's input names), for one model."""

    family: str
    geometry: Geometry
    arrays: dict[str, np.ndarray] = field(hash=False, compare=False)

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays.values()))


@dataclass(frozen=True)
class Candidate:
    """One mask the decoder proposed: its output index as the decoder numbers them (0 = the
    single-mask answer in SAM 1), predicted IoU, and logits (low resolution, or full size
    for EfficientSAM); `low_res` is what refinement feeds back (None where not taken)."""

    output_index: int
    iou: float
    logits: np.ndarray = field(repr=False, compare=False)
    low_res: np.ndarray | None = field(default=None, repr=False, compare=False)
