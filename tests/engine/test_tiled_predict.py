"""Gigapixel prediction block by block: the same class ids as a whole-image run, written as
mask chunks, with memory that follows a block and never the image."""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from segstudio.core.gigapixel import GigapixelImage
from segstudio.core.region import Region
from segstudio.core.tiled_mask import TiledMaskStore
from segstudio.engine.inference import Predictor
from segstudio.engine.modelfile import ModelConfig
from segstudio.engine.tiled_predict import PredictionCancelled, blocks, predict_gigapixel

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from gigapixel_builders import expected, write_pyramid  # noqa: E402
from model_fixtures import camvid_classes  # noqa: E402


class ContextModel(nn.Module):
    """Two 5x5 convolutions: each output pixel sees a 9 x 9 neighbourhood, so a block edge
    is right only if the block was read with context around it."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.a = nn.Conv2d(3, 8, 5, padding=2)
        self.b = nn.Conv2d(8, classes, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x))) * 4


def predictor(tile: int = 0) -> Predictor:
    config = ModelConfig("unet", "resnet18", camvid_classes())
    return Predictor(ContextModel(config.num_classes), config, tile=tile)


def test_blocks_lie_on_the_chunk_grid_and_cover_the_image() -> None:
    boxes = list(blocks(2500, 1100, 1024))
    assert [b.y0 for b in boxes] == [0, 0, 1024, 1024, 2048, 2048]
    assert boxes[-1] == Region(2048, 1024, 2500, 1100)
    assert sum(b.area for b in boxes) == 2500 * 1100
    with pytest.raises(ValueError, match="multiple"):
        list(blocks(100, 100, 700))


def test_block_by_block_equals_the_whole_image_run(tmp_path: Path) -> None:
    path = write_pyramid(tmp_path / "slide.tif", 2600, 2300, tile=256)
    whole_pixels = expected(0, 256, 0, 2600, 0, 2300)
    model = predictor()
    whole = model.predict(whole_pixels).mask
    store = TiledMaskStore(tmp_path / "pred.zarr", (2600, 2300), fill=255)
    seen: list[tuple[int, int]] = []
    with GigapixelImage(path) as image:
        result = predict_gigapixel(model, image, store, block=1024, margin_px=32,
                                   progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (9, 9) and result.blocks == 9
    assert np.array_equal(store.read(), whole)  # every block edge included
    assert np.array_equal(result.counts[:256], np.bincount(whole.ravel(), minlength=256))
    probs = model.predict(whole_pixels).probabilities
    from segstudio.engine.uncertainty import entropy

    assert result.mean_entropy == pytest.approx(float(entropy(probs, normalized=True).mean()), rel=1e-4)


def test_without_context_the_block_edges_would_differ(tmp_path: Path) -> None:
    """The margin is what makes the edges right (this test fails if it is dropped)."""
    path = write_pyramid(tmp_path / "slide.tif", 1500, 1500, tile=256)
    model = predictor()
    whole = model.predict(expected(0, 256, 0, 1500, 0, 1500)).mask
    store = TiledMaskStore(tmp_path / "pred.zarr", (1500, 1500), fill=255)
    with GigapixelImage(path) as image:
        predict_gigapixel(model, image, store, block=512, margin_px=0)
    assert not np.array_equal(store.read(), whole)


def test_a_pre_label_map_and_cancel(tmp_path: Path) -> None:
    path = write_pyramid(tmp_path / "slide.tif", 1500, 1400, tile=256)
    model = predictor()
    store = TiledMaskStore(tmp_path / "pred.zarr", (1500, 1400), fill=255)
    calls = iter([False, False, True])
    with GigapixelImage(path) as image, pytest.raises(PredictionCancelled, match="after 2 of 9 blocks"):
        predict_gigapixel(model, image, store, block=512, label_map=lambda labels: np.full_like(labels, 7),
                          cancelled=lambda: next(calls))
    assert store.stored_keys() == [(0, 0), (0, 1)]  # what was done is kept, nothing more
    assert (store.read_region(Region(0, 0, 512, 1024)) == 7).all()


def test_memory_follows_a_block_not_the_image(tmp_path: Path) -> None:
    """A 6,000 x 5,000 image (90 MB of RGB, 1.3 GB of float32 scores for 11 classes): the
    prediction holds one 512 px block at a time (benchmarks/deep_imagery.py measures 20k)."""
    path = write_pyramid(tmp_path / "big.tif", 6_000, 5_000, tile=512)
    model = predictor(tile=0)
    store = TiledMaskStore(tmp_path / "pred.zarr", (6_000, 5_000), fill=255)
    tracemalloc.start()
    try:
        with GigapixelImage(path) as image:
            result = predict_gigapixel(model, image, store, block=512, margin_px=32)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.blocks == 12 * 10
    # the reader's decoded-tile cache (96 MB) plus one block; the whole image would need 1.4 GB
    assert peak < 250 * 2**20, f"peak {peak / 2**20:.0f} MB"
    box = Region(3000, 2000, 3300, 2400)  # a box away from the image's own border
    around = expected(0, 512, box.y0 - 8, box.y1 + 8, box.x0 - 8, box.x1 + 8)
    assert np.array_equal(store.read_region(box), model.predict(around).mask[8:-8, 8:-8])
