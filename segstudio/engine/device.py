"""Device choice, mixed precision, loader workers and the distributed (torchrun) context.

`auto` means CUDA, then Apple MPS, then CPU. Under torchrun every rank trains on
`cuda:<LOCAL_RANK>` (NCCL) or on the CPU (gloo); only rank 0 writes files and events.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from segstudio.core.errors import TrainingError

AMP_CHOICES = ("auto", "bf16", "fp16", "off")
DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


class DeviceError(TrainingError):
    """The requested device or precision is not available on this machine."""


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a torchrun job (world 1 when run alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_context_from_env() -> DistContext:
    return DistContext(
        rank=int(os.environ.get("RANK", "0")),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(requested: str = "auto", dist: DistContext | None = None) -> torch.device:
    """The torch device for `requested` (auto/cuda/mps/cpu or e.g. cuda:1)."""
    dist = dist or DistContext()
    requested = (requested or "auto").lower()
    if requested == "auto":
        if torch.cuda.is_available():
            requested = "cuda"
        elif _mps_available() and not dist.distributed:
            requested = "mps"
        else:
            requested = "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError("CUDA was requested but no CUDA GPU is usable here; use --device cpu or auto")
        if requested == "cuda":
            index = dist.local_rank if dist.distributed else torch.cuda.current_device()
            return torch.device("cuda", index)
        return torch.device(requested)
    if requested == "mps":
        if not _mps_available():
            raise DeviceError("Apple MPS was requested but is not available; use --device cpu or auto")
        return torch.device("mps")
    if requested == "cpu":
        return torch.device("cpu")
    raise DeviceError(f"unknown device '{requested}'; use one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({os.cpu_count() or 1} cores, {torch.get_num_threads()} threads)"


def resolve_amp(requested: str, device: torch.device) -> str:
    """'bf16', 'fp16' or 'off'. Auto: bf16 on GPUs that support it, else fp16; off on CPU/MPS
    (CPU autocast is slower than float32 on most CPUs; MPS autocast is not yet dependable)."""
    requested = (requested or "auto").lower()
    if requested not in AMP_CHOICES:
        raise DeviceError(f"unknown --amp '{requested}'; use one of {', '.join(AMP_CHOICES)}")
    if requested == "off":
        return "off"
    if device.type != "cuda":
        if requested == "auto":
            return "off"
        if device.type == "cpu" and requested == "bf16":
            return "bf16"
        raise DeviceError(f"--amp {requested} needs a CUDA GPU here; use --amp off")
    if requested == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return requested


def autocast_dtype(amp: str) -> torch.dtype | None:
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)


def default_workers(device: torch.device, cached: bool) -> int:
    """Loader processes: on a GPU enough to keep it fed; on the CPU few, as they compete with
    the training threads for the same cores (and 0 on a 2-4 core machine)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type == "cpu":
        return min(2, max(0, cpus // 4 - 1))
    return max(1, min(6 if cached else 10, cpus - 1))


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return None


def init_distributed(dist: DistContext, device: torch.device) -> None:
    """Join the torchrun process group (NCCL on GPU, gloo on CPU)."""
    import torch.distributed as tdist

    if not dist.distributed or tdist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    tdist.init_process_group(backend=backend)


def shutdown_distributed() -> None:
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()
