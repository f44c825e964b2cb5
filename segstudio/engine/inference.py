"""Run a model file on images: normalise, pad, tile, optionally flip-average, map to class ids.

Two backends share one pipeline: `Predictor` (PyTorch) and `OnnxPredictor` (ONNX Runtime,
for machines without torch or where it is faster). Images larger than the tile size are cut
into overlapping tiles whose probabilities are blended with a window that fades at tile
edges, so no seams show and memory stays bounded. Output: probabilities over the model's
classes (C, H, W) float32 and a mask of the project's class ids (H, W) uint8.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.errors import ModelError
from segstudio.core.imageio import read_image_rgb, to_rgb8
from segstudio.engine.modelfile import ModelConfig, load_model
from segstudio.engine.uncertainty import ImageUncertainty, image_uncertainty

DEFAULT_TILE = 1024
DEFAULT_OVERLAP = 0.25
ONNX_CONFIG_KEY = "segstudio_config"


@dataclass(frozen=True, eq=False)
class Prediction:
    """Class probabilities (C, H, W) float32 over the model's classes, and the id mask (H, W)."""

    probabilities: np.ndarray
    mask: np.ndarray

    def uncertainty(self) -> ImageUncertainty:
        return image_uncertainty(self.probabilities)


def normalize_image(image: np.ndarray, config: ModelConfig) -> np.ndarray:
    """An image as the model's (C, H, W) float32 input: RGB/255, minus mean, over std."""
    if config.in_channels == 3:
        image = to_rgb8(image)
    elif config.in_channels == 1:
        if image.ndim == 3:
            image = to_rgb8(image).mean(axis=2).round().astype(np.uint8)
        elif image.dtype != np.uint8:
            image = to_rgb8(image)[..., 0]
        image = image[..., None]
    elif image.ndim != 3 or image.shape[2] != config.in_channels:
        raise ModelError(
            f"the model takes {config.in_channels}-channel images; this one has shape {image.shape}"
        )
    if image.dtype == np.uint8:
        scale = 255.0
    elif np.issubdtype(image.dtype, np.integer):
        scale = float(np.iinfo(image.dtype).max)
    else:  # float images are taken as already in 0..1
        scale = 1.0
    data = image.astype(np.float32) / scale
    mean = np.asarray(config.mean, dtype=np.float32)
    std = np.asarray(config.std, dtype=np.float32)
    data = (data - mean) / std
    return np.ascontiguousarray(data.transpose(2, 0, 1))


def _round_up(value: int, divisor: int) -> int:
    return int(math.ceil(value / divisor) * divisor)


