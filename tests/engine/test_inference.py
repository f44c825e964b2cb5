"""Inference pipeline: normalisation, padding, tiling with blending, flip TTA, class-id mapping,
batches, a real model on a CamVid frame, and the uncertainty helpers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from segstudio.core.classes import ClassDef, ClassTable
from segstudio.engine.inference import Predictor, normalize_image, softmax
from segstudio.engine.modelfile import ModelConfig
from segstudio.engine.onnx_runtime import onnx_session_options, physical_cores
from segstudio.engine.uncertainty import entropy, image_uncertainty, margin, max_probability

sys.path.insert(0, str(Path(__file__).resolve().parent))  # model_fixtures, any import mode
from model_fixtures import camvid_classes, camvid_image, make_model_file


class PixelModel(nn.Module):
    """Per-pixel logits (1x1 conv): its output at a pixel depends on that pixel only, so
    tiled, padded and flipped runs must give exactly the whole-image answer."""

    def __init__(self, classes: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * 3


class SkewedModel(nn.Module):
    """A 3x3 convolution with a left-right asymmetric kernel: flipping changes its answer."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, classes, 3, padding=1)
        with torch.no_grad():
            self.conv.weight[..., 0] += 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _config(classes: ClassTable | None = None) -> ModelConfig:
    return ModelConfig("unet", "resnet18", classes or camvid_classes())


def _random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_normalisation_is_rgb_over_255_minus_mean_over_std() -> None:
    config = ModelConfig("unet", "resnet18", camvid_classes(), mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 0.2))
    image = _random_image(5, 7)
    chw = normalize_image(image, config)
    assert chw.shape == (3, 5, 7) and chw.dtype == np.float32
    expected = (image[2, 3, 1] / 255.0 - 0.2) / 0.25
    assert chw[1, 2, 3] == pytest.approx(expected, abs=1e-6)
    gray = normalize_image(image[..., 0], config)  # grey images are spread over RGB
    assert gray.shape == (3, 5, 7)
    assert gray[2, 1, 1] == pytest.approx((image[1, 1, 0] / 255.0 - 0.3) / 0.2, abs=1e-6)


@pytest.mark.parametrize("tile", [64, 96])
def test_tiled_prediction_equals_the_whole_image_for_a_pixelwise_model(tile: int) -> None:
    config = _config()
    model = PixelModel(config.num_classes)
    image = _random_image(150, 230)  # not multiples of 32: padding on both axes
    whole = Predictor(model, config, tile=0).predict(image)
    tiled_predictor = Predictor(model, config, tile=tile, overlap=0.25)
    assert tiled_predictor._needs_tiling(150, 230)
    tiled = tiled_predictor.predict(image)
    assert whole.probabilities.shape == tiled.probabilities.shape == (11, 150, 230)
    np.testing.assert_allclose(tiled.probabilities, whole.probabilities, atol=1e-5)
    assert np.array_equal(tiled.mask, whole.mask)
    np.testing.assert_allclose(whole.probabilities.sum(axis=0), 1.0, atol=1e-5)


def test_flip_tta_averages_the_flipped_run() -> None:
    config = _config()
    image = _random_image(64, 96)
    pixel = PixelModel(config.num_classes)
    np.testing.assert_allclose(Predictor(pixel, config, tile=0, tta=True).predict(image).probabilities,
                               Predictor(pixel, config, tile=0).predict(image).probabilities, atol=1e-6)
    skewed = SkewedModel(config.num_classes).eval()
    plain = Predictor(skewed, config, tile=0).predict(image).probabilities
    flipped = Predictor(skewed, config, tile=0).predict(np.ascontiguousarray(image[:, ::-1])).probabilities
    tta = Predictor(skewed, config, tile=0, tta=True).predict(image).probabilities
    np.testing.assert_allclose(tta, (plain + flipped[..., ::-1]) / 2, atol=1e-5)
    assert np.abs(tta - plain).max() > 1e-3  # the flip really changed something


