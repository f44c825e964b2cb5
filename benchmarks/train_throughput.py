"""Training throughput: the engine's step against a bare PyTorch loop, AMP speed-up, data wait.

    python benchmarks/train_throughput.py --device cuda
    python benchmarks/train_throughput.py --device cpu

Both loops train the same model (same initial weights) on the same uint8 batches held in
memory, with the same precision and memory format; rounds alternate between them so drift
in machine load hits both alike. Prints key=value lines:
  ratio_vs_bare     engine images/s divided by bare-loop images/s (goal >= 0.97)
  amp_speedup       (GPU) engine with AMP + channels_last vs float32 + NCHW
  data_wait_share   (GPU, or with --data-wait) share of step time spent waiting for the
                    loader in a real CamVid run of the trainer (needs ../shared/data/camvid)
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from segstudio.engine.device import autocast_dtype, device_name, resolve_amp, resolve_device  # noqa: E402
from segstudio.engine.losses import build_loss  # noqa: E402
from segstudio.engine.modelfile import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from segstudio.engine.models.registry import ModelSpec, create_model  # noqa: E402
from segstudio.engine.step import TrainStep, lr_factor, make_optimizer  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_batches(n: int, batch: int, size: int, classes: int, pin: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=gen)
        masks = torch.randint(0, classes, (batch, size, size), dtype=torch.uint8, generator=gen)
        if pin:
            images, masks = images.pin_memory(), masks.pin_memory()
        out.append((images, masks))
    return out


class EngineLoop:
    """The trainer's per-step work: TrainStep plus its loss bookkeeping on the device."""

    def __init__(self, model: nn.Module, device: torch.device, amp: str, channels_last: bool, steps: int) -> None:
        optimizer = make_optimizer(model, 1e-4, 1e-4, device)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, steps, 1, "cosine"))
        scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
        self.step = TrainStep(model, build_loss("ce").to(device), optimizer, scheduler, scaler, device, amp,
                              channels_last, 1.0, IMAGENET_MEAN, IMAGENET_STD)
        self.loss_sum = torch.zeros((), device=device)
        self.stop = lambda: False

    def __call__(self, images: torch.Tensor, masks: torch.Tensor) -> None:
        self.loss_sum += self.step(images, masks)
        self.stop()


