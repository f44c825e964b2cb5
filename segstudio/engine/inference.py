"""The one inference path: run a model on an image, whole or in blended tiles, optionally
flip-averaged, and map the result to class ids.

`infer(backend, image, settings)` is what `eval`, `predict`, the app's pre-label and review
queue and the exported-model runs all call; the trainer's validation runs the same forward
(`forward_logits`: normalise on the device, AMP) on batches of whole images. Images are
padded bottom/right with black (pixel 0, as in training) to the divisor, then run whole or
cut into overlapping tiles over that padded canvas, so a padded image gives the same answer
as the original. Backends: PyTorch (`TorchBackend`), ONNX Runtime (engine.onnx_runtime).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import numpy as np
import torch

from segstudio.core.errors import ModelError
from segstudio.core.imageio import read_image_raw, read_image_rgb, to_rgb8
from segstudio.engine.device import autocast_dtype
from segstudio.engine.inference_settings import DEFAULT_OVERLAP, DEFAULT_TILE, InferenceSettings
from segstudio.engine.modelfile import ModelConfig, load_model
from segstudio.engine.uncertainty import ImageUncertainty, image_uncertainty

__all__ = ["DEFAULT_OVERLAP", "DEFAULT_TILE", "Backend", "InferenceSettings", "Prediction", "Predictor",
           "TorchBackend", "TorchForward", "canvas_scores", "forward_logits", "infer", "load_predictor", "normalize_image",
           "read_for_model"]


class Backend(Protocol):
    """Runs a batch: (N, C, h, w) pixels (uint8, or float32 on the 0..255 scale) -> (N, K, h, w)
    float32 logits, normalising with its config's mean/std itself."""

    config: ModelConfig

    def forward(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class Prediction:
    """Scores (K, H, W) float32 over the model's classes and the class-id mask (H, W) uint8.

    Scores are logits for a plain whole-image run (the mask is their argmax: no softmax is
    spent when only masks are needed), else blended/averaged probabilities."""

    scores: np.ndarray
    mask: np.ndarray
    scores_are_probabilities: bool = True

    @cached_property
    def probabilities(self) -> np.ndarray:
        if self.scores_are_probabilities:
            return self.scores
        return softmax(self.scores[None].copy())[0]

    def uncertainty(self) -> ImageUncertainty:
        return image_uncertainty(self.probabilities)


# -- pixels -----------------------------------------------------------------------------------
def model_pixels(image: np.ndarray, config: ModelConfig) -> np.ndarray:
    """(H, W, C) pixels as the model takes them: uint8 RGB/grey, or float32 on the 0..255 scale
    for other channel counts stored deeper than 8 bits; for a model over raw bands
    (`config.channels`), those bands as float32 raw values."""
    if config.channels:
        return band_pixels(image, config)
    if config.in_channels == 3:
        return to_rgb8(image)
    if config.in_channels == 1:
        if image.ndim == 3:
            image = to_rgb8(image).mean(axis=2).round().astype(np.uint8)
        elif image.dtype != np.uint8:
            image = to_rgb8(image)[..., 0]
        return image[..., None]
    if image.ndim != 3 or image.shape[2] != config.in_channels:
        raise ModelError(
            f"the model takes {config.in_channels}-channel images; this one has shape {image.shape}"
        )
    if image.dtype == np.uint8:
        return image
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float32) * np.float32(255.0 / np.iinfo(image.dtype).max)
    return image.astype(np.float32) * np.float32(255.0)  # float images are taken as 0..1


def band_pixels(image: np.ndarray, config: ModelConfig) -> np.ndarray:
    """The model's bands of a raw image (all its bands, or already just the model's)."""
    bands = image[:, :, None] if image.ndim == 2 else image
    if bands.shape[2] != config.in_channels:
        if bands.shape[2] <= max(config.channels):
            raise ModelError(f"the model reads bands {[c + 1 for c in config.channels]} "
                             f"({', '.join(config.channel_names)}); this image has {bands.shape[2]}")
        bands = bands[:, :, list(config.channels)]
    return np.ascontiguousarray(bands, dtype=np.float32)


