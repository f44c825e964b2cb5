"""Scoring a model on whole images, shared by the trainer's validation and `segstudio eval`
so that both give the same figures for the same model; plus the preview strips.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from segstudio.core.imageio import write_rgb_png
from segstudio.engine.data import ClassMapping, normalize
from segstudio.engine.device import autocast_dtype
from segstudio.engine.metrics import ConfusionMatrix, SegMetrics


@dataclass(frozen=True)
class EvalResult:
    metrics: SegMetrics
    loss: float | None
    images: int


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager[None]:
    dtype = autocast_dtype(amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def forward_logits(model: nn.Module, images_u8: torch.Tensor, device: torch.device, amp: str,
                   mean: Sequence[float], std: Sequence[float], channels_last: bool) -> torch.Tensor:
    """Logits (float32) for a uint8 NCHW batch, normalised on the device."""
    x = normalize(images_u8.to(device, non_blocking=True), mean, std)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(device, amp):
        logits = model(x)
    return logits.float()


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], num_classes: int,
             device: torch.device, *, amp: str = "off", mean: Sequence[float], std: Sequence[float],
             channels_last: bool = False,
             loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
             all_reduce: bool = False) -> EvalResult:
    """Confusion-matrix metrics (and mean loss per image) over all `batches`."""
    was_training = model.training
    model.eval()
    matrix = ConfusionMatrix(num_classes, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    for images, masks in batches:
        logits = forward_logits(model, images, device, amp, mean, std, channels_last)
        target = masks.to(device, non_blocking=True).long()
        matrix.update(logits.argmax(dim=1), target)
        if loss_fn is not None:
            loss_sum += loss_fn(logits, target).double() * images.shape[0]
        count += images.shape[0]
    if all_reduce:
        import torch.distributed as dist

        matrix.all_reduce()
        dist.all_reduce(loss_sum)
        dist.all_reduce(count)
    model.train(was_training)
    images_seen = int(count.item())
    loss = float(loss_sum.item() / images_seen) if loss_fn is not None and images_seen else None
    return EvalResult(matrix.compute(), loss, images_seen)


def _panel(rgb: np.ndarray, height: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if h == height:
        return rgb
    width = max(1, round(w * height / h))
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_NEAREST)


def preview_strip(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray,
                  mapping: ClassMapping, height: int = 240) -> np.ndarray:
    """image | truth | prediction side by side, in class colours (ignore black)."""
    lut = mapping.color_lut()
    height = min(height, image.shape[0])
    gap = np.full((height, 4, 3), 255, dtype=np.uint8)
    panels = [_panel(image, height), gap, _panel(lut[truth], height), gap, _panel(lut[prediction], height)]
    return np.concatenate(panels, axis=1)


@torch.no_grad()
def write_previews(model: nn.Module, samples: Sequence[tuple[np.ndarray, np.ndarray]], divisor: int,
                   folder: Path, prefix: str, mapping: ClassMapping, device: torch.device, *,
                   amp: str, mean: Sequence[float], std: Sequence[float], channels_last: bool) -> list[str]:
    """Predict each (image, model-id mask) sample alone and write its strip; returns the paths."""
    from segstudio.engine.augment import pad_to_multiple

    was_training = model.training
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (image, mask) in enumerate(samples):
        padded, _ = pad_to_multiple(image, None, divisor)
        tensor = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1)))[None]
        logits = forward_logits(model, tensor, device, amp, mean, std, channels_last)
        h, w = mask.shape
        prediction = logits.argmax(dim=1)[0, :h, :w].to(torch.uint8).cpu().numpy()
        path = folder / f"{prefix}_{index}.png"
        write_rgb_png(path, preview_strip(image, mask, prediction, mapping))
        paths.append(str(path))
    model.train(was_training)
    return paths
