"""INT8 ONNX models: static QDQ quantisation calibrated on real images of the project.

Static beats dynamic here: dynamic quantisation turns convolutions into ConvInteger, which
ONNX Runtime runs slower than float on CPUs; static QDQ lets it fuse Conv+ReLU into QLinearConv
with u8 activations and per-channel s8 weights. Calibration: MinMax over the images'
activations. The caller verifies mask agreement with the float model (>= 99%).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.errors import ExportError
from segstudio.core.imageio import is_image_file, read_image_rgb
from segstudio.engine.inference import model_pixels, padded_canvas
from segstudio.engine.modelfile import ModelConfig

MAX_CALIBRATION_IMAGES = 16
MIN_INT8_AGREEMENT = 0.99


def calibration_images(items: Sequence[str] | None, model_path: Path, sample: np.ndarray | None,
                       limit: int = MAX_CALIBRATION_IMAGES) -> list[np.ndarray]:
    """Images to calibrate with: the given files/folders (a project folder gives its images),
    else the project a model under PROJECT/models/ lives in, else the --sample image."""
    sources = [Path(item) for item in items] if items else []
    if not sources:
        project = next((p for p in Path(model_path).resolve().parents if (p / "project.json").is_file()), None)
        if project is not None:
            sources = [project]
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            folder = source / "images" if (source / "images").is_dir() else source
            found = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))
            files.extend(found[:: max(1, len(found) // limit)])  # spread over the folder
        elif source.is_file():
            files.append(source)
        else:
            raise ExportError(f"calibration input {source} does not exist; give images or folders")
    images = [read_image_rgb(path) for path in files[:limit]]
    if not images and sample is not None:
        images = [sample]
    if not images:
        raise ExportError("INT8 quantisation needs calibration images: give --calibration IMAGES "
                          "(a few typical images, or the project folder) or --sample IMAGE")
    return images


def model_inputs(images: Sequence[np.ndarray], config: ModelConfig) -> list[np.ndarray]:
    """(1, C, H, W) float32 inputs exactly as infer feeds a whole image (black-padded)."""
    divisor = config.divisor
    mean = np.asarray(config.mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(config.std, dtype=np.float32).reshape(-1, 1, 1)
    inputs = []
    for image in images:
        pixels = model_pixels(image, config)
        h, w = pixels.shape[:2]
        canvas = padded_canvas(pixels, -(-h // divisor) * divisor, -(-w // divisor) * divisor)
        inputs.append(((canvas.astype(np.float32) / np.float32(255.0) - mean) / std)[None])
    return inputs


def image_regions(images: Sequence[np.ndarray], config: ModelConfig) -> list[tuple[int, int]]:
    """(H, W) of each image inside its padded model input: the pixels a mask is made of. The
    black padding below and right of it is not part of any mask, and a model's answer there is
    the least stable under quantisation (about 6% of a 480x360 frame's input is padding)."""
    return [model_pixels(image, config).shape[:2] for image in images]


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over prepared inputs."""

    def __init__(self, name: str, inputs: Sequence[np.ndarray]) -> None:
        self._items: Iterator[np.ndarray] = iter(inputs)
        self._name = name

    def get_next(self) -> dict[str, np.ndarray] | None:
        item = next(self._items, None)
        return None if item is None else {self._name: item}

    def rewind(self) -> None:  # pragma: no cover - not called by MinMax
        pass


def quantize_int8(float_path: Path, target: Path, inputs: Sequence[np.ndarray]) -> None:
    """Write `target`: static QDQ INT8 (u8 activations, per-channel s8 weights) of `float_path`."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = onnx.load(str(float_path), load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        try:
            quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        except Exception:  # optimisation before quantisation is optional
            prepared = float_path
        extra: dict[str, Any] = {"ActivationSymmetric": False, "WeightSymmetric": True}
        try:
            quantize_static(str(prepared), str(target), _Reader(name, inputs), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            per_channel=True, calibrate_method=CalibrationMethod.MinMax,
                            extra_options=extra)
        except Exception as exc:  # the quantiser raises many kinds
            raise ExportError(f"INT8 quantisation failed: {exc}") from exc
