"""Segmentation metrics over a whole split, from one confusion matrix.

Per-batch averages of IoU are biased (a batch without a class says nothing about it), so
every metric here comes from a confusion matrix summed over all pixels of the split. The
matrix is accumulated on the model's device with `torch.bincount` (no per-batch host
sync) and can be all-reduced across distributed ranks before the figures are read.

A class absent from both truth and prediction has no IoU or Dice: it is reported as None
(JSON null) and left out of the means. Pixels labelled with the ignore index never count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

IGNORE_INDEX = 255  # the model-side ignore index (see data.ClassMapping)


@dataclass(frozen=True)
class SegMetrics:
    """Figures of one split. Fractions in [0, 1]; None where a value is undefined."""

    miou: float | None
    mean_dice: float | None
    pixel_accuracy: float | None
    mean_class_accuracy: float | None
    iou: tuple[float | None, ...]
    dice: tuple[float | None, ...]
    class_accuracy: tuple[float | None, ...]
    pixels: int

    def to_dict(self, names: Sequence[str]) -> dict[str, Any]:
        """The JSON form used by `epoch_end`, `run_finished` and `segstudio eval --json`."""
        return {
            "miou": self.miou,
            "mean_dice": self.mean_dice,
            "pixel_accuracy": self.pixel_accuracy,
            "mean_class_accuracy": self.mean_class_accuracy,
            "per_class": {
                name: {"iou": self.iou[i], "dice": self.dice[i], "accuracy": self.class_accuracy[i]}
                for i, name in enumerate(names)
            },
        }


def _ratio(num: np.ndarray, den: np.ndarray) -> list[float | None]:
    return [float(n) / float(d) if d > 0 else None for n, d in zip(num, den)]


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return math.fsum(present) / len(present) if present else None


def metrics_from_confusion(matrix: np.ndarray) -> SegMetrics:
    """Figures from a KxK matrix whose row is the true class and column the prediction."""
    cm = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(cm)
    truth = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    fp = predicted - tp
    fn = truth - tp
    iou = _ratio(tp, tp + fp + fn)
    dice = _ratio(2 * tp, 2 * tp + fp + fn)
    class_acc = _ratio(tp, truth)
    total = float(cm.sum())
    return SegMetrics(
        miou=_mean(iou),
        mean_dice=_mean(dice),
        pixel_accuracy=float(tp.sum()) / total if total > 0 else None,
        mean_class_accuracy=_mean(class_acc),
        iou=tuple(iou),
        dice=tuple(dice),
        class_accuracy=tuple(class_acc),
        pixels=int(total),
    )


class ConfusionMatrix:
    """A KxK int64 matrix on `device`, fed with predicted and true class maps."""

    def __init__(self, num_classes: int, device: torch.device | str = "cpu",
                 ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch: `prediction` class ids (any int dtype), `target` ids with ignore."""
        k = self.num_classes
        target = target.reshape(-1).to(torch.int64)
        prediction = prediction.reshape(-1).to(torch.int64)
        valid = (target != self.ignore_index) & (target >= 0) & (target < k)
        index = target[valid] * k + prediction[valid]
        if index.device.type == "mps":  # bincount on MPS lacks int64 support on some builds
            counts = torch.bincount(index.cpu(), minlength=k * k).to(index.device)
        else:
            counts = torch.bincount(index, minlength=k * k)
        self.matrix += counts

    def update_logits(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        self.update(logits.argmax(dim=1), target)

    def all_reduce(self) -> None:
        """Sum the matrix over distributed ranks (no-op when not distributed)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM)

    def numpy(self) -> np.ndarray:
        k = self.num_classes
        return self.matrix.detach().cpu().numpy().reshape(k, k)

    def compute(self) -> SegMetrics:
        return metrics_from_confusion(self.numpy())

    def reset(self) -> None:
        self.matrix.zero_()
