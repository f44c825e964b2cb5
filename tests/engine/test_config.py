"""Training options defined once: the CLI parser and the app's argv come from TrainConfig's
field metadata, and the one-click recipe is shared by `resolve_config` and the app."""

from __future__ import annotations

import argparse
from dataclasses import fields, replace
from typing import Any

import pytest

from segstudio.core.errors import TrainingError
from segstudio.engine.config import (
    RESUME_OVERRIDES,
    TrainConfig,
    add_train_arguments,
    config_to_argv,
    given_options,
    resolve_config,
)
from segstudio.engine.recipe import Machine, one_click


def parse(argv: list[str]) -> TrainConfig:
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    return TrainConfig(**given_options(parser.parse_args(argv)))


def changed_value(name: str, default: Any, annotation: str, choices: tuple[str, ...]) -> Any:
    """A value other than the default that the field's type allows."""
    if choices:
        return next(c for c in reversed(choices) if c != default)
    if annotation.startswith("bool"):
        return not default
    if annotation.startswith("int"):
        return 7
    if annotation.startswith("float"):
        return 0.123456789  # not representable in %g: the argv must keep every digit
    return f"{name}-value"


def test_every_field_round_trips_through_the_command_line() -> None:
    values = {f.name: changed_value(f.name, f.default, str(f.type), f.metadata["choices"]) for f in fields(TrainConfig)}
    config = TrainConfig(**values)
    assert all(getattr(config, f.name) != f.default for f in fields(TrainConfig))
    argv = config_to_argv(config)
    assert parse(argv) == config
    flags = {a for a in argv if a.startswith("--")}
    assert len(flags) == len(fields(TrainConfig))  # one flag per field, none forgotten
    # and the other way round: None where a default exists, False where the default is None
    other = replace(TrainConfig(), pretrained=None, channels_last=False, lr=30.0)
    argv = config_to_argv(other)
    assert argv == ["--pretrained", "none", "--lr", "30", "--no-channels-last"]
    assert parse(argv) == other
    assert config_to_argv(TrainConfig()) == [] and parse([]) == TrainConfig()


def test_parser_offers_the_metadata_choices_and_help() -> None:
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    actions = {a.dest: a for a in parser._actions}
    assert actions["loss"].choices == ("ce", "dice", "ce_dice", "focal", "lovasz")
    assert "default ce_dice" in actions["loss"].help
    assert "8 on a CPU" in actions["batch_size"].help
    with pytest.raises(SystemExit):
        parser.parse_args(["--loss", "hinge"])
    assert parse(["--refresh-data"]).refresh_data is True
    assert set(RESUME_OVERRIDES) == {"epochs", "max_minutes", "device", "workers", "amp", "patience",
                                     "refresh_data"}


def test_validation_names_the_option_and_the_choices() -> None:
    with pytest.raises(TrainingError, match="unknown augmentation 'huge'; use one of none, light"):
        TrainConfig(augment="huge").validate()
    with pytest.raises(TrainingError, match="--epochs must be 1 or more"):
        TrainConfig(epochs=0).validate()


def test_one_recipe_for_the_cli_and_the_app() -> None:
    # The app's recipe (explicit flags) resolves to itself, apart from what only the engine knows.
    for machine in (Machine("cpu"), Machine("cuda", 24_000), Machine("cuda", 4_000), Machine("mps")):
        for images in (5, 20, 367):
            app = one_click(machine, images, interactive=True)
            headless = resolve_config(TrainConfig(), machine.device_type, images, memory_mb=machine.memory_mb)
            assert (headless.encoder, headless.crop_size) == (app.encoder, app.crop_size)
            if machine.gpu:
                assert (headless.batch_size, headless.epochs) == (app.batch_size, app.epochs)
            # the same small-data shape: epoch length, validation share and rare-class crops
            assert (headless.min_epoch_steps, headless.val_share, headless.rare_crops) == (
                app.min_epoch_steps, app.val_share, app.rare_crops)
            chosen = TrainConfig(encoder=app.encoder, batch_size=app.batch_size, crop_size=app.crop_size,
                                 epochs=app.epochs, amp=app.amp)
            assert resolve_config(chosen, machine.device_type, images).epochs == app.epochs
    # a CPU headless run: batches of 8; the watched app: 4 (documented in engine/recipe.py)
    assert resolve_config(TrainConfig(), "cpu", 367).batch_size == 8
    assert one_click(Machine("cpu"), 367, interactive=True).batch_size == 4
    assert resolve_config(TrainConfig(), "cuda", 367, memory_mb=80_000).batch_size == 32


def test_a_time_budget_without_epochs_trains_for_the_budget() -> None:
    from segstudio.engine.recipe import EPOCH_RANGE

    planned = resolve_config(TrainConfig(), "cuda", 367, memory_mb=80_000)
    budgeted = resolve_config(TrainConfig(max_minutes=20), "cuda", 367, memory_mb=80_000)
    assert planned.epochs < EPOCH_RANGE[1]
    assert budgeted.epochs == EPOCH_RANGE[1]
    # the budget's run keeps the recipe's epoch shape and validation share
    assert (budgeted.min_epoch_steps, budgeted.val_share) == (planned.min_epoch_steps, planned.val_share)
    # explicit epochs win over the budget
    assert resolve_config(TrainConfig(max_minutes=20, epochs=7), "cpu", 367).epochs == 7