def test_mask_holds_project_class_ids_not_channel_indices() -> None:
    classes = ClassTable((ClassDef(7, "car", (255, 0, 0)), ClassDef(3, "road", (0, 255, 0)),
                          ClassDef(255, "void", (0, 0, 0), ignore=True)))
    config = _config(classes)
    model = PixelModel(2)
    with torch.no_grad():
        model.conv.weight.zero_()
        model.conv.bias.copy_(torch.tensor([0.0, 1.0]))  # channel 1 (= class id 3) wins everywhere
    result = Predictor(model, config).predict(_random_image(40, 50))
    assert result.mask.dtype == np.uint8 and np.all(result.mask == 3)
    model.conv.bias.data = torch.tensor([1.0, 0.0])
    assert np.all(Predictor(model, config).predict(_random_image(40, 50)).mask == 7)


def test_batch_of_mixed_sizes_equals_single_predictions() -> None:
    config = _config()
    model = SkewedModel(config.num_classes).eval()
    images = [_random_image(64, 96, 1), _random_image(50, 70, 2), _random_image(64, 96, 3)]
    predictor = Predictor(model, config, tile=0)
    batch = predictor.predict_batch(images)
    for image, result in zip(images, batch):
        single = predictor.predict(image)
        assert result.mask.shape == image.shape[:2]
        np.testing.assert_allclose(result.probabilities, single.probabilities, atol=1e-5)


def test_real_model_on_a_camvid_frame(tmp_path: Path) -> None:
    path, image = camvid_image("val", 0)
    assert image.shape == (360, 480, 3)
    folder = make_model_file(tmp_path / "unet", arch="unet", encoder="resnet18", input_size=(352, 480))
    predictor = Predictor.from_path(folder, tile=None)  # default: whole image, tiles of 1024 past the budget
    assert predictor.tile == 1024 and not predictor._needs_tiling(360, 480)
    result = predictor.predict_file(path)
    assert result.probabilities.shape == (11, 360, 480) and result.probabilities.dtype == np.float32
    assert result.mask.shape == (360, 480)
    np.testing.assert_allclose(result.probabilities.sum(axis=0), 1.0, atol=1e-4)
    assert set(np.unique(result.mask)) <= set(range(11))  # never the ignore id 11
    tiled = Predictor.from_path(folder, tile=256).predict(image)  # the tiling path: 6 tiles
    assert tiled.mask.shape == (360, 480) and tiled.probabilities.shape == (11, 360, 480)
    # a conv net is not pixelwise, but blended tiles stay close to the whole-image answer
    assert (tiled.mask == result.mask).mean() > 0.5


def test_onnx_sessions_use_all_cores_without_spinning() -> None:
    options = onnx_session_options()
    assert options.intra_op_num_threads == physical_cores() <= (os.cpu_count() or 1)
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert onnx_session_options(3).intra_op_num_threads == 3


def test_uncertainty_helpers() -> None:
    sure = np.zeros((4, 2, 3), dtype=np.float32)
    sure[2] = 1.0
    unsure = np.full((4, 2, 3), 0.25, dtype=np.float32)
    assert np.allclose(max_probability(sure), 1.0) and np.allclose(max_probability(unsure), 0.25)
    assert np.allclose(entropy(sure), 0.0, atol=1e-6)
    assert np.allclose(entropy(unsure), np.log(4), atol=1e-6)
    assert np.allclose(entropy(unsure, normalized=True), 1.0, atol=1e-6)
    assert np.allclose(margin(sure), 1.0) and np.allclose(margin(unsure), 0.0)
    mixed = sure.copy()
    mixed[:, 0, :] = np.array([0.45, 0.4, 0.1, 0.05])[:, None]  # top-2 margin 0.05 on one row
    summary = image_uncertainty(mixed, low_margin=0.1)
    assert summary.low_margin_share == pytest.approx(0.5)
    assert 0 < summary.mean_entropy < 1 and summary.mean_max_probability == pytest.approx((0.45 + 1) / 2)
    probs = softmax(np.random.default_rng(0).normal(size=(2, 5, 4, 4)).astype(np.float32))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
