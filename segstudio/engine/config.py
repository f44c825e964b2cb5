"""Training settings: what the user chose, and the defaults that depend on the machine.

Every field left None is filled by `resolve_config` for the device and the data, so a bare
`segstudio train PROJECT` is a sound recipe: on a GPU a U-Net with a ResNet-34 encoder,
mixed precision, 512 px crops (the whole image when smaller), batches of 16; on a CPU a
ResNet-18 encoder, 256 px crops, batches of 8; epochs from the dataset size.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from segstudio.core.errors import TrainingError

# The option choices live here, free of torch and albumentations, so that building the CLI
# parser (every `segstudio` command) stays fast.
PRESETS = ("none", "light", "standard", "strong")
LOSSES = ("ce", "dice", "ce_dice", "focal", "lovasz")
SCHEDULES = ("cosine", "onecycle")
CLASS_WEIGHTS = ("none", "median_frequency")
# Total optimiser steps a default run aims at (epochs = steps * batch / images).
TARGET_STEPS_GPU = 3000
TARGET_STEPS_CPU = 600


@dataclass(frozen=True)
class TrainConfig:
    arch: str = "unet"
    encoder: str | None = None
    pretrained: str | None = "imagenet"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float = 5e-4
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    grad_clip: float = 1.0
    crop_size: int | None = None
    loss: str = "ce_dice"
    augment: str = "standard"
    class_weights: str = "none"
    amp: str = "auto"
    channels_last: bool | None = None
    device: str = "auto"
    workers: int | None = None
    max_minutes: float | None = None
    patience: int | None = None
    seed: int = 0
    run_name: str | None = None
    cache_mb: float = 3072.0
    val_batch_size: int | None = None
    preview_images: int = 4
    checkpoint_every_s: float = 120.0
    resume: str | None = None
    # Re-read the project at each epoch start and train on masks saved since (the app's
    # 'use new labels from the next epoch'); validation images stay fixed for comparable curves.
    refresh_data: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def validate(self) -> None:
        checks = [
            (self.loss in LOSSES, f"unknown loss '{self.loss}'; use one of {', '.join(LOSSES)}"),
            (self.augment in PRESETS, f"unknown augmentation '{self.augment}'; use one of {', '.join(PRESETS)}"),
            (self.schedule in SCHEDULES, f"unknown schedule '{self.schedule}'; use one of {', '.join(SCHEDULES)}"),
            (self.class_weights in CLASS_WEIGHTS,
             f"unknown class weighting '{self.class_weights}'; use one of {', '.join(CLASS_WEIGHTS)}"),
            (self.lr > 0, f"--lr must be positive, got {self.lr}"),
            (self.epochs is None or self.epochs >= 1, f"--epochs must be 1 or more, got {self.epochs}"),
            (self.batch_size is None or self.batch_size >= 1, f"--batch-size must be 1 or more, got {self.batch_size}"),
            (self.crop_size is None or self.crop_size >= 32, f"--crop-size must be 32 or more, got {self.crop_size}"),
            (self.workers is None or self.workers >= 0, f"--workers must be 0 or more, got {self.workers}"),
            (self.max_minutes is None or self.max_minutes > 0, "--max-minutes must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainingError(message)


def resolve_config(config: TrainConfig, device_type: str, train_images: int, world_size: int = 1,
                   workers: int = 0) -> TrainConfig:
    """Fill every None with the default for this device and dataset."""
    gpu = device_type == "cuda"
    encoder = config.encoder or ("resnet34" if gpu else "resnet18")
    batch = config.batch_size or (16 if gpu else 8)
    # A batch larger than the per-rank share of images would leave no full batch to train on.
    batch = max(1, min(batch, train_images // max(1, world_size) or 1))
    crop = config.crop_size or (512 if gpu else 256)
    epochs = config.epochs
    if epochs is None:
        steps_per_epoch = max(1, train_images // (batch * world_size))
        target = TARGET_STEPS_GPU if gpu else TARGET_STEPS_CPU
        epochs = int(min(200, max(10, math.ceil(target / steps_per_epoch))))
    patience = config.patience if config.patience is not None else max(10, math.ceil(epochs / 4))
    return replace(
        config,
        encoder=encoder,
        batch_size=batch,
        crop_size=crop,
        epochs=epochs,
        patience=patience,
        channels_last=gpu if config.channels_last is None else config.channels_last,
        workers=workers if config.workers is None else config.workers,
        val_batch_size=config.val_batch_size or batch,
    )
