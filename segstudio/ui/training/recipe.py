"""The one-click recipe: training options chosen from the project and the machine, as the
explicit `segstudio train` flags the app passes to its child process (Qt-free).

On a GPU: U-Net / ResNet-34 with mixed precision, 512 px crops, a batch fitted to the GPU's
memory. On a CPU: U-Net / ResNet-18, 256 px crops and small batches, so that a run shows
progress within minutes. Epochs follow the dataset size (a step budget, clamped).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from segstudio.ui.training.probe import DeviceReport

TARGET_STEPS_GPU = 3000
TARGET_STEPS_CPU = 300
# (GPU memory in MB at least, batch of 512 px crops for a ResNet-34 U-Net with AMP)
GPU_BATCHES = ((40_000, 32), (20_000, 16), (10_000, 8), (6_000, 4), (0, 2))


@dataclass(frozen=True)
class TrainOptions:
    """Every `segstudio train` option the panel offers; None leaves it to the engine."""

    arch: str = "unet"
    encoder: str | None = None
    pretrained: str = "imagenet"
    loss: str = "ce_dice"
    augment: str = "standard"
    class_weights: str = "none"
    lr: float = 5e-4
    epochs: int | None = None
    batch_size: int | None = None
    crop_size: int | None = None
    amp: str = "auto"
    device: str = "auto"
    workers: int | None = None
    max_minutes: float | None = None
    patience: int | None = None
    seed: int | None = None
    run_name: str | None = None
    refresh_data: bool = False  # train on masks saved during the run from the next epoch

    def to_args(self) -> list[str]:
        """The options as CLI flags, in a stable order."""
        args = ["--arch", self.arch]
        for flag, value in (
            ("--encoder", self.encoder), ("--pretrained", self.pretrained), ("--loss", self.loss),
            ("--augment", self.augment), ("--class-weights", self.class_weights), ("--lr", self.lr),
            ("--epochs", self.epochs), ("--batch-size", self.batch_size), ("--crop-size", self.crop_size),
            ("--amp", self.amp), ("--device", self.device), ("--workers", self.workers),
            ("--max-minutes", self.max_minutes), ("--patience", self.patience), ("--seed", self.seed),
            ("--run-name", self.run_name),
        ):
            if value is not None and value != "":
                args += [flag, _text(value)]
        if self.refresh_data:
            args.append("--refresh-data")
        return args

    def summary(self) -> str:
        """One line for the panel: what a click on Train will do."""
        parts = [f"{self.arch} / {self.encoder or 'default encoder'}"]
        if self.epochs:
            parts.append(f"{self.epochs} epochs")
        if self.batch_size:
            parts.append(f"batch {self.batch_size}")
        if self.crop_size:
            parts.append(f"{self.crop_size} px crops")
        if self.amp != "off":
            parts.append(f"AMP {self.amp}")
        return ", ".join(parts)


def _text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def gpu_batch_size(memory_mb: float | None) -> int:
    if not memory_mb:
        return 8
    return next(batch for limit, batch in GPU_BATCHES if memory_mb >= limit)


def default_epochs(train_images: int, batch_size: int, gpu: bool) -> int:
    """Epochs that give about a fixed number of optimiser steps, clamped to a sane range."""
    steps_per_epoch = max(1, train_images // max(1, batch_size))
    target = TARGET_STEPS_GPU if gpu else TARGET_STEPS_CPU
    low, high = (10, 200) if gpu else (5, 60)
    return int(min(high, max(low, math.ceil(target / steps_per_epoch))))


def default_options(device: DeviceReport, train_images: int) -> TrainOptions:
    """The one-click recipe for this machine and this many labelled training images."""
    if device.gpu:
        batch = gpu_batch_size(device.memory_mb) if device.device_type == "cuda" else 8
        crop, encoder, amp = 512, "resnet34", "auto"
    else:
        batch, crop, encoder, amp = 4, 256, "resnet18", "off"
    batch = max(1, min(batch, train_images or 1))
    return TrainOptions(arch="unet", encoder=encoder, batch_size=batch, crop_size=crop, amp=amp,
                        epochs=default_epochs(train_images, batch, device.gpu), device="auto")


def with_overrides(options: TrainOptions, **changes: object) -> TrainOptions:
    return replace(options, **changes)  # type: ignore[arg-type]


def train_command(project_root: Path, options: TrainOptions) -> list[str]:
    """The full child command line: this Python, `-m segstudio train PROJECT --events jsonl ...`."""
    root = str(Path(project_root).resolve())
    return [sys.executable, "-m", "segstudio", "train", root, "--events", "jsonl", *options.to_args()]


def resume_command(project_root: Path, run_id: str, device: str = "auto", epochs: int | None = None) -> list[str]:
    """Continue a run from its last checkpoint; the run keeps its own recipe (only the device
    and the number of epochs may change, see cli/engine_cmds.py)."""
    command = [sys.executable, "-m", "segstudio", "train", str(Path(project_root).resolve()), "--events",
               "jsonl", "--resume", run_id, "--device", device]
    if epochs is not None:
        command += ["--epochs", str(epochs)]
    return command
