"""The small-data recipe (issue 10): validation by time on a fixed subset, epochs of enough
steps, and fine-tuning from the project's active model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from segstudio.core.classes import ClassTable, load_class_file
from segstudio.core.errors import TrainingError
from segstudio.core.project import Project
from segstudio.core.runs import set_active_model
from segstudio.engine import checkpoint as ckpt
from segstudio.engine.config import TrainConfig
from segstudio.engine.data import prepare_data

sys.path.insert(0, str(Path(__file__).resolve().parent))  # camvid_fixtures, any import mode
from camvid_fixtures import make_camvid_project, require_camvid  # noqa: E402


def camvid_small_project(root: Path, n_train: int, n_val: int, width: int = 80) -> Project:
    """`n_train` CamVid train frames and `n_val` val frames, shrunk to `width` px wide."""
    camvid = require_camvid()
    project = Project.create(root, load_class_file(camvid / "classes.json"), name=root.name)
    (root / "images").mkdir(exist_ok=True)
    for folder, count, step in (("train", n_train, 8), ("val", n_val, 1)):
        names = sorted(p.name for p in (camvid / folder).glob("*.png"))[::step][:count]
        for name in names:
            image = cv2.imread(str(camvid / folder / name), cv2.IMREAD_COLOR)
            mask = cv2.imread(str(camvid / f"{folder}annot" / name), cv2.IMREAD_GRAYSCALE)
            size = (width, round(width * image.shape[0] / image.shape[1]))
            target = root / "images" / f"{folder}_{name}"
            cv2.imwrite(str(target), cv2.resize(image, size, interpolation=cv2.INTER_AREA))
            record = project.add_image(target, split=folder)
            mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST).astype(np.uint8)
            project.write_mask(record, mask, status="labeled", save_manifest=False)
    project.save()
    return project


@pytest.fixture()
def one_thread() -> Any:
    """One torch thread: a 2-core machine shared with other work trains several times faster
    than with two threads fighting for it (a timed run needs a few epochs to show its cadence)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_validation_takes_a_bounded_share_of_a_timed_run(tmp_path: Path, one_thread: Any) -> None:
    from segstudio.engine.trainer import fit

    project = camvid_small_project(tmp_path / "p", n_train=20, n_val=100, width=64)
    # Epochs planned by the recipe (no --epochs): validation by time. 10 steps an epoch (not
    # the recipe's 50) so that a loaded 2-core machine still sees several epochs in 45 s.
    config = TrainConfig(device="cpu", encoder="resnet18", pretrained=None, batch_size=4, crop_size=32,
                         workers=0, max_minutes=0.75, preview_images=1, augment="light", loss="ce", lr=2e-3,
                         min_epoch_steps=10)
    events: list[dict[str, Any]] = []
    fit(config, prepare_data(project), events.append)
    started = next(e for e in events if e["event"] == "run_started")
    ends = [e for e in events if e["event"] == "epoch_end"]
    finished = events[-1]
    assert finished["event"] == "run_finished" and finished["reason"] == "max_minutes"
    # 20 images in batches of 4 are 5 steps a pass: an epoch repeats them to 10 steps
    assert started["steps_per_epoch"] == 10 and started["config"]["val_share"] == pytest.approx(0.15)
    assert started["val_subset"] == 32 and started["val_images"] == 100
    intermediate = [e for e in ends if e["val_subset"]]
    run_s = finished["minutes"] * 60
    share = sum(e["val_s"] for e in intermediate) / run_s
    print(f"cadence: {finished['epochs']} epochs, {len(intermediate)} subset validations, "
          f"{sum(e['val_s'] for e in intermediate):.2f} s of {run_s:.1f} s = {share:.1%}; "
          f"all validation {finished['val_seconds']:.2f} s; val_s {[round(e['val_s'], 2) for e in ends]}")
    assert intermediate and all(e["val_images"] == 32 for e in intermediate)
    assert len(intermediate) < finished["epochs"] - 1  # some epochs were not validated
    assert not ends[-1]["val_subset"] and ends[-1]["val_images"] == 100  # the last epoch: every image
    assert share <= 0.17
    # the best's figures are those of the whole split
    best = finished["best"]
    assert best["miou"] >= max(e["miou"] for e in ends if not e["val_subset"]) - 1e-9


