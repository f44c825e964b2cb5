"""What a training run builds before its first step, as values: the frozen `RunSetup` (device,
model, optimiser, schedule, validation data, ...), the `TrainFeed` (training images and their
loader, a new value when masks saved during the run join) and the `RunDir` (where the run
writes). `fit` (trainer.py) builds them once and passes them explicitly.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from segstudio.core import channels, gigapixel_project
from segstudio.core.errors import SegstudioError, TrainingError
from segstudio.core.project import ImageRecord, Project
from segstudio.engine import checkpoint as ckpt
from segstudio.engine.augment import inverse_frequency, train_transform
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
    dist_context_from_env,
    init_distributed,
    resolve_amp,
    resolve_device,
)
from segstudio.engine.finetune import find_init_source, load_init_weights
from segstudio.engine.losses import build_loss
from segstudio.engine.modelfile import IMAGENET_MEAN, IMAGENET_STD
from segstudio.engine.models.registry import ModelSpec
from segstudio.engine.step import TrainStep, lr_factor, make_optimizer

Emit = Callable[..., None]
Signature = tuple[tuple[str, int, int], ...]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def mask_signature(project: Project, records: Sequence[ImageRecord]) -> Signature:
    """Which images train, and the state of their mask files: changes when a mask is saved."""
    out = []
    for rec in records:
        # a tiled mask's folder changes its modification time whenever a chunk file is replaced
        tiled = gigapixel_project.is_gigapixel_record(project, rec)
        try:
            st = (project.tiled_mask_path(rec) if tiled else project.mask_path(rec)).stat()
            out.append((rec.id, st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            out.append((rec.id, 0, 0))
    return tuple(out)


class LrPlan:
    """The learning-rate multiplier of each step. The one mutable part of the schedule: its
    total steps follow the training set when masks saved during the run join it."""

    def __init__(self, total_steps: int, warmup: int, schedule: str, budget_s: float | None,
                 started: float) -> None:
        self.total_steps = total_steps
        self.warmup = warmup
        self.schedule = schedule
        self.budget_s = budget_s
        self.started = started

    def __call__(self, step: int) -> float:
        fraction = (time.monotonic() - self.started) / self.budget_s if self.budget_s else 0.0
        return lr_factor(step, self.total_steps, self.warmup, self.schedule, fraction)


@dataclass(frozen=True)
class TrainFeed:
    """The training images and their loader."""

    store: ImageStore
    signature: Signature
    loader: DataLoader
    sampler: Sampler | None
    steps_per_epoch: int


@dataclass(frozen=True)
class RunSetup:
    """Everything fixed for the whole run (the objects inside, a model or an optimiser, change
    as they train; which objects they are does not)."""

    config: TrainConfig  # resolved: no None left to the recipe
    dist: DistContext
    device: torch.device
    amp: str
    resume_dir: Path | None
    started: float
    spec: ModelSpec
    divisor: int
    crop: tuple[int, int]
    model: nn.Module
    train_model: nn.Module  # the model, or DistributedDataParallel around it
    transform: Any
    val_store: ImageStore
    val_loader: DataLoader
    preview_samples: tuple[tuple[np.ndarray, np.ndarray], ...]
    class_weights: list[float] | None
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    lr_plan: LrPlan
    step: TrainStep
    notes: tuple[str, ...]
    # intermediate validations score a fixed, seeded subset when the val split is larger
    val_subset_loader: DataLoader | None
    val_subset_images: int | None
    val_subset_pixels: int  # pixels those validations score (for the first cost estimate)
    started_from: str | None  # the model file the weights started from (None: fresh)
    # Fixed input normalisation: ImageNet's for photos, else the training images' per-band
    # statistics / 255 (ModelConfig's convention), and the source bands the model reads.
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    bands: tuple[int, ...] = ()
    band_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunDir:
    run_id: str
    path: Path

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"


def _threads(device: torch.device) -> int:
    return 8 if device.type == "cuda" else max(1, torch.get_num_threads())


def input_normalisation(project: Project, store: ImageStore
                        ) -> tuple[tuple[float, ...], tuple[float, ...], tuple[int, ...], tuple[str, ...]]:
    """(mean, std, bands, band names) of the model's input: ImageNet's for a photo project,
    else per band over every training pixel, divided by 255 so that `(pixel / 255 - mean) /
    std` holds for raw values. Fixed for the run and recorded in the model: never per image."""
    table = channels.table_of(project.settings)
    if table is None:
        return IMAGENET_MEAN, IMAGENET_STD, (), ()
    mean, std = store.channel_statistics()
    names = tuple(table.names[i] for i in table.model_indices)
    return (tuple(v / 255.0 for v in mean), tuple(v / 255.0 for v in std), table.model_indices, names)


def make_train_transform(config: TrainConfig, crop: tuple[int, int], store: ImageStore, num_classes: int,
                         photo: bool = True) -> Any:
    """The training augmentation; with `rare_crops`, that share of crops is centred on a pixel of
    a class drawn by inverse pixel frequency over the training masks (counted once here)."""
    share = config.rare_crops or 0.0
    weights = inverse_frequency(store.pixel_counts(num_classes)[0]) if share > 0 else None
    return train_transform(config.augment, crop, rare_crop_p=share, class_weights=weights, photo=photo)


class RepeatedDataset(Dataset):
    """`dataset` `repeats` times over: a small training set fills a meaningful epoch."""

    def __init__(self, dataset: TrainDataset, repeats: int) -> None:
        self.dataset = dataset
        self.repeats = repeats
        self.transform = dataset.transform  # seeded per loader worker (data._seed_worker)

    def __len__(self) -> int:
        return len(self.dataset) * self.repeats

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.dataset[index % len(self.dataset)]


def make_feed(config: TrainConfig, dist: DistContext, device: torch.device, store: ImageStore,
              signature: Signature, transform: Any) -> TrainFeed:
    """The training loader over `store` (again after a data refresh); an epoch repeats the
    images until it has `config.min_epoch_steps` steps."""
    batch = int(config.batch_size or 1)
    per_pass = len(store) // (batch * dist.world_size)
    repeats = math.ceil(int(config.min_epoch_steps or 1) / per_pass) if per_pass else 1
    train_ds: Dataset = TrainDataset(store, transform)
    if repeats > 1:
        train_ds = RepeatedDataset(train_ds, repeats)  # type: ignore[arg-type]
    sampler = None
    if dist.distributed:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(train_ds, num_replicas=dist.world_size, rank=dist.rank,
                                     shuffle=True, seed=config.seed, drop_last=True)
    generator = torch.Generator()
    generator.manual_seed(config.seed)
    loader = make_loader(train_ds, batch_size=batch, shuffle=True, drop_last=True,
                         workers=int(config.workers or 0), pin_memory=device.type == "cuda",
                         sampler=sampler, generator=generator)
    if len(loader) == 0:
        raise TrainingError(f"{len(store)} training images do not fill one batch of {batch}; "
                            "lower --batch-size")
    return TrainFeed(store, signature, loader, sampler, len(loader))


def build_setup(config: TrainConfig, data: TrainData) -> tuple[RunSetup, TrainFeed]:
    """Device, data, model, loss, optimiser and schedule for `config` on `data`."""
    from segstudio.engine.models.registry import create_model, required_divisor

    dist = dist_context_from_env()
    device = resolve_device(config.device, dist)
    init_distributed(dist, device)
    started = time.monotonic()
    config.validate()
    resume_dir = Path(config.resume) if config.resume else None
    amp = resolve_amp(config.amp, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    seed_everything(config.seed + dist.rank)
    train_store = ImageStore(data.project, data.train, data.mapping, config.cache_mb, _threads(device),
                             crops="random")
    val_store = ImageStore(data.project, data.val, data.mapping, config.cache_mb, _threads(device))
    signature = mask_signature(data.project, data.train)
    memory = torch.cuda.get_device_properties(device).total_memory / 2**20 if device.type == "cuda" else None
    cfg = resolve_config(config, device.type, len(train_store), dist.world_size,  # gigapixel: its crops
                         default_workers(device, train_store.cached), memory)

    mean, std, bands, band_names = input_normalisation(data.project, train_store)
    spec = ModelSpec(cfg.arch, encoder=cfg.encoder or "resnet34", num_classes=data.mapping.num_classes,
                     pretrained=None if resume_dir else cfg.pretrained, in_channels=len(bands) or 3)
    divisor = required_divisor(spec)
    notes: list[str] = list(data.warnings)
    source = None if resume_dir else find_init_source(cfg.init_from, data.project, spec, data.mapping, notes)
    if source is not None:  # its weights replace the encoder's: no need to fetch ImageNet's
        spec = ModelSpec(spec.arch, encoder=spec.encoder, num_classes=spec.num_classes, pretrained=None,
                         in_channels=spec.in_channels)
    if cfg.refresh_data and dist.distributed:
        notes.append("--refresh-data works in single-process runs only; this run keeps its starting images")
    model = create_model(spec, warnings=notes)
    if source is not None:
        load_init_weights(source, model)
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)

    crop = crop_for(train_store.extents, int(cfg.crop_size or 256), divisor)
    train_store.window = crop  # gigapixel images give windows of the crop itself
    transform = make_train_transform(cfg, crop, train_store, data.mapping.num_classes, photo=not bands)
    transform.set_random_seed(cfg.seed + dist.rank)
    batch = int(cfg.batch_size or 1)
    feed = make_feed(cfg, dist, device, train_store, signature, transform)
    val_ds = EvalDataset(val_store, divisor)
    shard = range(dist.rank, len(val_ds), dist.world_size)
    val_loader = make_loader(
        val_ds, batch_sampler=SizeGroupedBatches(val_ds, int(cfg.val_batch_size or batch), shard),
        workers=0 if val_store.cached else min(4, int(cfg.workers or 0)), pin_memory=device.type == "cuda")
    previews = tuple(val_store[i] for i in range(min(cfg.preview_images, len(val_store))))
    subset_loader, subset_images, subset_pixels = None, None, sum(h * w for h, w in val_store.sizes)
    if 0 < cfg.val_subset < len(val_ds):
        chosen = sorted(np.random.default_rng(cfg.seed).choice(len(val_ds), cfg.val_subset, replace=False).tolist())
        subset_images, subset_pixels = len(chosen), sum(val_store.sizes[i][0] * val_store.sizes[i][1] for i in chosen)
        subset_loader = make_loader(
            val_ds, batch_sampler=SizeGroupedBatches(val_ds, int(cfg.val_batch_size or batch),
                                                     chosen[dist.rank::dist.world_size]),
            workers=0 if val_store.cached else min(4, int(cfg.workers or 0)), pin_memory=device.type == "cuda")

    weights = None
    if cfg.class_weights == "median_frequency":
        weights = median_frequency_weights(train_store, data.mapping.num_classes)
    loss_fn = build_loss(cfg.loss, weights).to(device)
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, device)
    total_steps = int(cfg.epochs or 1) * feed.steps_per_epoch
    warmup = min(total_steps // 2, round(cfg.warmup_epochs * feed.steps_per_epoch))
    plan = LrPlan(total_steps, warmup, cfg.schedule, cfg.max_minutes * 60 if cfg.max_minutes else None, started)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, plan)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
    train_model: nn.Module = model
    if dist.distributed:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    step = TrainStep(train_model, loss_fn, optimizer, scheduler, scaler, device, amp, bool(cfg.channels_last),
                     cfg.grad_clip, mean, std)
    setup = RunSetup(cfg, dist, device, amp, resume_dir, started, spec, divisor, crop, model, train_model,
                     transform, val_store, val_loader, previews, weights, loss_fn, optimizer, scheduler, scaler,
                     plan, step, tuple(notes), subset_loader, subset_images, subset_pixels,
                     source.label if source else None, mean, std, bands, band_names)
    return setup, feed


def refreshed_feed(setup: RunSetup, data: TrainData, feed: TrainFeed, emit: Emit) -> TrainFeed | None:
    """Masks saved since the last epoch: re-read the project and, when its labelled training
    images or their mask files changed, a new feed (`feed` itself when nothing changed).
    None when the classes changed: the run stops refreshing. Validation stays the run's own,
    so the curves remain comparable."""
    try:
        project = Project.open(data.project.root)
        if ClassMapping.from_classes(project.classes) != data.mapping:
            emit("warning", message="the classes changed during the run; new labels will be used by the next run")
            return None
        val_ids = {rec.id for rec in data.val}
        records = [rec for rec in prepare_data(project, data.mapping).train if rec.id not in val_ids]
        signature = mask_signature(project, records)
        if signature == feed.signature:
            return feed
        store = ImageStore(project, records, data.mapping, setup.config.cache_mb, _threads(setup.device),
                           crops="random", window=setup.crop)
    except SegstudioError as exc:
        emit("warning", message=f"kept the current training images: {exc}")
        return feed
    return make_feed(setup.config, setup.dist, setup.device, store, signature, setup.transform)


def open_run_dir(setup: RunSetup, data: TrainData) -> RunDir:
    """The run's folder (the resumed one, or a new one named by rank 0); its config.json."""
    if setup.resume_dir is not None:
        run_dir = setup.resume_dir
    else:
        runs = data.project.root / "runs"
        run_dir = runs / ckpt.new_run_id(runs, setup.config.run_name, setup.spec.arch, setup.spec.encoder)
    run_id = run_dir.name
    if setup.dist.distributed:  # all ranks must agree on the folder rank 0 chose
        import torch.distributed as tdist

        box = [run_id]
        tdist.broadcast_object_list(box, src=0)
        run_id = box[0]
        run_dir = run_dir.parent / run_id
    folder = RunDir(run_id, run_dir)
    if setup.dist.is_main:
        folder.checkpoints.mkdir(parents=True, exist_ok=True)
        saved = dict(setup.config.to_dict(), resume=None)
        saved["spec"] = setup.spec.to_dict()
        saved["classes"] = list(data.mapping.names)
        saved["started_from"] = setup.started_from
        ckpt.write_config(run_dir, saved)
    return folder
