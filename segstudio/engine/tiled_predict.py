"""Prediction of gigapixel images with bounded memory: block by block into a chunk store.

A 20,000 x 20,000 slide is 1.2 GB of RGB pixels and, with twelve classes, 19 GB of float32
scores: `infer` on the whole of it cannot work. Here the image is cut into blocks on the mask's
chunk grid (BLOCK pixels, a multiple of tiled_mask.CHUNK); each block is read from the file
with a MARGIN of context on every side (core/gigapixel.py decodes only the tiles under it),
predicted with the model's own settings (`infer`, so tiling, TTA and the ONNX backend are the
same as everywhere else), cropped back to the block and written as whole mask chunks
(TiledMaskStore.write_region). Memory follows one block, never the image.

The margin makes a block's edge pixels see the same context as its middle ones: a block
boundary then agrees with a whole-image run wherever the model's receptive field fits in it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from segstudio.core.errors import ModelError
from segstudio.core.gigapixel import GigapixelImage
from segstudio.core.region import Region
from segstudio.core.tiled_mask import CHUNK, TiledMaskStore
from segstudio.engine.inference import PredictorBase, band_pixels
from segstudio.engine.uncertainty import LOW_MARGIN, entropy, margin

# A U-Net (ResNet-34) forward over one block plus its margins (1,280 px square) peaks at
# about 0.75 GB of activations on the CPU; 2,048 px blocks needed 2.3 GB on top of torch.
BLOCK = 1024
MARGIN = 128


class PredictionCancelled(ModelError):
    """The caller asked to stop; the chunks written so far stay written."""


@dataclass
class TiledPrediction:
    """What a block-wise prediction wrote, with the uncertainty summary of the whole image."""

    shape: tuple[int, int]
    blocks: int
    chunks_written: int
    counts: np.ndarray  # pixels per class id (256 entries)
    mean_entropy: float
    low_margin_share: float


def blocks(height: int, width: int, block: int = BLOCK) -> Iterator[Region]:
    """The image's blocks, row by row, on the chunk grid (the last ones cut at the edge)."""
    if block <= 0 or block % CHUNK:
        raise ValueError(f"block {block} must be a positive multiple of the mask chunk {CHUNK}")
    for y in range(0, height, block):
        for x in range(0, width, block):
            yield Region(y, x, min(y + block, height), min(x + block, width))


def read_block(image: GigapixelImage, box: Region, predictor: PredictorBase) -> np.ndarray:
    """The pixels of `box` as the model reads them: its raw bands for a band model, else the
    8-bit RGB view through the image's display mapping (the same for every block, never
    stretched per block, so blocks meet without seams)."""
    config = predictor.config
    if config.channels:
        return band_pixels(image.read_raw(0, box.y0, box.y1, box.x0, box.x1), config)
    return image.read_region(0, box.y0, box.y1, box.x0, box.x1)


def predict_gigapixel(predictor: PredictorBase, image: GigapixelImage, store: TiledMaskStore, *,
                      block: int = BLOCK, margin_px: int = MARGIN,
                      label_map: Callable[[np.ndarray], np.ndarray] | None = None,
                      progress: Callable[[int, int], None] | None = None,
                      cancelled: Callable[[], bool] | None = None) -> TiledPrediction:
    """Predict `image` block by block into `store` (same shape); `label_map` may change the
    class ids before they are written (a pre-label keeps labelled pixels, say).
    `progress(done, total)` follows each block; `cancelled()` is asked before each one."""
    height, width = image.shape
    if store.shape != (height, width):
        raise ModelError(f"the mask store is {store.shape[1]}x{store.shape[0]} but the image is "
                         f"{width}x{height}")
    boxes = list(blocks(height, width, block))
    counts = np.zeros(256, dtype=np.int64)
    entropy_sum = 0.0
    low_margin = 0
    written = 0
    for done, box in enumerate(boxes):
        if cancelled is not None and cancelled():
            raise PredictionCancelled(f"prediction stopped after {done} of {len(boxes)} blocks; "
                                      "the blocks done so far are kept")
        outer = Region(box.y0 - margin_px, box.x0 - margin_px, box.y1 + margin_px,
                       box.x1 + margin_px).clip(height, width)
        pixels = read_block(image, outer, predictor)
        result = predictor.predict(pixels)
        inner = (slice(box.y0 - outer.y0, box.y1 - outer.y0), slice(box.x0 - outer.x0, box.x1 - outer.x0))
        labels = np.ascontiguousarray(result.mask[inner])
        probs = result.probabilities[(slice(None), *inner)]
        entropy_sum += float(entropy(probs, normalized=True).sum(dtype=np.float64))
        low_margin += int((margin(probs) < LOW_MARGIN).sum())
        del result, probs, pixels
        if label_map is not None:
            labels = label_map(labels)
        counts += np.bincount(labels.ravel(), minlength=256)
        written += store.write_region(box.y0, box.x0, labels)
        if progress is not None:
            progress(done + 1, len(boxes))
    pixels_total = max(1, height * width)
    return TiledPrediction((height, width), len(boxes), written, counts, entropy_sum / pixels_total,
                           low_margin / pixels_total)


def block_for(predictor: PredictorBase, budget_bytes: int = 1 << 30) -> int:
    """The largest block (chunk multiple, at most BLOCK) whose scores fit `budget_bytes`."""
    classes = max(1, len(predictor.config.output_class_ids))
    side = int(math.sqrt(budget_bytes / (4 * classes * 2))) - 2 * MARGIN
    return max(CHUNK, min(BLOCK, side // CHUNK * CHUNK))


__all__ = ["BLOCK", "MARGIN", "PredictionCancelled", "TiledPrediction", "block_for", "blocks",
           "predict_gigapixel", "read_block"]