def read_for_model(path: str | os.PathLike[str], config: ModelConfig) -> np.ndarray:
    """An image file as `config`'s model reads it: raw bands, or the 8-bit RGB photo."""
    return read_image_raw(path) if config.channels else read_image_rgb(path)


def normalize_image(image: np.ndarray, config: ModelConfig) -> np.ndarray:
    """An image as the model's (C, H, W) float32 input: pixel/255, minus mean, over std."""
    data = model_pixels(image, config).astype(np.float32) / np.float32(255.0)
    data = (data - np.asarray(config.mean, dtype=np.float32)) / np.asarray(config.std, dtype=np.float32)
    return np.ascontiguousarray(data.transpose(2, 0, 1))


def _round_up(value: int, divisor: int) -> int:
    return int(math.ceil(value / divisor) * divisor)


def padded_canvas(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """(C, height, width) copy of HWC `pixels`, black (0) below and right, as training pads."""
    canvas = np.zeros((pixels.shape[2], height, width), dtype=pixels.dtype)
    canvas[:, : pixels.shape[0], : pixels.shape[1]] = pixels.transpose(2, 0, 1)
    return canvas


def _starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return sorted(set(starts))


def _window(length: int, blend: str) -> np.ndarray:
    """1-D blending weight: a sine bump floored at 0.05 (border tiles still count), or flat."""
    if blend == "uniform":
        return np.ones(length, dtype=np.float32)
    ramp = np.sin(np.pi * (np.arange(length, dtype=np.float32) + 0.5) / length)
    return np.maximum(ramp, 0.05).astype(np.float32)


def softmax(logits: np.ndarray, axis: int = 1) -> np.ndarray:
    """Softmax in place over `axis` (the array is overwritten and returned)."""
    logits -= logits.max(axis=axis, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=axis, keepdims=True)
    return logits


def argmax_channels(scores: np.ndarray) -> np.ndarray:
    """argmax over axis 0 of (K, H, W) as uint8, first maximum on ties (as np/torch.argmax);
    a running max over channels reads each plane once, several times faster than np.argmax."""
    best = scores[0].copy()
    index = np.zeros(scores.shape[1:], dtype=np.uint8)
    for k in range(1, scores.shape[0]):
        better = scores[k] > best
        index[better] = k
        np.maximum(best, scores[k], out=best)
    return index


# -- the torch forward, shared with the trainer's validation ----------------------------------
def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager[None]:
    dtype = autocast_dtype(amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def forward_logits(model: torch.nn.Module, images: torch.Tensor, device: torch.device, amp: str,
                   mean: Sequence[float], std: Sequence[float], channels_last: bool) -> torch.Tensor:
    """Logits (float32) for an NCHW pixel batch (uint8), normalised on the device."""
    from segstudio.engine.data import normalize

    x = normalize(images.to(device, non_blocking=True), mean, std)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(device, amp):
        logits = model(x)
    return logits.float()


class TorchForward:
    """`forward_logits` of a module as a backend: numpy pixels in, numpy logits out."""

    def __init__(self, model: Any, device: torch.device, amp: str, mean: Sequence[float],
                 std: Sequence[float], channels_last: bool = False) -> None:
        self.model, self.device, self.amp = model, device, amp
        self.mean, self.std, self.channels_last = tuple(mean), tuple(std), channels_last

    def forward(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            tensor = torch.from_numpy(np.ascontiguousarray(batch))
            return forward_logits(self.model, tensor, self.device, self.amp, self.mean, self.std,
                                  self.channels_last).cpu().numpy()


class TorchBackend(TorchForward):
    """A PyTorch module (or TorchScript) in eval mode on `device`, with the trainer's AMP."""

    def __init__(self, model: Any, config: ModelConfig, device: torch.device, amp: str = "off",
                 channels_last: bool = False) -> None:
        super().__init__(model.to(device).eval(), device, amp, config.mean, config.std, channels_last)
        self.config = config


# -- the one inference function ---------------------------------------------------------------
def _scores(backend: Any, batch: np.ndarray, settings: InferenceSettings) -> tuple[np.ndarray, bool]:
    """(scores, are_probabilities) of a batch: logits, or with TTA the flip-averaged softmax."""
    if not settings.tta:
        return backend.forward(batch).astype(np.float32, copy=False), False
    both = np.ascontiguousarray(np.concatenate([batch, batch[..., ::-1]], axis=0))
    probs = softmax(backend.forward(both).astype(np.float32))
    half = len(batch)
    return (probs[:half] + probs[half:, ..., ::-1]) * np.float32(0.5), True


def _forward_chunks(backend: Any, batch: np.ndarray, settings: InferenceSettings) -> tuple[np.ndarray, bool]:
    parts, probs = [], False
    for start in range(0, len(batch), settings.batch_size):
        scores, probs = _scores(backend, batch[start : start + settings.batch_size], settings)
        parts.append(scores)
    return (parts[0] if len(parts) == 1 else np.concatenate(parts)), probs


def _tiled(backend: Any, canvas: np.ndarray, tile: tuple[int, int], settings: InferenceSettings) -> np.ndarray:
    """Window-blended probabilities of overlapping tiles covering the padded canvas."""
    full_h, full_w = canvas.shape[1:]
    tile_h, tile_w = tile
    stride_h = max(1, int(round(tile_h * (1 - settings.overlap))))
    stride_w = max(1, int(round(tile_w * (1 - settings.overlap))))
    boxes = [(y, x) for y in _starts(full_h, tile_h, stride_h) for x in _starts(full_w, tile_w, stride_w)]
    weight = np.outer(_window(tile_h, settings.blend), _window(tile_w, settings.blend))
    total: np.ndarray | None = None
    norm = np.zeros((full_h, full_w), dtype=np.float32)
    for start in range(0, len(boxes), settings.batch_size):
        chunk = boxes[start : start + settings.batch_size]
        batch = np.stack([canvas[:, y : y + tile_h, x : x + tile_w] for y, x in chunk])
        scores, are_probs = _scores(backend, batch, settings)
        probs = scores if are_probs else softmax(scores)
        if total is None:
            total = np.zeros((probs.shape[1], full_h, full_w), dtype=np.float32)
        for (y, x), p in zip(chunk, probs):
            total[:, y : y + tile_h, x : x + tile_w] += p * weight
            norm[y : y + tile_h, x : x + tile_w] += weight
    assert total is not None
    total /= norm
    return total


def canvas_scores(backend: Any, canvas: np.ndarray, settings: InferenceSettings,
                  divisor: int) -> tuple[np.ndarray, bool]:
    """(scores (K, Hp, Wp), are_probabilities) of one padded (C, Hp, Wp) canvas, whole or tiled
    as `settings` decide for its size; `backend` needs only forward()."""
    tile = settings.tile_shape(canvas.shape[1], canvas.shape[2], divisor)
    if tile is None:
        scores, are_probs = _forward_chunks(backend, canvas[None], settings)
        return scores[0], are_probs
    return _tiled(backend, canvas, tile, settings), True


def _finish(scores: np.ndarray, are_probs: bool, config: ModelConfig) -> Prediction:
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    lut = np.asarray(config.output_class_ids, dtype=np.uint8)
    return Prediction(scores, lut[argmax_channels(scores)], are_probs)


def infer(backend: Backend, image: np.ndarray, settings: InferenceSettings | None = None) -> Prediction:
    """Predict one image (H, W[, C], any depth) with `settings` (default: the model's own)."""
    return infer_batch(backend, [image], settings)[0]


def infer_batch(backend: Backend, images: Sequence[np.ndarray],
                settings: InferenceSettings | None = None) -> list[Prediction]:
    """`infer` for several images; equal-sized images run whole share forward passes."""
    config = backend.config
    settings = settings or config.inference
    divisor = settings.divisor(config.divisor)
    results: dict[int, Prediction] = {}
    groups: dict[tuple[int, int], list[int]] = {}
    canvases: dict[int, np.ndarray] = {}
    for index, image in enumerate(images):
        pixels = model_pixels(image, config)
        height, width = pixels.shape[:2]
        canvas = padded_canvas(pixels, _round_up(height, divisor), _round_up(width, divisor))
        if settings.tile_shape(canvas.shape[1], canvas.shape[2], divisor) is None:
            canvases[index] = canvas
            groups.setdefault((height, width), []).append(index)
        else:
            scores, are_probs = canvas_scores(backend, canvas, settings, divisor)
            results[index] = _finish(scores[:, :height, :width], are_probs, config)
    for (height, width), indices in groups.items():
        scores, are_probs = _forward_chunks(backend, np.stack([canvases[i] for i in indices]), settings)
        for i, s in zip(indices, scores):
            results[i] = _finish(s[:, :height, :width], are_probs, config)
    return [results[i] for i in range(len(images))]


# -- predictors: a backend plus its settings --------------------------------------------------
def settings_for(config: ModelConfig, tile: int | None = None, overlap: float | None = None,
                 tta: bool | None = None, batch_size: int | None = None,
                 settings: InferenceSettings | None = None) -> InferenceSettings:
    """The model's settings with the classic options applied: tile 0 = whole image, tile N =
    tiles of N px (one tile, i.e. whole, when the image is smaller)."""
    base = settings or config.inference
    mode = None if tile is None else ("whole" if tile == 0 else "tiled")
    return base.replace(mode=mode, tile=tile or None, overlap=overlap, tta=tta, batch_size=batch_size)


class PredictorBase:
    """A backend and the settings it runs with; predict() is `infer`."""

    backend: Backend
    config: ModelConfig
    settings: InferenceSettings

    @property
    def tile(self) -> int:
        """Tile side when tiling is forced, 0 for whole images, else the tile past the budget."""
        return 0 if self.settings.mode == "whole" else self.settings.tile

    def _needs_tiling(self, height: int, width: int) -> bool:
        divisor = self.settings.divisor(self.config.divisor)
        return self.settings.tile_shape(_round_up(height, divisor), _round_up(width, divisor), divisor) is not None

    def predict(self, image: np.ndarray) -> Prediction:
        """Predict one image (H, W[, C] array, any depth)."""
        return infer(self.backend, image, self.settings)

    def predict_file(self, path: str | os.PathLike[str]) -> Prediction:
        return self.predict(read_for_model(path, self.config))

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[Prediction]:
        return infer_batch(self.backend, images, self.settings)


def torch_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ModelError(f"unknown device '{name}'; use cpu, cuda, cuda:N or auto") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu")
    return device


class Predictor(PredictorBase):
    """PyTorch backend: a loaded model in eval mode on `device`, AMP as `eval` resolves it."""

    def __init__(self, model: Any, config: ModelConfig, device: str = "cpu", amp: str = "off",
                 settings: InferenceSettings | None = None, **options: Any) -> None:
        self.config = config
        self.settings = settings_for(config, settings=settings, **options)
        where = torch_device(str(device))
        self.backend = TorchBackend(model, config, where, amp, channels_last=where.type == "cuda")
        self.device = self.backend.device
        self.model = self.backend.model

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], device: str = "cpu", **options: Any) -> Predictor:
        if str(path).lower().endswith((".pt", ".ts")):
            from segstudio.engine.onnx_runtime import load_torchscript

            model, config = load_torchscript(path)
        else:
            model, config = load_model(path, device="cpu")
        return cls(model, config, device=device, **options)


def load_predictor(path: str | os.PathLike[str], device: str = "cpu", **options: Any) -> PredictorBase:
    """OnnxPredictor for a .onnx file, else a PyTorch Predictor (model folder/file, TorchScript)."""
    if str(path).lower().endswith(".onnx"):
        from segstudio.engine.onnx_runtime import OnnxPredictor

        options.pop("amp", None)
        return OnnxPredictor(path, device=device, **options)
    options.pop("threads", None)
    return Predictor.from_path(path, device=device, **options)
