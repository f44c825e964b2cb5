"""`fit`: train a model on a project's labelled images, reporting events as it goes.

One epoch = every training image once, as an augmented random crop. After each epoch the
whole validation set is scored (whole images, padded, no crop) through one confusion
matrix; the best epoch by val mIoU is kept, and at the end written as a model file into
PROJECT/models/<run-id>/. See events.py for what is reported and checkpoint.py for the
run folder. Under torchrun the same code trains with DistributedDataParallel.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from segstudio.core.errors import SegstudioError, TrainingError
from segstudio.core.project import ImageRecord, Project
from segstudio.engine import checkpoint as ckpt
from segstudio.engine.augment import train_transform
from segstudio.engine.config import TrainConfig, resolve_config
from segstudio.engine.data import (
    ClassMapping,
    EvalDataset,
    ImageStore,
    SizeGroupedBatches,
    TrainData,
    TrainDataset,
    crop_for,
    make_loader,
    median_frequency_weights,
    prepare_data,
)
from segstudio.engine.device import (
    DistContext,
    default_workers,
    device_name,
    dist_context_from_env,
    init_distributed,
    peak_memory_mb,
    reset_peak_memory,
    resolve_amp,
    resolve_device,
)
from segstudio.engine.evaluate import EvalResult, evaluate, write_previews
from segstudio.engine.events import EventHandler, Throttle, make_event
from segstudio.engine.losses import build_loss
from segstudio.engine.modelfile import IMAGENET_MEAN, IMAGENET_STD
from segstudio.engine.step import TrainStep, lr_factor, make_optimizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    model_dir: Path | None
    epochs: int
    best_epoch: int | None
    best: dict[str, Any] | None
    reason: str


def _mask_signature(project: Project, records: Sequence[ImageRecord]) -> tuple[tuple[str, int, int], ...]:
    """Which images train, and the state of their mask files: changes when a mask is saved."""
    out = []
    for rec in records:
        try:
            st = project.mask_path(rec).stat()
            out.append((rec.id, st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            out.append((rec.id, 0, 0))
    return tuple(out)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _agree_any(flag: bool, device: torch.device, dist: DistContext) -> bool:
    """True on every rank if it is true on any (so all ranks stop at the same step)."""
    if not dist.distributed:
        return flag
    import torch.distributed as tdist

    tensor = torch.tensor([1.0 if flag else 0.0], device=device)
    tdist.all_reduce(tensor, op=tdist.ReduceOp.MAX)
    return bool(tensor.item() > 0)


class _Run:
    """The state of one fit() call; methods are its phases."""

    def __init__(self, config: TrainConfig, data: TrainData, on_event: EventHandler,
                 should_stop: Callable[[], bool]) -> None:
        self.dist = dist_context_from_env()
        self.device = resolve_device(config.device, self.dist)
        init_distributed(self.dist, self.device)
        self.data = data
        self.should_stop = should_stop
        self.on_event = on_event
        self.started = time.monotonic()
        config.validate()
        self.resume_dir = Path(config.resume) if config.resume else None
        self.amp = resolve_amp(config.amp, self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        seed_everything(config.seed + self.dist.rank)
        threads = 8 if self.device.type == "cuda" else max(1, torch.get_num_threads())
        self.train_store = ImageStore(data.project, data.train, data.mapping, config.cache_mb, threads)
        self.val_store = ImageStore(data.project, data.val, data.mapping, config.cache_mb, threads)
        self.train_signature = _mask_signature(data.project, data.train)
        workers = default_workers(self.device, self.train_store.cached)
        memory = (torch.cuda.get_device_properties(self.device).total_memory / 2**20
                  if self.device.type == "cuda" else None)
        self.config = resolve_config(config, self.device.type, len(data.train), self.dist.world_size, workers,
                                     memory)

    def emit(self, kind: str, /, **fields: Any) -> None:
        if self.dist.is_main:
            self.on_event(make_event(kind, **fields))

    # -- setup ----------------------------------------------------------------------------
    def build(self) -> None:
        from segstudio.engine.models.registry import ModelSpec, create_model, required_divisor

        cfg = self.config
        mapping = self.data.mapping
        self.spec = ModelSpec(cfg.arch, encoder=cfg.encoder or "resnet34", num_classes=mapping.num_classes,
                              pretrained=None if self.resume_dir else cfg.pretrained)
        self.divisor = required_divisor(self.spec)
        notes: list[str] = list(self.data.warnings)
        if cfg.refresh_data and self.dist.distributed:
            notes.append("--refresh-data works in single-process runs only; this run keeps its starting images")
        model = create_model(self.spec, warnings=notes).to(self.device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.notes = notes

        crop = crop_for(self.train_store.sizes, int(cfg.crop_size or 256), self.divisor)
        self.crop = crop
        self.transform = train_transform(cfg.augment, crop)
        self.transform.set_random_seed(cfg.seed + self.dist.rank)
        pin = self.device.type == "cuda"
        batch = int(cfg.batch_size or 1)
        self._make_train_loader()
        val_ds = EvalDataset(self.val_store, self.divisor)
        shard = range(self.dist.rank, len(val_ds), self.dist.world_size)
        self.val_loader = make_loader(
            val_ds, batch_sampler=SizeGroupedBatches(val_ds, int(cfg.val_batch_size or batch), shard),
            workers=0 if self.val_store.cached else min(4, int(cfg.workers or 0)), pin_memory=pin)
        self.preview_samples = [self.val_store[i] for i in range(min(cfg.preview_images, len(self.val_store)))]

        weights = None
        if cfg.class_weights == "median_frequency":
            weights = median_frequency_weights(self.train_store, mapping.num_classes)
        self.class_weights = weights
        self.loss_fn = build_loss(cfg.loss, weights).to(self.device)
        self.optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, self.device)
        self.total_steps = int(cfg.epochs or 1) * self.steps_per_epoch
        warmup = min(self.total_steps // 2, round(cfg.warmup_epochs * self.steps_per_epoch))
        budget_s = cfg.max_minutes * 60 if cfg.max_minutes else None

        def time_fraction() -> float:
            return (time.monotonic() - self.started) / budget_s if budget_s else 0.0

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: lr_factor(step, self.total_steps, warmup, cfg.schedule, time_fraction()),
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == "fp16")
        train_model: nn.Module = model
        if self.dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            train_model = DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.train_model = train_model
        self.step = TrainStep(train_model, self.loss_fn, self.optimizer, self.scheduler, self.scaler,
                              self.device, self.amp, bool(cfg.channels_last), cfg.grad_clip,
                              IMAGENET_MEAN, IMAGENET_STD)

    def _make_train_loader(self) -> None:
        """The training loader over `train_store` (again after a data refresh)."""
        cfg = self.config
        train_ds = TrainDataset(self.train_store, self.transform)
        self.sampler = None
        if self.dist.distributed:
            from torch.utils.data.distributed import DistributedSampler

            self.sampler = DistributedSampler(train_ds, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                              shuffle=True, seed=cfg.seed, drop_last=True)
        generator = torch.Generator()
        generator.manual_seed(cfg.seed)
        batch = int(cfg.batch_size or 1)
        self.train_loader = make_loader(train_ds, batch_size=batch, shuffle=True, drop_last=True,
                                        workers=int(cfg.workers or 0), pin_memory=self.device.type == "cuda",
                                        sampler=self.sampler, generator=generator)
        self.steps_per_epoch = len(self.train_loader)
        if self.steps_per_epoch == 0:
            raise TrainingError(f"{len(train_ds)} training images do not fill one batch of {batch}; "
                                "lower --batch-size")

    def refresh_data(self, epoch: int, epochs: int) -> None:
        """Train on masks saved since the last epoch: re-read the project and, when its labelled
        training images or their mask files changed, rebuild the training set. Validation stays
        the run's own, so the curves remain comparable."""
        try:
            project = Project.open(self.data.project.root)
            if ClassMapping.from_classes(project.classes) != self.data.mapping:
                self.emit("warning", message="the classes changed during the run; new labels will be "
                                             "used by the next run")
                self.config = replace(self.config, refresh_data=False)
                return
            val_ids = {rec.id for rec in self.data.val}
            records = [rec for rec in prepare_data(project, self.data.mapping).train if rec.id not in val_ids]
            signature = _mask_signature(project, records)
            if signature == self.train_signature:
                return
            threads = 8 if self.device.type == "cuda" else max(1, torch.get_num_threads())
            store = ImageStore(project, records, self.data.mapping, self.config.cache_mb, threads)
        except SegstudioError as exc:
            self.emit("warning", message=f"kept the current training images: {exc}")
            return
        before = len(self.train_store)
        done_steps = epoch * self.steps_per_epoch
        self.train_store, self.train_signature = store, signature
        self._make_train_loader()
        self.total_steps = done_steps + (epochs - epoch) * self.steps_per_epoch
        self.emit("warning", message=f"training data refreshed before epoch {epoch + 1}: {len(store)} training "
                                     f"images (was {before}), including masks saved during the run")

    def open_run_dir(self) -> None:
        project_root = self.data.project.root
        if self.resume_dir is not None:
            self.run_dir = self.resume_dir
            self.run_id = self.run_dir.name
        else:
            runs = project_root / "runs"
            self.run_id = ckpt.new_run_id(runs, self.config.run_name, self.spec.arch, self.spec.encoder)
            self.run_dir = runs / self.run_id
        if self.dist.distributed:  # all ranks must agree on the folder rank 0 chose
            import torch.distributed as tdist

            box = [self.run_id]
            tdist.broadcast_object_list(box, src=0)
            self.run_id = box[0]
            self.run_dir = self.run_dir.parent / self.run_id
        self.ckpt_dir = self.run_dir / "checkpoints"
        if self.dist.is_main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            saved = dict(self.config.to_dict(), resume=None)
            saved["spec"] = self.spec.to_dict()
            saved["classes"] = list(self.data.mapping.names)
            ckpt.write_config(self.run_dir, saved)

    def restore(self) -> None:
        self.start_epoch = 0
        self.best_miou = -math.inf
        self.best_epoch: int | None = None
        self.best: dict[str, Any] | None = None
        self.epochs_without_gain = 0
        if self.resume_dir is None:
            return
        state = ckpt.load_state(self.ckpt_dir / "last.pt")
        ckpt.load_weights(self.ckpt_dir / "last.safetensors", self.model)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.start_epoch = int(state["epoch"])
        best = state.get("best") or {}
        self.best_miou = float(best.get("miou", -math.inf))
        self.best_epoch = best.get("epoch")
        self.best = best.get("metrics")
        self.epochs_without_gain = int(state.get("epochs_without_gain", 0))
        ckpt.restore_rng(state["rng"])

    # -- checkpoints ----------------------------------------------------------------------
    def save_last(self, completed_epochs: int) -> Path:
        path = self.ckpt_dir / "last.safetensors"
        if self.dist.is_main:
            ckpt.save_weights(path, self.model)
            ckpt.save_state(self.ckpt_dir / "last.pt", {
                "epoch": completed_epochs,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "best": {"miou": self.best_miou, "epoch": self.best_epoch, "metrics": self.best},
                "epochs_without_gain": self.epochs_without_gain,
                "rng": ckpt.capture_rng(),
            })
            self.emit("checkpoint", epoch=completed_epochs, kind="last", path=str(path))
        self.last_save = time.monotonic()
        return path

    def export(self) -> Path | None:
        best_path = self.ckpt_dir / "best.safetensors"
        if not self.dist.is_main or not best_path.is_file():
            return None
        from segstudio.engine.models.registry import create_model

        model = create_model(type(self.spec)(self.spec.arch, encoder=self.spec.encoder,
                                             num_classes=self.spec.num_classes))
        ckpt.load_weights(best_path, model)
        target = self.data.project.root / "models" / self.run_id
        self.write_model_file(target, model.eval())
        return target

    def write_model_file(self, target: Path, model: nn.Module) -> None:
        from segstudio.engine.modelfile import ModelConfig, save_model

        cfg = self.config
        training = {
            "run_id": self.run_id, "best_epoch": self.best_epoch, "epochs": cfg.epochs,
            "train_images": len(self.data.train), "val_images": len(self.data.val),
            "val_source": self.data.val_source, "loss": cfg.loss, "augment": cfg.augment,
            "lr": cfg.lr, "batch_size": cfg.batch_size, "val_batch_size": cfg.val_batch_size,
            "amp": self.amp, "pretrained": cfg.pretrained,
        }
        config = ModelConfig.from_spec(self.spec, self.data.project.classes, mean=IMAGENET_MEAN,
                                       std=IMAGENET_STD, input_size=self.crop, metrics=self.best or {},
                                       training=training)
        save_model(target, model, config)

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> RunResult:
        cfg = self.config
        epochs = int(cfg.epochs or 1)
        self.emit(
            "run_started", run_id=self.run_id, run_dir=str(self.run_dir), config=cfg.to_dict(),
            device=device_name(self.device), device_type=self.device.type, amp=self.amp,
            world_size=self.dist.world_size, train_images=len(self.data.train),
            val_images=len(self.data.val), val_source=self.data.val_source,
            classes=list(self.data.mapping.names), epochs=epochs, steps_per_epoch=self.steps_per_epoch,
            start_epoch=self.start_epoch, crop=list(self.crop), cached=self.train_store.cached,
            class_weights=self.class_weights,
        )
        for note in self.notes:
            self.emit("warning", message=note)
        self.last_save = time.monotonic()
        reason = "completed"
        completed = self.start_epoch
        for epoch in range(self.start_epoch, epochs):
            if epoch > self.start_epoch and self.out_of_time():  # do not start an epoch past the budget
                self.save_last(completed)
                reason = "max_minutes"
                break
            if cfg.refresh_data and epoch > self.start_epoch and not self.dist.distributed:
                self.refresh_data(epoch, epochs)
            outcome = self.train_epoch(epoch, epochs)
            if outcome == "stop":
                path = self.save_last(completed)
                model_dir = self.export()
                self.emit("stopped", epoch=completed, reason="signal", checkpoint=str(path),
                          model=str(model_dir) if model_dir else None)
                return RunResult(self.run_id, self.run_dir, model_dir, completed, self.best_epoch,
                                 self.best, "stopped")
            completed = epoch + 1
            early = self.validate(epoch, epochs)
            final = outcome == "time" or early or completed == epochs
            if final or time.monotonic() - self.last_save >= cfg.checkpoint_every_s:
                self.save_last(completed)
            if outcome == "time":
                reason = "max_minutes"
                break
            if early:
                reason = "early_stopping"
                break
        model_dir = self.export()
        self.emit("run_finished", epochs=completed, best_epoch=self.best_epoch, best=self.best,
                  model=str(model_dir) if model_dir else None, run_dir=str(self.run_dir),
                  minutes=(time.monotonic() - self.started) / 60, reason=reason)
        return RunResult(self.run_id, self.run_dir, model_dir, completed, self.best_epoch, self.best, reason)

    def out_of_time(self) -> bool:
        """True once --max-minutes have passed; agreed by every rank."""
        budget = self.config.max_minutes
        over = bool(budget) and (time.monotonic() - self.started) >= 60 * float(budget or 0)
        return _agree_any(over, self.device, self.dist)

    def train_epoch(self, epoch: int, epochs: int) -> str:
        """One pass over the training data: 'done', 'stop' (signal) or 'time' (budget used)."""
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        self.train_model.train()
        reset_peak_memory(self.device)
        throttle = Throttle(0.5)
        loss_sum = torch.zeros((), device=self.device)
        images = 0
        wait = 0.0
        t0 = time.perf_counter()
        outcome = "done"
        iterator = iter(self.train_loader)
        for step in range(self.steps_per_epoch):
            t_wait = time.perf_counter()
            batch_images, batch_masks = next(iterator)
            wait += time.perf_counter() - t_wait
            loss_sum += self.step(batch_images, batch_masks, on_warning=lambda m: self.emit("warning", message=m))
            images += batch_images.shape[0] * self.dist.world_size
            last = step == self.steps_per_epoch - 1
            if throttle.ready(force=last):
                elapsed = time.perf_counter() - t0
                self.emit("progress", epoch=epoch + 1, epochs=epochs, step=step + 1, steps=self.steps_per_epoch,
                          loss=float(loss_sum.item()) / (step + 1), lr=self.optimizer.param_groups[0]["lr"],
                          images_per_s=images / elapsed if elapsed > 0 else None)
            stop = bool(self.should_stop())
            over = self.out_of_time()
            flags = _agree_any(stop, self.device, self.dist), over
            if flags[0] or flags[1]:
                outcome = "stop" if flags[0] else "time"
                break
        seconds = time.perf_counter() - t0
        steps_done = max(1, step + 1)
        self.epoch_stats = {
            "train_loss": float(loss_sum.item()) / steps_done,
            "train_seconds": seconds,
            "images_per_s": images / seconds if seconds > 0 else None,
            "data_wait_share": wait / seconds if seconds > 0 else None,
            "peak_gpu_memory_mb": peak_memory_mb(self.device),
        }
        return outcome

    def validate(self, epoch: int, epochs: int) -> bool:
        """Score the val set, report, keep the best; True when early stopping says stop."""
        cfg = self.config
        t0 = time.perf_counter()
        result: EvalResult = evaluate(
            self.model, self.val_loader, self.data.mapping.num_classes, self.device, amp=self.amp,
            mean=IMAGENET_MEAN, std=IMAGENET_STD, channels_last=bool(cfg.channels_last),
            loss_fn=self.loss_fn, all_reduce=self.dist.distributed)
        figures = result.metrics.to_dict(self.data.mapping.names)
        miou = result.metrics.miou if result.metrics.miou is not None else -math.inf
        is_best = miou > self.best_miou + 1e-6
        if is_best:
            self.best_miou = miou
            self.best_epoch = epoch + 1
            self.best = figures
            self.epochs_without_gain = 0
        else:
            self.epochs_without_gain += 1
        stats = self.epoch_stats
        event = make_event(
            "epoch_end", epoch=epoch + 1, epochs=epochs, train_loss=stats["train_loss"], val_loss=result.loss,
            **figures, lr=self.optimizer.param_groups[0]["lr"],
            seconds=stats["train_seconds"] + time.perf_counter() - t0, train_seconds=stats["train_seconds"],
            images_per_s=stats["images_per_s"], data_wait_share=stats["data_wait_share"],
            peak_gpu_memory_mb=stats["peak_gpu_memory_mb"], val_images=result.images,
            best_miou=self.best_miou if self.best_epoch else None, is_best=is_best,
        )
        if self.dist.is_main:
            ckpt.append_jsonl(self.run_dir / "metrics.jsonl", event)
            self.on_event(event)
            if is_best:
                path = self.ckpt_dir / "best.safetensors"
                ckpt.save_weights(path, self.model, metadata={"epoch": str(epoch + 1), "miou": repr(miou)})
                self.emit("checkpoint", epoch=epoch + 1, kind="best", path=str(path))
            if self.preview_samples:
                paths = write_previews(
                    self.model, self.preview_samples, self.divisor, self.run_dir / "previews",
                    f"epoch{epoch + 1:03d}", self.data.mapping, self.device, amp=self.amp,
                    mean=IMAGENET_MEAN, std=IMAGENET_STD, channels_last=bool(cfg.channels_last))
                self.emit("preview", epoch=epoch + 1, images=paths)
        return bool(cfg.patience) and self.epochs_without_gain >= int(cfg.patience or 0)


def fit(config: TrainConfig, data: TrainData, on_event: EventHandler | None = None,
        should_stop: Callable[[], bool] | None = None) -> RunResult:
    """Train per `config` on `data`; events go to `on_event`; `should_stop` is polled each
    step (a True answer finishes the step, saves, emits `stopped` and returns)."""
    run = _Run(config, data, on_event or (lambda event: None), should_stop or (lambda: False))
    run.build()
    run.open_run_dir()
    run.restore()
    return run.run()