def _pad(chw: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reflect-pad bottom/right to (height, width); reflection keeps edge statistics natural."""
    pad_h, pad_w = height - chw.shape[1], width - chw.shape[2]
    if pad_h == 0 and pad_w == 0:
        return chw
    mode = "reflect" if min(chw.shape[1:]) > 1 else "edge"
    return np.pad(chw, ((0, 0), (0, pad_h), (0, pad_w)), mode=mode)


def _starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return sorted(set(starts))


def _window(length: int) -> np.ndarray:
    """1-D blending weight: a sine bump, floored so tile edges at the image border still count."""
    ramp = np.sin(np.pi * (np.arange(length, dtype=np.float32) + 0.5) / length)
    return np.maximum(ramp, 0.05)


def softmax(logits: np.ndarray, axis: int = 1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=axis, keepdims=True)
    return shifted


class _PipelineBase:
    """Shared pre/post-processing; subclasses only run a (N, C, h, w) float32 batch."""

    def __init__(self, config: ModelConfig, tile: int | None = None, overlap: float = DEFAULT_OVERLAP,
                 tta: bool = False, batch_size: int = 4) -> None:
        if not 0.0 <= overlap < 0.9:
            raise ModelError(f"tile overlap must be in [0, 0.9), got {overlap}")
        self.config = config
        self.divisor = config.divisor
        self.tta = tta
        self.overlap = overlap
        self.batch_size = max(1, int(batch_size))
        if tile is None:
            tile = max(config.input_size) if config.input_size else DEFAULT_TILE
        # tile 0 = never tile; otherwise a multiple of the divisor, at least one divisor.
        self.tile = 0 if tile == 0 else max(self.divisor, int(tile) // self.divisor * self.divisor)
        self._class_lut = np.asarray(config.output_class_ids, dtype=np.uint8)

    # -- backend -------------------------------------------------------------------------
    def _run(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, h, w) float32 input -> (N, K, h, w) float32 logits."""
        raise NotImplementedError

    def _probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Softmax of the model, averaged with its horizontally flipped run under TTA."""
        probs_list = []
        for start in range(0, len(batch), self.batch_size):
            chunk = batch[start : start + self.batch_size]
            if self.tta:
                both = np.concatenate([chunk, chunk[..., ::-1]], axis=0)
                probs = softmax(self._run(np.ascontiguousarray(both)).astype(np.float32))
                half = len(chunk)
                probs = (probs[:half] + probs[half:, ..., ::-1]) * 0.5
            else:
                probs = softmax(self._run(chunk).astype(np.float32))
            probs_list.append(probs)
        return np.concatenate(probs_list, axis=0)

    # -- pipeline ------------------------------------------------------------------------
    def predict(self, image: np.ndarray) -> Prediction:
        """Predict one image (H, W[, C] array, any depth)."""
        return self.predict_batch([image])[0]

    def predict_file(self, path: str | os.PathLike[str]) -> Prediction:
        return self.predict(read_image_rgb(path))

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[Prediction]:
        """Predict several images; equal-sized small images run as one batch."""
        results: dict[int, Prediction] = {}
        groups: dict[tuple[int, int], list[int]] = {}
        inputs = [normalize_image(image, self.config) for image in images]
        for index, chw in enumerate(inputs):
            height, width = chw.shape[1:]
            if self._needs_tiling(height, width):
                results[index] = self._predict_tiled(chw)
            else:
                groups.setdefault((height, width), []).append(index)
        for (height, width), indices in groups.items():
            padded_h, padded_w = _round_up(height, self.divisor), _round_up(width, self.divisor)
            batch = np.stack([_pad(inputs[i], padded_h, padded_w) for i in indices])
            probs = self._probabilities(batch)[:, :, :height, :width]
            for i, p in zip(indices, probs):
                results[i] = self._finish(np.ascontiguousarray(p))
        return [results[i] for i in range(len(images))]

    def _needs_tiling(self, height: int, width: int) -> bool:
        return self.tile > 0 and max(_round_up(height, self.divisor), _round_up(width, self.divisor)) > self.tile

    def _predict_tiled(self, chw: np.ndarray) -> Prediction:
        height, width = chw.shape[1:]
        tile_h = min(self.tile, _round_up(height, self.divisor))
        tile_w = min(self.tile, _round_up(width, self.divisor))
        padded = _pad(chw, max(height, tile_h), max(width, tile_w))
        full_h, full_w = padded.shape[1:]
        stride_h = max(1, int(round(tile_h * (1 - self.overlap))))
        stride_w = max(1, int(round(tile_w * (1 - self.overlap))))
        boxes = [(y, x) for y in _starts(full_h, tile_h, stride_h) for x in _starts(full_w, tile_w, stride_w)]
        weight = np.outer(_window(tile_h), _window(tile_w)).astype(np.float32)
        total = np.zeros((self.config.num_classes, full_h, full_w), dtype=np.float32)
        norm = np.zeros((full_h, full_w), dtype=np.float32)
        step = self.batch_size
        for start in range(0, len(boxes), step):
            chunk = boxes[start : start + step]
            batch = np.stack([padded[:, y : y + tile_h, x : x + tile_w] for y, x in chunk])
            probs = self._probabilities(batch)
            for (y, x), p in zip(chunk, probs):
                total[:, y : y + tile_h, x : x + tile_w] += p * weight
                norm[y : y + tile_h, x : x + tile_w] += weight
        total /= norm
        return self._finish(np.ascontiguousarray(total[:, :height, :width]))

    def _finish(self, probs: np.ndarray) -> Prediction:
        mask = self._class_lut[probs.argmax(axis=0)]
        return Prediction(probabilities=probs.astype(np.float32, copy=False), mask=mask)


def _torch_device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ModelError(f"unknown device '{name}'; use cpu, cuda, cuda:N or auto") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu")
    return device


class Predictor(_PipelineBase):
    """PyTorch backend: a loaded model in eval mode on `device`."""

    def __init__(self, model: Any, config: ModelConfig, device: str = "cpu", **options: Any) -> None:
        super().__init__(config, **options)
        self.device = _torch_device(str(device))
        self.model = model.to(self.device).eval()

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], device: str = "cpu", **options: Any) -> Predictor:
        model, config = load_model(path, device="cpu")
        return cls(model, config, device=device, **options)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            tensor = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            return self.model(tensor).float().cpu().numpy()


def onnx_session_options(threads: int | None = None) -> Any:
    """CPU session options: all cores by default, and idle worker threads sleep, not spin."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def read_onnx_config(path: Path, metadata: dict[str, str]) -> ModelConfig:
    """The ModelConfig an exported file carries in its metadata (or a config.json beside it)."""
    if ONNX_CONFIG_KEY in metadata:
        try:
            data = json.loads(metadata[ONNX_CONFIG_KEY])
        except json.JSONDecodeError as exc:
            raise ModelError(f"{path}: metadata '{ONNX_CONFIG_KEY}' is not valid JSON ({exc})") from exc
        return ModelConfig.from_dict(data, source=f"{path} metadata")
    from segstudio.engine.modelfile import read_config

    beside = path.parent / "config.json"
    if beside.is_file():
        return read_config(beside)
    raise ModelError(
        f"{path} carries no segstudio metadata and has no config.json beside it; "
        "export it with `segstudio export-model`"
    )


class OnnxPredictor(_PipelineBase):
    """ONNX Runtime backend with the same interface as Predictor."""

    def __init__(self, path: str | os.PathLike[str], device: str = "cpu", threads: int | None = None,
                 config: ModelConfig | None = None, **options: Any) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path} not found; give an exported .onnx model file")
        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda") or device == "auto":
            if "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            elif device != "auto":
                raise ModelError("ONNX Runtime here has no CUDA support; use --device cpu")
        try:
            self.session = ort.InferenceSession(str(path), sess_options=onnx_session_options(threads),
                                                providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{path} cannot be loaded by ONNX Runtime ({exc})") from exc
        metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        super().__init__(config or read_onnx_config(path, metadata), **options)
        self.input_name = self.session.get_inputs()[0].name
        self.path = path

    def _run(self, batch: np.ndarray) -> np.ndarray:
        feed = {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}
        return self.session.run(None, feed)[0]


def load_predictor(path: str | os.PathLike[str], device: str = "cpu", **options: Any) -> _PipelineBase:
    """OnnxPredictor for a .onnx file, else a PyTorch Predictor for a model folder or file."""
    if str(path).lower().endswith(".onnx"):
        return OnnxPredictor(path, device=device, **options)
    return Predictor.from_path(path, device=device, **options)
