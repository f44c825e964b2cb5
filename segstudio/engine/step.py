"""One optimisation step and the learning-rate schedule.

`TrainStep` is the exact code the trainer runs per batch (the throughput benchmark times it
against a bare PyTorch loop). It never synchronises with the GPU: the loss comes back as a
device tensor. On CUDA out-of-memory it halves the per-forward batch by splitting each batch
into micro-batches (gradients accumulate, so the optimiser still sees the whole batch).
A step whose loss or gradient norm is not finite (NaN/inf) changes no weight: the fused CUDA
optimiser skips it on the device (no sync), elsewhere it is skipped on the host; the trainer
reads the counts now and then (`nonfinite_report`) to lower the learning rate or stop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from segstudio.core.errors import TrainingError
from segstudio.engine.device import autocast_dtype


def lr_factor(step: int, total: int, warmup: int, schedule: str, time_fraction: float = 0.0) -> float:
    """Multiplier of the base learning rate at `step`.

    cosine: linear warm-up, then cosine decay to 1% of the peak. onecycle: linear rise
    over the first 30% to the peak, then cosine decay to 0.1%. With a time budget the
    progress is the larger of the step and time fractions, so the decay ends on time.
    """
    progress = max(step / max(1, total), min(1.0, time_fraction))
    if schedule == "onecycle":
        rise = 0.3
        if progress < rise:
            return 0.04 + 0.96 * progress / rise
        tail = (progress - rise) / (1 - rise)
        return 0.001 + 0.999 * 0.5 * (1 + math.cos(math.pi * min(1.0, tail)))
    if step < warmup:
        return (step + 1) / (warmup + 1)
    span = max(1, total - warmup)
    decay = max((step - warmup) / span, min(1.0, time_fraction))
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, decay)))


def make_optimizer(model: nn.Module, lr: float, weight_decay: float, device: torch.device
                   ) -> torch.optim.Optimizer:
    """AdamW; the fused CUDA kernel on GPUs (one launch for all parameters)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if device.type == "cuda":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


# Non-finite steps in a row after which the trainer stops the run (weights do not move while
# steps are skipped, so this many in a row means the model or the data went bad, not one batch).
MAX_NONFINITE_STREAK = 10


@dataclass(frozen=True)
class NonFiniteReport:
    """Steps skipped for a non-finite loss since the last report, and the longest run of them."""

    skipped: int
    longest_streak: int


def _is_oom(exc: BaseException) -> bool:
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    return isinstance(exc, oom_type) or "out of memory" in str(exc).lower()


