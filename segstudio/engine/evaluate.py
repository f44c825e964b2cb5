"""The trainer's validation: the inference path of engine.inference (same normalisation,
padding, AMP, whole-or-tiles decision) over batches of padded images; plus preview strips.

Images whose padded size the settings run whole go through `forward_logits` in batches of
equal size; any other image (tiled, or flip TTA) goes through `canvas_scores`, one by one,
so every image is scored exactly as `infer` (and so `eval` and `predict`) scores it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from segstudio.core import channels, display
from segstudio.core.errors import ProjectError
from segstudio.core.imageio import write_rgb_png
from segstudio.engine.data import ClassMapping
from segstudio.engine.inference import TorchForward, autocast, canvas_scores, forward_logits
from segstudio.engine.inference_settings import InferenceSettings
from segstudio.engine.metrics import ConfusionMatrix, SegMetrics

__all__ = ["EvalResult", "autocast", "evaluate", "forward_logits", "preview_display", "preview_strip",
           "write_previews"]


@dataclass(frozen=True)
class EvalResult:
    metrics: SegMetrics
    loss: float | None
    images: int


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], num_classes: int,
             device: torch.device, *, amp: str = "off", mean: Sequence[float], std: Sequence[float],
             channels_last: bool = False,
             loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
             all_reduce: bool = False, settings: InferenceSettings | None = None,
             divisor: int = 32) -> EvalResult:
    """Confusion-matrix metrics (and mean loss per image) over all `batches` of uint8 images
    padded to the model's `divisor`, run as `settings` (default: the model-file default) say."""
    settings = settings or InferenceSettings()
    forward = TorchForward(model, device, amp, mean, std, channels_last)
    was_training = model.training
    model.eval()
    matrix = ConfusionMatrix(num_classes, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    for images, masks in batches:
        logits = _batch_scores(forward, images, settings, settings.divisor(divisor))
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


def _batch_scores(forward: TorchForward, images: torch.Tensor, settings: InferenceSettings,
                  divisor: int) -> torch.Tensor:
    """Logits of a padded batch on the device; for tiled or TTA images the log of infer's
    probabilities (argmax and cross-entropy read them as logits). `divisor`: infer's padding."""
    height, width = images.shape[2:]
    full_h, full_w = -(-height // divisor) * divisor, -(-width // divisor) * divisor
    if (full_h, full_w) == (height, width) and not settings.tta and settings.tile_shape(height, width, divisor) is None:
        return forward_logits(forward.model, images, forward.device, forward.amp, forward.mean,
                              forward.std, forward.channels_last)
    parts = []
    for image in images.cpu().numpy():
        canvas = np.zeros((image.shape[0], full_h, full_w), dtype=image.dtype)  # black, as infer pads
        canvas[:, :height, :width] = image
        scores, are_probs = canvas_scores(forward, canvas, settings, divisor)
        scores = scores[:, :height, :width]
        parts.append(np.log(np.maximum(scores, 1e-12)) if are_probs else scores)
    return torch.from_numpy(np.stack(parts)).to(forward.device)


def _panel(rgb: np.ndarray, height: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if h == height:
        return rgb
    width = max(1, round(w * height / h))
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_NEAREST)


def preview_display(settings: dict[str, Any]) -> display.DisplayMapping | None:
    """The project's display mapping re-indexed onto the bands a model sees (the bands of a
    preview sample), so previews look like the canvas; None for photo projects. When it shows
    a band the model does not see, the model's first bands with the project's limits."""
    try:
        mapping, table = display.mapping_of(settings), channels.table_of(settings)
    except ProjectError:
        return None  # a malformed setting: previews fall back to a plain stretch
    if mapping is None or table is None or len(mapping.limits) != table.count:
        return None
    bands = table.model_indices
    limits = tuple(mapping.limits[b] for b in bands)
    position = {band: index for index, band in enumerate(bands)}
    if not all(band in position for band in mapping.shown):
        return display.DisplayMapping.default(limits)
    return display.DisplayMapping(mapping.mode, tuple(position.get(b, 0) for b in mapping.rgb),  # type: ignore[arg-type]
                                  position.get(mapping.grey, 0), limits)


def preview_strip(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray,
                  mapping: ClassMapping, height: int = 240,
                  shown: display.DisplayMapping | None = None) -> np.ndarray:
    """image | truth | prediction side by side, in class colours (ignore black); the image
    through `shown` (see preview_display) when given."""
    lut = mapping.color_lut()
    if shown is not None:
        image = display.render(image, shown)
    elif image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        from segstudio.core.imageio import to_rgb8

        image = to_rgb8(image)  # no display mapping: the first three bands, stretched
    height = min(height, image.shape[0])
    gap = np.full((height, 4, 3), 255, dtype=np.uint8)
    panels = [_panel(image, height), gap, _panel(lut[truth], height), gap, _panel(lut[prediction], height)]
    return np.concatenate(panels, axis=1)


@torch.no_grad()
def write_previews(model: nn.Module, samples: Sequence[tuple[np.ndarray, np.ndarray]], divisor: int,
                   folder: Path, prefix: str, mapping: ClassMapping, device: torch.device, *,
                   amp: str, mean: Sequence[float], std: Sequence[float], channels_last: bool,
                   shown: display.DisplayMapping | None = None) -> list[str]:
    """Predict each (image, model-id mask) sample alone and write its strip, the image shown
    through `shown` (the project's mapping over the sample's bands, preview_display); returns
    the paths."""
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
        write_rgb_png(path, preview_strip(image, mask, prediction, mapping, shown=shown))
        paths.append(str(path))
    model.train(was_training)
    return paths
