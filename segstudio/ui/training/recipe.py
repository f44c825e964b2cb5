"""The app's side of the one-click recipe: the engine's recipe (engine/recipe.py) fed with the
device probe's facts, as a `TrainConfig`, and the `segstudio train` command line built from it
(engine/config.py's `config_to_argv`), which the app passes to its child process. Qt-free; no
torch (engine/config.py and engine/recipe.py import none).
"""

from __future__ import annotations

import sys
from pathlib import Path

from segstudio.engine.config import TrainConfig, config_to_argv
from segstudio.engine.recipe import Machine, one_click
from segstudio.ui.training.probe import DeviceReport


def summary(config: TrainConfig) -> str:
    """One line for the panel: what a click on Train will do."""
    parts = [f"{config.arch} / {config.encoder or 'default encoder'}"]
    if config.epochs:
        parts.append(f"{config.epochs} epochs")
    if config.batch_size:
        parts.append(f"batch {config.batch_size}")
    if config.crop_size:
        parts.append(f"{config.crop_size} px crops")
    if config.amp != "off":
        parts.append(f"AMP {config.amp}")
    return ", ".join(parts)


def default_options(device: DeviceReport, train_images: int) -> TrainConfig:
    """The one-click recipe for this machine and this many labelled training images."""
    machine = Machine(device.device_type if device.gpu else "cpu", device.memory_mb)
    recipe = one_click(machine, train_images, interactive=True)
    return TrainConfig(arch="unet", encoder=recipe.encoder, batch_size=recipe.batch_size,
                       crop_size=recipe.crop_size, amp=recipe.amp, epochs=recipe.epochs, device="auto",
                       min_epoch_steps=recipe.min_epoch_steps, val_share=recipe.val_share,
                       rare_crops=recipe.rare_crops)


def train_command(project_root: Path, config: TrainConfig, host: str | None = None) -> list[str]:
    """The full child command line: this Python, `-m segstudio train PROJECT --events jsonl ...`;
    with `host`, `--host HOST` too: the child syncs, starts the run there and streams its events."""
    root = str(Path(project_root).resolve())
    where = ["--host", host] if host else []
    return [sys.executable, "-m", "segstudio", "train", root, "--events", "jsonl", *where, *config_to_argv(config)]


def attach_command(project_root: Path, run_id: str) -> list[str]:
    """Re-attach to a run on a host: every event received so far, then the new ones as they come."""
    return [sys.executable, "-m", "segstudio", "runs", "attach", str(Path(project_root).resolve()), run_id,
            "--events", "jsonl", "--replay"]


def resume_command(project_root: Path, run_id: str, device: str = "auto", epochs: int | None = None,
                   host: str | None = None) -> list[str]:
    """Continue a run from its last checkpoint; the run keeps its own recipe (only the device
    and the number of epochs may change, see cli/engine_cmds.py). A run of a host resumes
    there, where its checkpoint is, on the device it had (this computer's is not the host's)."""
    where = ["--host", host] if host else ["--device", device]
    command = [sys.executable, "-m", "segstudio", "train", str(Path(project_root).resolve()), "--events",
               "jsonl", "--resume", run_id, *where]
    if epochs is not None:
        command += ["--epochs", str(epochs)]
    return command
