"""The one-click recipe: the training choices a user did not make, from the machine and the
data. Used by `resolve_config` (a bare `segstudio train PROJECT`) and by the app's one-click
Train (ui/training/recipe.py), so both train the same way. No torch, no Qt.

On a CUDA GPU: U-Net / ResNet-34, mixed precision, 512 px crops, a batch fitted to the GPU's
memory (16 when it is unknown). On Apple MPS the same with batches of 8. On a CPU: ResNet-18,
256 px crops, batches of 8, no mixed precision. Epochs give about TARGET_STEPS optimiser
steps, clamped to EPOCH_RANGE.

Small data: when the recipe plans the epochs, an epoch repeats the training images until it
has MIN_EPOCH_STEPS steps (20 images no longer make 200 epochs of 2 steps), and intermediate
validations take at most VAL_SHARE of the training time (trainer.py skips the ones that would
exceed it). Epochs given explicitly keep one pass each and a validation after every epoch.

CPU figures: the CLI used 600 target steps, epochs 10-200 and batches of 8; the app 300
steps, epochs 5-60 and batches of 4. One step budget (600) and one epoch range (10-200) now
serve both. The batch differs by one documented knob: `interactive` (a person watching the
app's curves) takes CPU batches of 4, so steps are half as long and the progress moves within
seconds on a laptop; a headless run keeps 8, which keeps the cores busier.

A time budget (`--max-minutes`) without explicit epochs is a request to train for that long:
the recipe then plans the most epochs of EPOCH_RANGE, the learning rate decays with the
clock (engine/step.lr_factor) and the budget, not a step count, ends the run. Planned steps
would otherwise end early wherever steps are fast (a GPU's 3000 steps of CamVid take minutes),
leaving most of the budget unused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from segstudio.engine.config import TrainConfig

TARGET_STEPS_GPU = 3000
TARGET_STEPS_CPU = 600
EPOCH_RANGE = (10, 200)
MIN_EPOCH_STEPS = 50
VAL_SHARE = 0.15
# Share of crops centred on a rare class's pixel (engine/augment.RareClassCrop) when the
# recipe plans the run. Chosen by benchmarks/camvid.py (20 CPU minutes, all 367 frames, from
# scratch): val mIoU 0.465 with 0.3 against 0.442 with 0 (Fence 0.42 vs 0.00, Car 0.53 vs 0.71).
RARE_CROPS = 0.3
# (GPU memory in MB at least, batch of 512 px crops for a ResNet-34 U-Net with AMP)
GPU_BATCHES = ((40_000, 32), (20_000, 16), (10_000, 8), (6_000, 4), (0, 2))
GPU_BATCH_UNKNOWN_MEMORY = 16
MPS_BATCH = 8
CPU_BATCH = 8
CPU_BATCH_INTERACTIVE = 4


@dataclass(frozen=True)
class Machine:
    """What the recipe needs to know of the device: its kind (cuda/mps/cpu), GPU memory, ranks."""

    device_type: str
    memory_mb: float | None = None
    world_size: int = 1

    @property
    def gpu(self) -> bool:
        return self.device_type in ("cuda", "mps")


@dataclass(frozen=True)
class Recipe:
    encoder: str
    batch_size: int
    crop_size: int
    epochs: int
    amp: str
    channels_last: bool
    min_epoch_steps: int
    val_share: float
    rare_crops: float


def gpu_batch_size(memory_mb: float | None) -> int:
    """Batch of 512 px crops that fits a CUDA GPU with this much memory."""
    if not memory_mb:
        return GPU_BATCH_UNKNOWN_MEMORY
    return next(batch for limit, batch in GPU_BATCHES if memory_mb >= limit)


def epoch_steps(train_images: int, batch_size: int, world_size: int = 1, min_steps: int = 1) -> int:
    """Steps of one epoch: whole passes over the images until there are `min_steps`."""
    per_pass = max(1, train_images // (max(1, batch_size) * max(1, world_size)))
    return per_pass * math.ceil(max(1, min_steps) / per_pass)


def default_epochs(train_images: int, batch_size: int, gpu: bool, world_size: int = 1,
                   min_steps: int = 1) -> int:
    """Epochs that give about a fixed number of optimiser steps, clamped to EPOCH_RANGE."""
    steps_per_epoch = epoch_steps(train_images, batch_size, world_size, min_steps)
    target = TARGET_STEPS_GPU if gpu else TARGET_STEPS_CPU
    low, high = EPOCH_RANGE
    return int(min(high, max(low, math.ceil(target / steps_per_epoch))))


def one_click(machine: Machine, train_images: int, chosen: TrainConfig | None = None,
              interactive: bool = False) -> Recipe:
    """The recipe for this machine and this many training images; what `chosen` already sets
    (encoder, batch, crop, epochs, channels_last) is kept and the rest follows from it."""
    from segstudio.engine.config import TrainConfig

    chosen = chosen or TrainConfig()
    cuda = machine.device_type == "cuda"
    if cuda:
        batch = gpu_batch_size(machine.memory_mb)
    elif machine.gpu:
        batch = MPS_BATCH
    else:
        batch = CPU_BATCH_INTERACTIVE if interactive else CPU_BATCH
    batch = chosen.batch_size or batch
    # A batch larger than the per-rank share of images would leave no full batch to train on.
    batch = max(1, min(batch, train_images // max(1, machine.world_size) or 1))
    planned = chosen.epochs is None
    min_steps = chosen.min_epoch_steps or (MIN_EPOCH_STEPS if planned else 1)
    val_share = chosen.val_share if chosen.val_share is not None else (VAL_SHARE if planned else 0.0)
    rare_crops = chosen.rare_crops if chosen.rare_crops is not None else (RARE_CROPS if planned else 0.0)
    if chosen.epochs:
        epochs = chosen.epochs
    elif chosen.max_minutes:
        epochs = EPOCH_RANGE[1]
    else:
        epochs = default_epochs(train_images, batch, machine.gpu, machine.world_size, min_steps)
    return Recipe(
        encoder=chosen.encoder or ("resnet34" if machine.gpu else "resnet18"),
        batch_size=batch,
        crop_size=chosen.crop_size or (512 if machine.gpu else 256),
        epochs=epochs,
        amp=chosen.amp if chosen.amp != "auto" or machine.gpu else "off",
        channels_last=cuda if chosen.channels_last is None else chosen.channels_last,
        min_epoch_steps=min_steps,
        val_share=val_share,
        rare_crops=rare_crops,
    )
