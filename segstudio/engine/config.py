"""Training settings, defined once: each `TrainConfig` field carries its command-line form.

A field's metadata holds its help text, choices and how its default reads, so the
`segstudio train` parser (`add_train_arguments`), the app's child command line
(`config_to_argv`) and the config itself can never disagree: the flag is the field name
with dashes (`batch_size` -> `--batch-size`). Every field left None is filled by
`resolve_config` from the one-click recipe (engine/recipe.py) for the device and the data,
so a bare `segstudio train PROJECT` is a sound recipe. Nothing here imports torch, so
building the CLI parser (every `segstudio` command) stays fast.
"""

from __future__ import annotations

import argparse
from dataclasses import Field, asdict, dataclass, field, fields, replace
from typing import Any

from segstudio.core.errors import TrainingError

PRESETS = ("none", "light", "standard", "strong")
LOSSES = ("ce", "dice", "ce_dice", "focal", "lovasz")
SCHEDULES = ("cosine", "onecycle")
CLASS_WEIGHTS = ("none", "median_frequency")
AMP_MODES = ("auto", "bf16", "fp16", "off")
_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}


def option(default: Any, help: str, *, choices: tuple[str, ...] = (), default_text: str | None = None,  # noqa: A002
           noun: str | None = None, metavar: str | None = None, none_word: str | None = None,
           on_resume: bool = False) -> Any:
    """A TrainConfig field with its command-line form. `default_text` says what None means;
    `noun` names the option in validation errors; `none_word` is how None is spelled on the
    command line; `on_resume` lets the option change when a run is resumed."""
    return field(default=default, metadata={
        "help": help, "choices": choices, "default_text": default_text, "noun": noun, "metavar": metavar,
        "none_word": none_word, "on_resume": on_resume})


