"""The training event stream's schema: the kinds and, per kind, the fields of its JSON object.

The engine writes these (engine/events.py: `make_event`, one JSON line each with
`--events jsonl`); the app reads them (ui/training: process, controller, dashboard). Both
import this module, which needs neither torch nor Qt, so the app can type what it reads
without loading the engine. engine/events.py documents what each field means.
"""

from __future__ import annotations

import time
from typing import Any, Literal, TypedDict, get_args

EventKind = Literal["run_started", "progress", "epoch_end", "preview", "checkpoint",
                    "warning", "error", "stopped", "run_finished"]
# A run ends with exactly one of these.
FinalKind = Literal["run_finished", "stopped", "error"]


class _Event(TypedDict):
    event: str
    time: float  # Unix seconds


class ClassFigures(TypedDict):
    iou: float | None
    dice: float | None
    accuracy: float | None


class Figures(TypedDict):
    """Validation figures, as `epoch_end` carries them and `run_finished` keeps the best."""

    miou: float | None
    mean_dice: float | None
    pixel_accuracy: float | None
    mean_class_accuracy: float | None
    per_class: dict[str, ClassFigures]


class RunStarted(_Event):
    run_id: str
    run_dir: str
    config: dict[str, Any]
    device: str
    device_type: str
    amp: str
    world_size: int
    train_images: int
    val_images: int
    val_source: str
    classes: list[str]
    epochs: int
    steps_per_epoch: int
    start_epoch: int
    crop: list[int]
    cached: bool
    class_weights: list[float] | None
    val_subset: int  # images scored by intermediate validations
    started_from: str | None  # the model whose weights the run started from


class Progress(_Event):
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    lr: float
    images_per_s: float | None


class EpochEnd(_Event):
    epoch: int
    epochs: int
    train_loss: float
    val_loss: float
    miou: float | None
    mean_dice: float | None
    pixel_accuracy: float | None
    mean_class_accuracy: float | None
    per_class: dict[str, ClassFigures]
    lr: float
    seconds: float
    train_seconds: float
    images_per_s: float | None
    data_wait_share: float | None
    peak_gpu_memory_mb: float | None
    val_images: int
    best_miou: float | None
    is_best: bool
    val_s: float  # seconds the validation took
    val_subset: bool  # scored on the fixed subset, not the whole split


class Preview(_Event):
    epoch: int
    images: list[str]


class Checkpoint(_Event):
    epoch: int
    kind: Literal["best", "last"]
    path: str


class _WarningFields(_Event):
    message: str


class WarningEvent(_WarningFields, total=False):
    malformed: bool  # added by the app for a line that was not an event


class _ErrorFields(_Event):
    message: str


class ErrorEvent(_ErrorFields, total=False):
    died: bool  # added by the app when the training process ended without a final event


class Stopped(_Event):
    epoch: int
    reason: str
    checkpoint: str
    model: str | None


class RunFinished(_Event):
    epochs: int
    best_epoch: int
    best: Figures | None
    model: str | None
    run_dir: str
    minutes: float
    reason: Literal["completed", "early_stopping", "max_minutes"]
    val_seconds: float  # all validation, previews and re-scoring included


Event = (RunStarted | Progress | EpochEnd | Preview | Checkpoint | WarningEvent | ErrorEvent | Stopped
         | RunFinished)

EVENT_TYPES: dict[str, type] = {
    "run_started": RunStarted, "progress": Progress, "epoch_end": EpochEnd, "preview": Preview,
    "checkpoint": Checkpoint, "warning": WarningEvent, "error": ErrorEvent, "stopped": Stopped,
    "run_finished": RunFinished,
}
EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)
FINAL_EVENTS: tuple[FinalKind, ...] = get_args(FinalKind)


def event_time() -> float:
    """The `time` stamp of an event made now."""
    return round(time.time(), 3)
