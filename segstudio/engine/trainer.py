"""`fit`: train a model on a project's labelled images, reporting events as it goes.

One epoch = every training image once (repeated up to --min-epoch-steps), as augmented
random crops; a gigapixel image counts as its share of crops read box by box (gigapixel_data.py). After an epoch the validation images are scored (whole images, padded, no
crop) through one confusion matrix: when the cadence allows (cadence.py, --val-share), on a
fixed subset when the split is larger than --val-subset; the last epoch always, on the whole
split, and a best found on the subset is re-scored on the whole split before the end. The
best by val mIoU is written as a model file into PROJECT/models/<run-id>/. See events.py for what is reported, checkpoint.py for the run
folder and run_setup.py for what is built before the first step. Under torchrun the same
code trains with DistributedDataParallel. Faults end the run with a TrainingError that says
what is still safe (faults.py): a failed write (disk full), a damaged checkpoint on resume, a
loss that stays NaN/inf; a good checkpoint is never overwritten by a worse state.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segstudio.core.errors import SegstudioError, TrainingError
from segstudio.engine import checkpoint as ckpt
from segstudio.engine import faults
from segstudio.engine.cadence import ValCadence
from segstudio.engine.checkpoint import BestTracker
from segstudio.engine.config import TrainConfig
from segstudio.engine.data import TrainData
from segstudio.engine.device import DistContext, device_name, peak_memory_mb, reset_peak_memory
from segstudio.engine.evaluate import EvalResult, evaluate, preview_display, write_previews
from segstudio.engine.events import EventHandler, Throttle, make_event
from segstudio.engine.run_setup import (
    RunDir,
    RunSetup,
    TrainFeed,
    build_setup,
    open_run_dir,
    refreshed_feed,
)
from segstudio.engine.step import MAX_NONFINITE_STREAK

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


@dataclass(frozen=True)
class EpochResult:
    """One pass over the training data: how it ended ('done', 'stop' on a signal, 'time'
    when the budget ran out) and its figures."""

    outcome: str
    train_loss: float
    train_seconds: float
    images_per_s: float | None
    data_wait_share: float | None
    peak_gpu_memory_mb: float | None


def _agree_any(flag: bool, device: torch.device, dist: DistContext) -> bool:
    """True on every rank if it is true on any (so all ranks stop at the same step)."""
    if not dist.distributed:
        return flag
    import torch.distributed as tdist

    tensor = torch.tensor([1.0 if flag else 0.0], device=device)
    tdist.all_reduce(tensor, op=tdist.ReduceOp.MAX)
    return bool(tensor.item() > 0)


def restore(setup: RunSetup, run: RunDir, models_dir: Path | None = None) -> tuple[int, BestTracker]:
    """Epochs already done and the best so far: (0, nothing) for a new run; for a resumed one
    the last checkpoint's weights, optimiser, schedule, scaler and RNG states are loaded. A
    damaged or torn checkpoint is a TrainingError naming the file and the ways on."""
    if setup.resume_dir is None:
        return 0, BestTracker()
    folder = run.checkpoints
    models_dir = models_dir or run.path.parent.parent / "models"
    try:
        state = ckpt.load_state(folder / "last.pt")
        epoch = int(state["epoch"])
        weights_epoch = ckpt.load_weights(folder / "last.safetensors", setup.model).get("epoch")
        if weights_epoch is not None and int(weights_epoch) != epoch:
            raise TrainingError(f"{folder / 'last.safetensors'} is of epoch {weights_epoch} but "
                                f"{folder / 'last.pt'} of epoch {epoch} (the run was cut off between the two)")
        setup.optimizer.load_state_dict(state["optimizer"])
        setup.scheduler.load_state_dict(state["scheduler"])
        setup.scaler.load_state_dict(state["scaler"])
        ckpt.restore_rng(state["rng"])
        best = BestTracker.from_state(state)
    except TrainingError as exc:
        raise TrainingError(faults.resume_failure(run.path, models_dir, str(exc))) from exc
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
        detail = f"{folder / 'last.pt'} is not a complete training state ({type(exc).__name__}: {exc})"
        raise TrainingError(faults.resume_failure(run.path, models_dir, detail)) from exc
    return epoch, best


class _Training:
    """The epoch loop over a built setup; every value it changes is passed in or returned."""

    def __init__(self, setup: RunSetup, run: RunDir, data: TrainData, on_event: EventHandler,
                 should_stop: Callable[[], bool]) -> None:
        self.setup = setup
        self.run_dir = run
        self.data = data
        self.on_event = on_event
        self.should_stop = should_stop
        self.saved_epoch: int | None = None  # the epoch of the checkpoint on disk, if any
        self.models_dir = data.project.root / "models"

    def emit(self, kind: str, /, **fields: Any) -> None:
        if self.setup.dist.is_main:
            self.on_event(make_event(kind, **fields))

    def run(self, feed: TrainFeed, start_epoch: int, best: BestTracker) -> RunResult:
        setup, cfg, run = self.setup, self.setup.config, self.run_dir
        epochs = int(cfg.epochs or 1)
        self.emit(
            "run_started", run_id=run.run_id, run_dir=str(run.path), config=cfg.to_dict(),
            device=device_name(setup.device), device_type=setup.device.type, amp=setup.amp,
            world_size=setup.dist.world_size, train_images=len(self.data.train),
            val_images=len(self.data.val), val_source=self.data.val_source,
            classes=list(self.data.mapping.names), epochs=epochs, steps_per_epoch=feed.steps_per_epoch,
            start_epoch=start_epoch, crop=list(setup.crop), cached=feed.store.cached,
            class_weights=setup.class_weights, val_subset=setup.val_subset_images,
            started_from=setup.started_from,
        )
        for note in setup.notes:
            self.emit("warning", message=note)
        refresh = cfg.refresh_data and not setup.dist.distributed
        cadence = ValCadence(float(cfg.val_share or 0.0))
        val_seconds = 0.0
        last_save = time.monotonic()
        reason = "completed"
        completed = start_epoch
        self.saved_epoch = start_epoch or None
        for epoch in range(start_epoch, epochs):
            if refresh and epoch > start_epoch:
                feed, refresh = self.refresh(feed, epoch, epochs)
            result = self.train_epoch(feed, epoch, epochs)
            cadence.trained(result.train_seconds)
            weights_bad = result.outcome != "nonfinite" and _agree_any(
                not ckpt.finite_state(setup.model), setup.device, setup.dist)
            if result.outcome == "nonfinite" or weights_bad:
                self.give_up_nonfinite(epoch, best, weights_bad)
            if result.outcome == "stop":
                path = self.save_last(completed, best)
                model_dir = self.export(best)
                self.emit("stopped", epoch=completed, reason="signal", checkpoint=str(path),
                          model=str(model_dir) if model_dir else None)
                return RunResult(run.run_id, run.path, model_dir, completed, best.epoch, best.metrics, "stopped")
            completed = epoch + 1
            over = result.outcome == "time" or self.out_of_time()  # never start an epoch past the budget
            last = over or completed == epochs
            early = False
            if last or self.validation_due(cadence, result):
                t0 = time.perf_counter()
                if last:
                    self.rescore_best(best)
                self.validate(epoch, epochs, result, best, whole=last)
                val_seconds += time.perf_counter() - t0
                if not last:
                    cadence.validated(time.perf_counter() - t0)
                    early = best.patience_spent(cfg.patience)
            if last or early or time.monotonic() - last_save >= cfg.checkpoint_every_s:
                if early:
                    t0 = time.perf_counter()
                    self.rescore_best(best)
                    val_seconds += time.perf_counter() - t0
                self.save_last(completed, best)
                last_save = time.monotonic()
            if over:
                reason = "max_minutes"
                break
            if early:
                reason = "early_stopping"
                break
        model_dir = self.export(best)
        self.emit("run_finished", epochs=completed, best_epoch=best.epoch, best=best.metrics,
                  model=str(model_dir) if model_dir else None, run_dir=str(run.path),
                  minutes=(time.monotonic() - setup.started) / 60, reason=reason, val_seconds=val_seconds)
        return RunResult(run.run_id, run.path, model_dir, completed, best.epoch, best.metrics, reason)

    def give_up_nonfinite(self, epoch: int, best: BestTracker, weights: bool) -> None:
        """End the run on a loss (or weights) gone NaN/inf: nothing of it is saved over the
        last good checkpoint; the best weights so far become the run's model first."""
        self.export(best)
        raise TrainingError(faults.nonfinite_failure(
            epoch + 1, MAX_NONFINITE_STREAK, float(self.setup.optimizer.param_groups[0]["lr"]),
            self.run_dir.path, self.models_dir, self.saved_epoch, weights))

    def storage_failure(self, what: str, exc: OSError) -> TrainingError:
        detail = str(exc) or f"{type(exc).__name__}, errno {exc.errno}"
        return TrainingError(faults.storage_failure(what, detail, self.run_dir.path, self.saved_epoch))

    def check_nonfinite(self, epoch: int, step: int) -> tuple[int, bool]:
        """Steps skipped for a NaN/inf loss since the last check (when there were some, the
        learning rate is halved, with a warning) and whether to give up: that many in a row."""
        step_fn = self.setup.step
        report = step_fn.nonfinite_report()
        if report.skipped:
            lr = step_fn.lower_lr(0.5)
            self.emit("warning", message=f"epoch {epoch + 1}, step {step + 1}: {report.skipped} step(s) had a "
                                         f"NaN/inf loss and changed no weight; learning rate lowered to {lr:.3g}")
        give_up = report.longest_streak >= MAX_NONFINITE_STREAK
        return report.skipped, _agree_any(give_up, self.setup.device, self.setup.dist)

    def refresh(self, feed: TrainFeed, epoch: int, epochs: int) -> tuple[TrainFeed, bool]:
        """The feed for the next epoch, and whether to keep refreshing."""
        new = refreshed_feed(self.setup, self.data, feed, self.emit)
        if new is None:
            return feed, False
        if new is not feed:
            plan = self.setup.lr_plan
            plan.total_steps = epoch * feed.steps_per_epoch + (epochs - epoch) * new.steps_per_epoch
            self.emit("warning", message=f"training data refreshed before epoch {epoch + 1}: {len(new.store)} "
                                         f"training images (was {len(feed.store)}), including masks saved "
                                         "during the run")
        return new, True

    def out_of_time(self) -> bool:
        """True once --max-minutes have passed; agreed by every rank."""
        budget = self.setup.config.max_minutes
        over = bool(budget) and (time.monotonic() - self.setup.started) >= 60 * float(budget or 0)
        return _agree_any(over, self.setup.device, self.setup.dist)

    def train_epoch(self, feed: TrainFeed, epoch: int, epochs: int) -> EpochResult:
        """One pass over the training data; stops early on a signal or when the budget is used."""
        setup = self.setup
        if feed.sampler is not None:
            feed.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        setup.train_model.train()
        reset_peak_memory(setup.device)
        throttle = Throttle(0.5)
        loss_sum = torch.zeros((), device=setup.device)
        images = 0
        skipped = 0  # steps whose loss was NaN/inf (they changed no weight)
        wait = 0.0
        t0 = time.perf_counter()
        outcome = "done"
        iterator = iter(feed.loader)
        steps = feed.steps_per_epoch
        for step in range(steps):
            t_wait = time.perf_counter()
            batch_images, batch_masks = next(iterator)
            wait += time.perf_counter() - t_wait
            loss = setup.step(batch_images, batch_masks, on_warning=lambda m: self.emit("warning", message=m))
            loss_sum += torch.nan_to_num(loss, nan=0.0, posinf=0.0, neginf=0.0)
            images += batch_images.shape[0] * setup.dist.world_size
            report = throttle.ready(force=step == steps - 1)
            # Under DDP every rank checks at every step (it syncs per step anyway), so all ranks
            # take the collective in check_nonfinite at the same steps.
            if report or setup.dist.distributed:
                new_skips, give_up = self.check_nonfinite(epoch, step)
                skipped += new_skips
                if give_up:
                    outcome = "nonfinite"
                    break
            if report:
                elapsed = time.perf_counter() - t0
                self.emit("progress", epoch=epoch + 1, epochs=epochs, step=step + 1, steps=steps,
                          loss=float(loss_sum.item()) / max(1, step + 1 - skipped),
                          lr=setup.optimizer.param_groups[0]["lr"],
                          images_per_s=images / elapsed if elapsed > 0 else None)
            stop = _agree_any(bool(self.should_stop()), setup.device, setup.dist)
            over = self.out_of_time()
            if stop or over:
                outcome = "stop" if stop else "time"
                break
        seconds = time.perf_counter() - t0
        if outcome == "done" and skipped >= step + 1:
            outcome = "nonfinite"  # not one step of the epoch changed a weight
        return EpochResult(
            outcome=outcome,
            train_loss=float(loss_sum.item()) / max(1, step + 1 - skipped),
            train_seconds=seconds,
            images_per_s=images / seconds if seconds > 0 else None,
            data_wait_share=wait / seconds if seconds > 0 else None,
            peak_gpu_memory_mb=peak_memory_mb(setup.device),
        )

    def score(self, whole: bool = True, model: nn.Module | None = None) -> EvalResult:
        """The figures of `model` (default: the one training) on the validation images: all of
        them, or the run's fixed subset for an intermediate validation (when it has one)."""
        setup = self.setup
        loader = setup.val_loader if whole or setup.val_subset_loader is None else setup.val_subset_loader
        return evaluate(
            model or setup.model, loader, self.data.mapping.num_classes, setup.device, amp=setup.amp,
            mean=setup.mean, std=setup.std, channels_last=bool(setup.config.channels_last),
            loss_fn=setup.loss_fn, all_reduce=setup.dist.distributed)

    def validation_due(self, cadence: ValCadence, stats: EpochResult) -> bool:
        """An intermediate validation now keeps validating within --val-share (all ranks agree)."""
        setup = self.setup
        pixels_per_s = (stats.images_per_s or 0.0) * setup.crop[0] * setup.crop[1]
        return _agree_any(cadence.due(setup.val_subset_pixels, pixels_per_s), setup.device, setup.dist)

    def rescore_best(self, best: BestTracker) -> None:
        """A best found on the val subset, scored again on the whole split (its weights come
        from best.safetensors), so the final choice compares figures of the same images."""
        setup = self.setup
        if not best.subset:
            return
        if setup.dist.distributed:  # rank 0 wrote the file
            import torch.distributed as tdist

            tdist.barrier()
        from segstudio.engine.models.registry import create_model

        spec = setup.spec
        model = create_model(type(spec)(spec.arch, encoder=spec.encoder, num_classes=spec.num_classes,
                                        in_channels=spec.in_channels))
        ckpt.load_weights(self.run_dir.checkpoints / "best.safetensors", model)
        model = model.to(setup.device)
        if setup.config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        result = self.score(whole=True, model=model)
        best.rescored(result.metrics.miou, result.metrics.to_dict(self.data.mapping.names))

    def validate(self, epoch: int, epochs: int, stats: EpochResult, best: BestTracker, whole: bool) -> None:
        """Score the val images (all, or the subset), report the epoch, keep the best weights
        and previews."""
        setup, run = self.setup, self.run_dir
        t0 = time.perf_counter()
        result = self.score(whole)
        subset = not whole and setup.val_subset_loader is not None
        figures = result.metrics.to_dict(self.data.mapping.names)
        is_best = best.update(epoch + 1, result.metrics.miou, figures, subset=subset)
        val_s = time.perf_counter() - t0
        val_loss = result.loss if result.loss is None or math.isfinite(result.loss) else None
        event = make_event(
            "epoch_end", epoch=epoch + 1, epochs=epochs, train_loss=stats.train_loss, val_loss=val_loss,
            **figures, lr=setup.optimizer.param_groups[0]["lr"],
            seconds=stats.train_seconds + val_s, train_seconds=stats.train_seconds,
            images_per_s=stats.images_per_s, data_wait_share=stats.data_wait_share,
            peak_gpu_memory_mb=stats.peak_gpu_memory_mb, val_images=result.images,
            best_miou=best.best_miou, is_best=is_best, val_s=val_s, val_subset=subset,
        )
        if not setup.dist.is_main:
            return
        try:
            ckpt.append_jsonl(run.path / "metrics.jsonl", event)
        except OSError as exc:
            raise self.storage_failure(str(run.path / "metrics.jsonl"), exc) from exc
        self.on_event(event)
        if is_best:
            path = run.checkpoints / "best.safetensors"
            try:
                ckpt.save_weights(path, setup.model, metadata={"epoch": str(epoch + 1), "miou": repr(best.miou)})
            except OSError as exc:
                raise self.storage_failure(f"the best weights {path}", exc) from exc
            self.emit("checkpoint", epoch=epoch + 1, kind="best", path=str(path))
        if setup.preview_samples:
            try:
                paths = write_previews(
                    setup.model, list(setup.preview_samples), setup.divisor, run.path / "previews",
                    f"epoch{epoch + 1:03d}", self.data.mapping, setup.device, amp=setup.amp,
                    mean=setup.mean, std=setup.std, channels_last=bool(setup.config.channels_last),
                    shown=preview_display(self.data.project.settings))
            except (OSError, SegstudioError) as exc:
                # Pictures only: the run goes on. A full disk then ends it at the next metrics or
                # checkpoint write, whose message names the intact checkpoint and the resume.
                self.emit("warning", message=f"the previews of epoch {epoch + 1} were not saved: {exc}")
            else:
                self.emit("preview", epoch=epoch + 1, images=paths)

    # -- checkpoints and the model file -----------------------------------------------------
    def save_last(self, completed_epochs: int, best: BestTracker) -> Path:
        """The 'last' checkpoint pair. A failed write ends the run (StorageError -> TrainingError)
        with the previous pair intact; weights gone NaN are never written over it."""
        setup, folder = self.setup, self.run_dir.checkpoints
        path = folder / "last.safetensors"
        if not setup.dist.is_main:
            return path
        if not ckpt.finite_state(setup.model):
            self.emit("warning", message=f"the checkpoint of epoch {completed_epochs} was not written: the "
                                         "model's weights are NaN/inf; the previous one is kept")
            return path
        try:
            ckpt.save_last(folder, setup.model, {
                "epoch": completed_epochs,
                "optimizer": setup.optimizer.state_dict(),
                "scheduler": setup.scheduler.state_dict(),
                "scaler": setup.scaler.state_dict(),
                **best.to_state(),
                "rng": ckpt.capture_rng(),
            })
        except OSError as exc:
            raise self.storage_failure(f"the checkpoint of epoch {completed_epochs} in {folder}", exc) from exc
        self.saved_epoch = completed_epochs
        self.emit("checkpoint", epoch=completed_epochs, kind="last", path=str(path))
        return path

    def export(self, best: BestTracker) -> Path | None:
        best_path = self.run_dir.checkpoints / "best.safetensors"
        if not self.setup.dist.is_main or not best_path.is_file():
            return None
        from segstudio.engine.models.registry import create_model

        spec = self.setup.spec
        model = create_model(type(spec)(spec.arch, encoder=spec.encoder, num_classes=spec.num_classes,
                                        in_channels=spec.in_channels))
        ckpt.load_weights(best_path, model)
        target = self.models_dir / self.run_dir.run_id
        try:
            self.write_model_file(target, model.eval(), best)
        except OSError as exc:
            raise self.storage_failure(f"the model {target}", exc) from exc
        return target

    def write_model_file(self, target: Path, model: nn.Module, best: BestTracker) -> None:
        from segstudio.engine.modelfile import ModelConfig, save_model

        cfg, data = self.setup.config, self.data
        training = {
            "run_id": self.run_dir.run_id, "best_epoch": best.epoch, "epochs": cfg.epochs,
            "train_images": len(data.train), "val_images": len(data.val),
            "val_source": data.val_source, "loss": cfg.loss, "augment": cfg.augment,
            "lr": cfg.lr, "batch_size": cfg.batch_size, "val_batch_size": cfg.val_batch_size,
            "amp": self.setup.amp, "pretrained": cfg.pretrained, "started_from": self.setup.started_from,
        }
        config = ModelConfig.from_spec(self.setup.spec, data.project.classes, mean=self.setup.mean,
                                       std=self.setup.std, channels=self.setup.bands,
                                       channel_names=self.setup.band_names, input_size=self.setup.crop,
                                       metrics=best.metrics or {}, training=training)
        save_model(target, model, config)


def fit(config: TrainConfig, data: TrainData, on_event: EventHandler | None = None,
        should_stop: Callable[[], bool] | None = None) -> RunResult:
    """Train per `config` on `data`; events go to `on_event`; `should_stop` is polled each
    step (a True answer finishes the step, saves, emits `stopped` and returns)."""
    setup, feed = build_setup(config, data)
    run = open_run_dir(setup, data)
    start_epoch, best = restore(setup, run, data.project.root / "models")
    training = _Training(setup, run, data, on_event or (lambda event: None), should_stop or (lambda: False))
    return training.run(feed, start_epoch, best)