@dataclass(frozen=True)
class TrainConfig:
    arch: str = option("unet", "architecture")
    encoder: str | None = option(None, "encoder", default_text="resnet34 on a GPU, resnet18 on a CPU")
    pretrained: str | None = option("imagenet", "encoder weights: imagenet, none, or a weights file",
                                    none_word="none")
    epochs: int | None = option(None, "epochs", default_text="from the dataset size", on_resume=True)
    batch_size: int | None = option(None, "images per step",
                                    default_text="fitted to the GPU's memory, 8 on a CPU")
    lr: float = option(5e-4, "peak learning rate of AdamW")
    weight_decay: float = option(1e-4, "AdamW weight decay")
    schedule: str = option("cosine", "learning-rate schedule", choices=SCHEDULES, noun="schedule")
    warmup_epochs: float = option(1.0, "epochs of linear learning-rate warm-up")
    grad_clip: float = option(1.0, "clip the gradient norm to this (0 = off)")
    crop_size: int | None = option(None, "training crop in pixels", default_text="512 GPU / 256 CPU")
    loss: str = option("ce_dice", "loss", choices=LOSSES, noun="loss")
    augment: str = option("standard", "augmentation preset", choices=PRESETS, noun="augmentation")
    class_weights: str = option("none", "class weighting of the loss", choices=CLASS_WEIGHTS,
                                noun="class weighting")
    amp: str = option("auto", "mixed precision", choices=AMP_MODES, on_resume=True)
    channels_last: bool | None = option(None, "channels-last memory layout", default_text="on with CUDA")
    device: str = option("auto", "device: auto, cuda, cuda:N, mps or cpu", on_resume=True)
    workers: int | None = option(None, "data loader processes", default_text="from the machine", on_resume=True)
    max_minutes: float | None = option(None, "stop (and finish properly) after this long", default_text="no limit",
                                       on_resume=True)
    patience: int | None = option(None, "early stopping: epochs without val mIoU gain (0 = off)",
                                  default_text="a quarter of the epochs, at least 10", on_resume=True)
    seed: int = option(0, "random seed")
    run_name: str | None = option(None, "name of the run folder", default_text="time and model")
    cache_mb: float = option(3072.0, "memory in MB for decoded images kept between epochs")
    val_batch_size: int | None = option(None, "images per validation batch", default_text="the batch size")
    preview_images: int = option(4, "validation images drawn as previews after each validation")
    checkpoint_every_s: float = option(120.0, "seconds between 'last' checkpoints")
    min_epoch_steps: int | None = option(None, "an epoch repeats the training images until it has this many steps",
                                         default_text="50 when the epochs come from the recipe, else one pass")
    val_share: float | None = option(None, "the most of the training time intermediate validations may take "
                                           "(0 = validate after every epoch)",
                                     default_text="0.15 when the epochs come from the recipe, else 0")
    val_subset: int = option(32, "val images scored by intermediate validations when the split is larger (0 = all); "
                                 "the last epoch and the best model are scored on all")
    rare_crops: float | None = option(None, "share of training crops centred on a pixel of a rare class, drawn by "
                                            "inverse pixel frequency (0 = plain random crops)",
                                      default_text="0.3 when the epochs come from the recipe, else 0")
    init_from: str = option("auto", "start from: auto (the project's active model when its classes, architecture "
                                    "and encoder match), none, or a model folder / id under PROJECT/models")
    resume: str | None = option(None, "continue a run (its id under PROJECT/runs, or its folder)", metavar="RUN")
    # Re-read the project at each epoch start and train on masks saved since (the app's
    # 'use new labels from the next epoch'); validation images stay fixed for comparable curves.
    refresh_data: bool = option(False, "at each epoch, also train on masks labelled or changed since the run "
                                       "started", on_resume=True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def validate(self) -> None:
        checks = [
            (self.lr > 0, f"--lr must be positive, got {self.lr}"),
            (self.epochs is None or self.epochs >= 1, f"--epochs must be 1 or more, got {self.epochs}"),
            (self.batch_size is None or self.batch_size >= 1, f"--batch-size must be 1 or more, got {self.batch_size}"),
            (self.crop_size is None or self.crop_size >= 32, f"--crop-size must be 32 or more, got {self.crop_size}"),
            (self.workers is None or self.workers >= 0, f"--workers must be 0 or more, got {self.workers}"),
            (self.max_minutes is None or self.max_minutes > 0, "--max-minutes must be positive"),
            (self.min_epoch_steps is None or self.min_epoch_steps >= 1,
             f"--min-epoch-steps must be 1 or more, got {self.min_epoch_steps}"),
            (self.val_share is None or 0 <= self.val_share < 1, f"--val-share must be in [0, 1), got {self.val_share}"),
            (self.rare_crops is None or 0 <= self.rare_crops <= 1, f"--rare-crops must be in [0, 1], got {self.rare_crops}"),
            (self.val_subset >= 0, f"--val-subset must be 0 or more, got {self.val_subset}"),
        ]
        for spec in fields(self):
            choices, noun = spec.metadata["choices"], spec.metadata["noun"]
            value = getattr(self, spec.name)
            if noun and value not in choices:
                checks.insert(0, (False, f"unknown {noun} '{value}'; use one of {', '.join(choices)}"))
        for ok, message in checks:
            if not ok:
                raise TrainingError(message)


RESUME_OVERRIDES = tuple(f.name for f in fields(TrainConfig) if f.metadata["on_resume"])


# -- the command-line form --------------------------------------------------------------------
def flag(spec: Field[Any]) -> str:
    return "--" + spec.name.replace("_", "-")


def _value_type(spec: Field[Any]) -> type:
    return _TYPES[str(spec.type).split("|")[0].strip()]


def _help(spec: Field[Any]) -> str:
    meta = spec.metadata
    default = meta["default_text"] or (None if spec.default is None else spec.default)
    if isinstance(default, float):
        default = f"{default:g}"
    return meta["help"] if default is None or isinstance(default, bool) else f"{meta['help']} (default {default})"


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field; an option not given stays None (the field's default)."""
    for spec in fields(TrainConfig):
        meta = spec.metadata
        if _value_type(spec) is bool:
            parser.add_argument(flag(spec), action=argparse.BooleanOptionalAction, default=None, help=_help(spec))
            continue
        kwargs: dict[str, Any] = {"type": _value_type(spec), "default": None, "help": _help(spec)}
        if meta["choices"]:
            kwargs["choices"] = meta["choices"]
        if meta["metavar"]:
            kwargs["metavar"] = meta["metavar"]
        parser.add_argument(flag(spec), **kwargs)


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields given on the command line, as config values."""
    given: dict[str, Any] = {}
    for spec in fields(TrainConfig):
        value = getattr(args, spec.name, None)
        if value is None:
            continue
        none_word = spec.metadata["none_word"]
        given[spec.name] = None if none_word and str(value).lower() == none_word else value
    return given


def _text(value: Any) -> str:
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def config_to_argv(config: TrainConfig) -> list[str]:
    """The `segstudio train` flags that rebuild `config` (fields at their default are left out)."""
    argv: list[str] = []
    for spec in fields(config):
        value = getattr(config, spec.name)
        if value == spec.default:
            continue
        if isinstance(value, bool):
            argv.append(flag(spec) if value else "--no-" + flag(spec)[2:])
        elif value is None:
            if not spec.metadata["none_word"]:
                raise ValueError(f"{spec.name} has no command-line spelling for None")
            argv += [flag(spec), spec.metadata["none_word"]]
        else:
            argv += [flag(spec), _text(value)]
    return argv


def resolve_config(config: TrainConfig, device_type: str, train_images: int, world_size: int = 1,
                   workers: int = 0, memory_mb: float | None = None) -> TrainConfig:
    """Fill every None with the one-click recipe's choice for this device and dataset."""
    from segstudio.engine.recipe import Machine, one_click

    recipe = one_click(Machine(device_type, memory_mb, world_size), train_images, config)
    epochs = recipe.epochs
    patience = config.patience if config.patience is not None else max(10, -(-epochs // 4))
    return replace(
        config,
        encoder=recipe.encoder,
        batch_size=recipe.batch_size,
        crop_size=recipe.crop_size,
        epochs=epochs,
        patience=patience,
        channels_last=recipe.channels_last,
        workers=workers if config.workers is None else config.workers,
        val_batch_size=config.val_batch_size or recipe.batch_size,
        min_epoch_steps=recipe.min_epoch_steps,
        val_share=recipe.val_share,
        rare_crops=recipe.rare_crops,
    )