def test_small_data_epochs_have_enough_steps() -> None:
    from segstudio.engine.config import resolve_config

    few = resolve_config(TrainConfig(), "cpu", 20)  # batches of 8: 2 steps a pass
    assert (few.min_epoch_steps, few.epochs, few.val_share) == (50, 12, 0.15)  # 600 steps, 12 x 50
    explicit = resolve_config(TrainConfig(epochs=3), "cpu", 20)
    assert (explicit.min_epoch_steps, explicit.epochs, explicit.val_share) == (1, 3, 0.0)  # as asked


@pytest.fixture(scope="module")
def active_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A tiny project with one trained model made active."""
    from segstudio.engine.trainer import fit

    project = make_camvid_project(tmp_path_factory.mktemp("ft") / "p", n_train=4, n_val=2, scale=0.25)
    config = TrainConfig(device="cpu", encoder="resnet18", pretrained=None, epochs=1, batch_size=2, crop_size=64,
                         workers=0, patience=0, preview_images=0, run_name="first", init_from="none")
    result = fit(config, prepare_data(project))
    assert result.model_dir is not None
    set_active_model(project, result.model_dir)
    return Project.open(project.root)


def test_a_run_starts_from_the_active_model_when_it_fits(active_project: Project) -> None:
    from segstudio.engine.modelfile import load_model
    from segstudio.engine.run_setup import build_setup
    from segstudio.engine.trainer import fit

    saved, _ = load_model(active_project.root / "models" / "first", "cpu")
    name, tensor = next((k, v) for k, v in saved.state_dict().items() if v.dtype.is_floating_point and v.dim() == 4)
    config = TrainConfig(device="cpu", encoder="resnet18", pretrained=None, epochs=1, batch_size=2, crop_size=64,
                         workers=0)
    setup, _ = build_setup(config, prepare_data(active_project))
    assert setup.started_from == "first"
    assert torch.equal(setup.model.state_dict()[name], tensor)  # the first step starts from the saved weights
    fresh, _ = build_setup(TrainConfig(**{**config.to_dict(), "init_from": "none"}), prepare_data(active_project))
    assert fresh.started_from is None and not torch.equal(fresh.model.state_dict()[name], tensor)
    result = fit(config, prepare_data(active_project))  # recorded in the run and model configs
    assert ckpt.read_config(result.run_dir)["started_from"] == "first"
    assert load_model(result.model_dir, "cpu")[1].training["started_from"] == "first"


def test_a_model_that_does_not_fit_is_refused_or_passed_over(active_project: Project, tmp_path: Path) -> None:
    from segstudio.engine.run_setup import build_setup
    from segstudio.engine.trainer import fit

    config = TrainConfig(device="cpu", encoder="resnet18", pretrained=None, epochs=1, batch_size=2, crop_size=64,
                         workers=0, patience=0, preview_images=0)
    data = prepare_data(active_project)
    with pytest.raises(TrainingError, match="its architecture is unet, this run trains fpn"):
        build_setup(TrainConfig(**{**config.to_dict(), "arch": "fpn", "init_from": "first"}), data)
    # another project with other classes: explicit refuses, auto starts fresh and says why
    other = Project.create(tmp_path / "other", ClassTable.from_names(["bg", "road"]))
    image = np.zeros((64, 64, 3), np.uint8)
    for i in range(2):
        path = tmp_path / f"im{i}.png"
        cv2.imwrite(str(path), image)
        record = other.add_image(path, split="train" if i == 0 else "val")
        other.write_mask(record, np.full((64, 64), i % 2, np.uint8), status="labeled", save_manifest=False)
    set_active_model(other, active_project.root / "models" / "first")
    explicit = TrainConfig(**{**config.to_dict(), "batch_size": 1, "init_from": str(active_project.root / "models" / "first")})
    with pytest.raises(TrainingError, match="its classes .* are not the project's"):
        build_setup(explicit, prepare_data(Project.open(other.root)))
    events: list[dict[str, Any]] = []
    fit(TrainConfig(**{**config.to_dict(), "batch_size": 1}), prepare_data(Project.open(other.root)), events.append)
    started = next(e for e in events if e["event"] == "run_started")
    assert started["started_from"] is None
    assert ckpt.read_config(Path(started["run_dir"]))["started_from"] is None
    assert any("not starting from the active model" in e["message"] for e in events if e["event"] == "warning")