class TrainStep:
    """Forward, loss, backward, clip, optimiser and scheduler step for one uint8 batch."""

    def __init__(self, model: nn.Module, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None, scaler: torch.amp.GradScaler,
                 device: torch.device, amp: str, channels_last: bool, grad_clip: float | None,
                 mean: Sequence[float], std: Sequence[float]) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scaler = scaler
        self.device = device
        self.amp_dtype = autocast_dtype(amp)
        self.channels_last = channels_last
        self.grad_clip = grad_clip
        self.micro_batches = 1
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.mean = torch.tensor(mean, device=device, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device, dtype=torch.float32).view(1, -1, 1, 1)
        # skipped since the last report, current streak, longest streak since the last report
        self._nonfinite = torch.zeros(3, device=device)
        self._device_skip = bool(getattr(optimizer, "defaults", {}).get("fused")) and bool(
            getattr(optimizer, "_step_supports_amp_scaling", False))
        self._distributed = hasattr(model, "no_sync")

    def _inputs(self, images_u8: torch.Tensor, masks_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = images_u8.to(self.device, non_blocking=True)
        x = (images.float().div_(255.0) - self.mean).div_(self.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = masks_u8.to(self.device, non_blocking=True).long()
        return x, y

    def _forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = torch.zeros((), device=self.device)
        chunks = min(self.micro_batches, x.shape[0])
        for xs, ys in zip(x.chunk(chunks), y.chunk(chunks)):
            if self.amp_dtype is not None:
                with torch.autocast(device_type=self.device.type, dtype=self.amp_dtype):
                    logits = self.model(xs)
            else:
                logits = self.model(xs)
            loss = self.loss_fn(logits, ys)
            if chunks > 1:
                loss = loss * (xs.shape[0] / x.shape[0])
            self.scaler.scale(loss).backward()
            total += loss.detach()
        return total

    def __call__(self, images_u8: torch.Tensor, masks_u8: torch.Tensor,
                 on_warning: Callable[[str], None] | None = None) -> torch.Tensor:
        x, y = self._inputs(images_u8, masks_u8)
        while True:
            self.optimizer.zero_grad(set_to_none=True)
            try:
                loss = self._forward_backward(x, y)
                break
            except RuntimeError as exc:
                if not _is_oom(exc):
                    raise
                self._after_oom(x.shape[0], exc, on_warning)
        norm = None
        if self.grad_clip:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        elif not self.scaler.is_enabled():
            norm = torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None])
        # Under the scaler an inf gradient norm is its routine overflow check, not a fault.
        bad = self._nonfinite_flag(loss, None if self.scaler.is_enabled() else norm)
        if self.scaler.is_enabled():
            # The scaler skips a step with inf/NaN gradients (and lowers its scale) by itself.
            self.scaler.step(self.optimizer)
            self.scaler.update()
        elif self._device_skip:
            self.optimizer.found_inf = bad  # type: ignore[attr-defined]  # read by the fused kernel
            try:
                self.optimizer.step()
            finally:
                del self.optimizer.found_inf  # type: ignore[attr-defined]
        elif not bool(bad):
            self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return loss

    def _nonfinite_flag(self, loss: torch.Tensor, norm: torch.Tensor | None) -> torch.Tensor:
        """1.0 (a 0-d device tensor, as the fused kernel wants) when this step must change no weight; counted on
        the device. Under DDP every rank takes the same decision (the flag is all-reduced)."""
        bad = (~torch.isfinite(loss.detach())).float().reshape(())
        if norm is not None:
            bad = torch.maximum(bad, (~torch.isfinite(norm.detach())).float().reshape(()))
        if self._distributed:
            import torch.distributed as tdist

            tdist.all_reduce(bad, op=tdist.ReduceOp.MAX)
        counts = self._nonfinite
        counts[0] += bad
        counts[1] = (counts[1] + 1) * bad
        counts[2] = torch.maximum(counts[2], counts[1])
        return bad

    def nonfinite_report(self) -> NonFiniteReport:
        """Skipped steps and the longest streak since the last call (one sync; the trainer
        calls it when it reads the loss anyway)."""
        skipped, streak, longest = (int(v) for v in self._nonfinite.tolist())
        self._nonfinite[0] = 0
        self._nonfinite[2] = streak
        return NonFiniteReport(skipped, longest)

    def lower_lr(self, factor: float = 0.5) -> float:
        """Scale the learning rate (and the schedule's base) by `factor`; returns the new rate."""
        if self.scheduler is not None:
            self.scheduler.base_lrs = [lr * factor for lr in self.scheduler.base_lrs]
        for group in self.optimizer.param_groups:
            group["lr"] = group["lr"] * factor
        return float(self.optimizer.param_groups[0]["lr"])

    def _after_oom(self, batch: int, exc: BaseException, on_warning: Callable[[str], None] | None) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        per_forward = math.ceil(batch / self.micro_batches)
        distributed = hasattr(self.model, "no_sync")
        if per_forward <= 1 or distributed:
            raise TrainingError(
                f"the GPU ran out of memory even at {per_forward} image(s) per step; lower --crop-size, "
                "choose a smaller --encoder, or close other programs using the GPU"
            ) from exc
        self.micro_batches *= 2
        message = (f"GPU out of memory at {per_forward} images per forward pass; halving to "
                   f"{math.ceil(batch / self.micro_batches)} (batch of {batch} split into "
                   f"{self.micro_batches} micro-batches) and going on")
        if on_warning is not None:
            on_warning(message)