class BareLoop:
    """What one writes by hand: normalise, autocast forward, loss, backward, clip, step."""

    def __init__(self, model: nn.Module, device: torch.device, amp: str, channels_last: bool) -> None:
        self.model = model
        self.device = device
        self.dtype = autocast_dtype(amp)
        self.channels_last = channels_last
        # Fused AdamW on CUDA like the engine: the ratio measures overhead, not optimizer choice.
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4,
                                           fused=device.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def __call__(self, images: torch.Tensor, masks: torch.Tensor) -> None:
        x = (images.to(self.device, non_blocking=True).float() / 255 - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = masks.to(self.device, non_blocking=True).long()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            logits = self.model(x)
        loss = nn.functional.cross_entropy(logits.float(), y, ignore_index=255)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()


def timed(loop, batches, steps: int, device: torch.device) -> float:  # type: ignore[no-untyped-def]
    sync(device)
    t0 = time.perf_counter()
    for i in range(steps):
        loop(*batches[i % len(batches)])
    sync(device)
    return time.perf_counter() - t0


def compare(loops: dict[str, object], batches, steps: int, rounds: int, warmup: int,  # type: ignore[no-untyped-def]
            device: torch.device) -> dict[str, float]:
    """Seconds per step of each loop: warm up, then alternate rounds, keep each one's median."""
    for loop in loops.values():
        timed(loop, batches, warmup, device)
    times: dict[str, list[float]] = {name: [] for name in loops}
    for r in range(rounds):
        order = list(loops.items()) if r % 2 == 0 else list(reversed(loops.items()))
        for name, loop in order:
            times[name].append(timed(loop, batches, steps, device) / steps)
    return {name: sorted(values)[len(values) // 2] for name, values in times.items()}


def data_wait_share(device: str, minutes: float, workers: int | None) -> float | None:
    camvid = REPO.parent / "shared" / "data" / "camvid"
    if not (camvid / "train").is_dir():
        print(f"# CamVid not at {camvid}: no data_wait_share", file=sys.stderr)
        return None
    sys.path.insert(0, str(REPO / "benchmarks"))
    from camvid import build_project

    from segstudio.engine.config import TrainConfig
    from segstudio.engine.data import prepare_data
    from segstudio.engine.trainer import fit

    with tempfile.TemporaryDirectory(prefix="wait-bench-") as tmp:
        project = build_project(camvid, Path(tmp) / "camvid")
        events: list[dict] = []
        config = TrainConfig(device=device, pretrained=None, epochs=3, patience=0, workers=workers,
                             max_minutes=minutes, preview_images=0)
        fit(config, prepare_data(project), events.append)
    ends = [e for e in events if e["event"] == "epoch_end"]
    # The first epoch pays for starting the loader workers; later ones show the steady state.
    steady = ends[1:] or ends
    for e in ends:
        print(f"# epoch {e['epoch']}: {e['images_per_s']:.1f} img/s, data wait {e['data_wait_share']:.3f}",
              file=sys.stderr)
    return sum(e["data_wait_share"] for e in steady) / len(steady) if steady else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--arch", default="unet")
    parser.add_argument("--encoder", default=None, help="default resnet34 on GPU, resnet18 on CPU")
    parser.add_argument("--batch-size", type=int, default=None, help="default 16 on GPU, 4 on CPU")
    parser.add_argument("--size", type=int, default=None, help="crop side, default 512 on GPU, 128 on CPU")
    parser.add_argument("--steps", type=int, default=None, help="steps per round (default 20 GPU, 3 CPU)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per loop (default 5 GPU, 4 CPU)")
    parser.add_argument("--amp", default="auto")
    parser.add_argument("--data-wait", action="store_true", help="also measure data_wait_share off GPU")
    parser.add_argument("--no-data-wait", action="store_true",
                        help="skip the CamVid data_wait_share run (also on a GPU)")
    parser.add_argument("--wait-minutes", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    if gpu:
        torch.backends.cudnn.benchmark = True
    amp = resolve_amp(args.amp, device)
    encoder = args.encoder or ("resnet34" if gpu else "resnet18")
    batch = args.batch_size or (16 if gpu else 4)
    size = args.size or (512 if gpu else 128)
    steps = args.steps or (20 if gpu else 3)
    rounds = args.rounds or (5 if gpu else 4)
    classes = 11
    channels_last = gpu
    batches = make_batches(4, batch, size, classes, pin=gpu)
    torch.manual_seed(0)
    base = create_model(ModelSpec(args.arch, encoder=encoder, num_classes=classes))

    def fresh() -> nn.Module:
        model = copy.deepcopy(base).to(device).train()
        return model.to(memory_format=torch.channels_last) if channels_last else model

    print(f"device={device_name(device).replace(' ', '_')}")
    print(f"model={args.arch}-{encoder} batch={batch} size={size} amp={amp} channels_last={channels_last}")
    total = steps * rounds * 4
    per_step = compare({"engine": EngineLoop(fresh(), device, amp, channels_last, total),
                        "bare": BareLoop(fresh(), device, amp, channels_last)},
                       batches, steps, rounds, warmup=2 if not gpu else 5, device=device)
    print(f"engine_images_per_s={batch / per_step['engine']:.2f}")
    print(f"bare_images_per_s={batch / per_step['bare']:.2f}")
    print(f"ratio_vs_bare={per_step['bare'] / per_step['engine']:.4f}")

    if gpu:
        fast = EngineLoop(fresh(), device, amp, True, total)
        base32 = copy.deepcopy(base).to(device).train()
        slow = EngineLoop(base32, device, "off", False, total)
        amp_times = compare({"amp": fast, "fp32": slow}, batches, steps, rounds, warmup=5, device=device)
        print(f"fp32_images_per_s={batch / amp_times['fp32']:.2f}")
        print(f"amp_speedup={amp_times['fp32'] / amp_times['amp']:.3f}")
    if (gpu or args.data_wait) and not args.no_data_wait:
        share = data_wait_share(args.device, args.wait_minutes, args.workers)
        print(f"data_wait_share={share if share is None else round(share, 4)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
