"""Training faults (issue 15): a full disk while writing a checkpoint, a damaged checkpoint on
resume, a loss gone NaN, the trainer killed at random. Each ends with a clear message and
leaves the last good checkpoint and the best model loadable. Tiny generated data at 64 px."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from segstudio.core.classes import ClassTable
from segstudio.core.errors import TrainingError
from segstudio.core.project import Project
from segstudio.engine import checkpoint as ckpt
from segstudio.engine.config import TrainConfig
from segstudio.engine.data import prepare_data
from segstudio.engine.models.registry import ModelSpec, create_model
from segstudio.engine.step import TrainStep

sys.path.insert(0, str(Path(__file__).resolve().parent))  # camvid_fixtures, any import mode
from camvid_fixtures import child_env, parse_events, segstudio_cmd  # noqa: E402

NUM_CLASSES = 3


def make_shapes_project(root: Path, n_train: int = 4, n_val: int = 2) -> Project:
    """Images of 64x64 px: a dark background, a red box (class 1) and a blue disc (class 2)."""
    project = Project.create(root, ClassTable.from_names(["background", "box", "disc"]), name="shapes")
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    yy, xx = np.mgrid[:64, :64]
    for i in range(n_train + n_val):
        mask = np.zeros((64, 64), np.uint8)
        x0, y0 = rng.integers(2, 30, 2)
        mask[y0:y0 + 20, x0:x0 + 24] = 1
        cx, cy = rng.integers(40, 56, 2)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 < 60] = 2
        image = rng.integers(0, 40, (64, 64, 3)).astype(np.uint8)
        image[mask == 1] = (200, 40, 40)
        image[mask == 2] = (40, 40, 220)
        path = root / "images" / f"im{i}.png"
        Image.fromarray(image).save(path)
        record = project.add_image(path, split="train" if i < n_train else "val")
        project.write_mask(record, mask, status="labeled", save_manifest=False)
    project.save()
    return project


def tiny_config(**changes: Any) -> TrainConfig:
    values: dict[str, Any] = dict(device="cpu", arch="unet", encoder="resnet18", pretrained=None, epochs=2,
                                  batch_size=2, crop_size=64, workers=0, patience=0, preview_images=0, seed=1,
                                  checkpoint_every_s=0.0, val_share=0.0, min_epoch_steps=1, lr=2e-3)
    values.update(changes)
    return TrainConfig(**values)


def fit_run(project: Project, config: TrainConfig, on_event: Any = None) -> list[dict[str, Any]]:
    from segstudio.engine.trainer import fit

    events: list[dict[str, Any]] = []

    def record(event: dict[str, Any]) -> None:
        events.append(event)
        if on_event is not None:
            on_event(event)

    fit(config, prepare_data(project), record)
    return events


def loads_checkpoint(checkpoints: Path) -> int:
    """The epoch of the 'last' pair, after loading both halves into a fresh model."""
    state = ckpt.load_state(checkpoints / "last.pt")
    model = create_model(ModelSpec("unet", encoder="resnet18", num_classes=NUM_CLASSES))
    meta = ckpt.load_weights(checkpoints / "last.safetensors", model)
    assert int(meta["epoch"]) == int(state["epoch"])
    return int(state["epoch"])


def temp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# -- disk full while writing a checkpoint ---------------------------------------------------
@pytest.mark.parametrize("fault", ["os.replace", "torch.save"])
def test_disk_full_at_a_checkpoint_keeps_the_previous_one_and_ends_with_what_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str) -> None:
    project = make_shapes_project(tmp_path / "p")
    failing = {"on": False}
    real_replace, real_save = os.replace, torch.save

    def full_replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if failing["on"] and Path(dst).name.startswith("last."):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst, *args, **kwargs)

    def full_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        if failing["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full_replace)
    monkeypatch.setattr(torch, "save", full_save) if fault == "torch.save" else None

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "checkpoint" and event["kind"] == "last":
            failing["on"] = True  # the disk fills up after the first checkpoint

    with pytest.raises(TrainingError) as caught:
        fit_run(project, tiny_config(epochs=3, run_name="full"), on_event)
    message = str(caught.value)
    assert "could not write the checkpoint of epoch 2" in message
    assert "epoch 1) is intact" in message and "--resume full" in message
    if fault == "os.replace":
        assert "disk is full" in message
    checkpoints = project.root / "runs" / "full" / "checkpoints"
    assert loads_checkpoint(checkpoints) == 1
    assert temp_files(checkpoints) == []
    ckpt.load_weights(checkpoints / "best.safetensors",
                      create_model(ModelSpec("unet", encoder="resnet18", num_classes=NUM_CLASSES)))


def test_a_pair_torn_between_its_two_renames_is_named_on_resume(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    model = nn.Linear(2, 2)
    folder = tmp_path / "run" / "checkpoints"
    ckpt.save_last(folder, model, {"epoch": 1})
    real_replace = os.replace

    def fail_on_state(src: Any, dst: Any) -> None:
        if Path(dst).name == "last.pt":
            raise OSError(errno.EIO, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", fail_on_state)
    with pytest.raises(OSError, match="input/output error"):
        ckpt.save_last(folder, model, {"epoch": 2})
    assert temp_files(folder) == []
    assert ckpt.load_state(folder / "last.pt")["epoch"] == 1
    assert ckpt.load_weights(folder / "last.safetensors", model)["epoch"] == "2"  # what restore checks


def test_a_failed_metrics_append_is_cut_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "metrics.jsonl"
    ckpt.append_jsonl(path, {"epoch": 1})

    class FullFile:
        def __init__(self, handle: Any) -> None:
            self.handle = handle

        def __enter__(self) -> FullFile:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

        def tell(self) -> int:
            return self.handle.tell()

        def write(self, data: bytes) -> None:
            self.handle.write(data[:5])  # half a line reaches the disk, then it is full
            self.handle.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    real_open = Path.open
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: FullFile(real_open(self, *a, **k)))
    with pytest.raises(OSError):
        ckpt.append_jsonl(path, {"epoch": 2})
    monkeypatch.undo()
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"epoch": 1}]


def test_previews_that_cannot_be_written_are_a_warning_not_the_end(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Previews are pictures: a full disk there must not end the run without the resume advice
    (seen on a remote host whose disk filled at epoch003_0.png); the next checkpoint or metrics
    write is what ends a run, with that advice."""
    from segstudio.core.atomic import storage_error
    from segstudio.engine import trainer

    def full(*args: object, **kwargs: object) -> list[str]:
        raise storage_error(tmp_path / "previews" / "epoch001_0.png", OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(trainer, "write_previews", full)
    project = make_shapes_project(tmp_path / "p")
    events = fit_run(project, tiny_config(preview_images=2))
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert any("the previews of epoch 1 were not saved" in m and "disk is full" in m for m in warnings)
    assert not any(e["event"] == "preview" for e in events)
    assert events[-1]["event"] == "run_finished" and events[-1]["epochs"] == 2


# -- a damaged checkpoint at resume ---------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = make_shapes_project(tmp_path_factory.mktemp("resume") / "p")
    fit_run(project, tiny_config(epochs=1, run_name="done"))
    return project.root


def copy_project(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize("damage", ["truncated last.pt", "garbage weights", "state of another kind"])
def test_a_damaged_checkpoint_at_resume_is_a_clear_error(finished_run: Path, tmp_path: Path, damage: str) -> None:
    root = copy_project(finished_run, tmp_path / "copy")
    run_dir = root / "runs" / "done"
    folder = run_dir / "checkpoints"
    if damage == "truncated last.pt":
        data = (folder / "last.pt").read_bytes()
        (folder / "last.pt").write_bytes(data[: len(data) // 2])
        named = "last.pt"
    elif damage == "garbage weights":
        (folder / "last.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
        named = "last.safetensors"
    else:
        ckpt.save_state(folder / "last.pt", {"epoch": 1, "rng": ckpt.capture_rng()})  # no optimizer
        named = "last.pt"
    config = TrainConfig.from_dict({**ckpt.read_config(run_dir), "epochs": 2, "resume": str(run_dir)})
    with pytest.raises(TrainingError) as caught:
        fit_run(Project.open(root), config)
    message = str(caught.value)
    assert "cannot resume run 'done'" in message and named in message
    assert "Start a fresh run" in message and str(root / "models" / "done") in message


def test_the_cli_reports_a_damaged_checkpoint_without_a_traceback(finished_run: Path, tmp_path: Path) -> None:
    root = copy_project(finished_run, tmp_path / "copy")
    last = root / "runs" / "done" / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    proc = subprocess.run(segstudio_cmd("train", str(root), "--resume", "done", "--epochs", "2", "--events", "jsonl"),
                          capture_output=True, text=True, env=child_env(), timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "error: cannot resume run 'done'" in proc.stderr and str(last) in proc.stderr
    events = parse_events(proc.stdout)
    assert events[-1]["event"] == "error" and "Start a fresh run" in events[-1]["message"]


# -- a loss gone NaN ------------------------------------------------------------------------
def make_step(model: nn.Module, loss_fn: nn.Module, fused: bool) -> TrainStep:
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, fused=fused)
    return TrainStep(model, loss_fn, optimizer, None, torch.amp.GradScaler("cpu", enabled=False),
                     torch.device("cpu"), "off", False, 1.0, [0.5, 0.5, 0.5], [0.25, 0.25, 0.25])


class SwitchableLoss(nn.Module):
    """Cross-entropy, or NaN while `broken` is set (a fault injected from the test)."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False
        self.ce = nn.CrossEntropyLoss(ignore_index=255)  # the pipeline's ignore label

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.ce(logits, target)
        return loss * float("nan") if self.broken else loss


@pytest.mark.parametrize("fused", [False, True], ids=["host-skip", "device-skip"])
def test_a_nan_step_changes_no_weight_and_is_counted(fused: bool) -> None:
    torch.manual_seed(0)
    model = nn.Conv2d(3, NUM_CLASSES, 3, padding=1)
    loss_fn = SwitchableLoss()
    step = make_step(model, loss_fn, fused)
    images = torch.randint(0, 255, (2, 3, 8, 8), dtype=torch.uint8)
    masks = torch.randint(0, NUM_CLASSES, (2, 8, 8), dtype=torch.uint8)
    step(images, masks)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    moments = step.optimizer.state[model.weight]["exp_avg"].clone()
    loss_fn.broken = True
    for _ in range(3):
        assert torch.isnan(step(images, masks))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(step.optimizer.state[model.weight]["exp_avg"], moments)
    report = step.nonfinite_report()
    assert (report.skipped, report.longest_streak) == (3, 3)
    assert step.lower_lr(0.5) == pytest.approx(0.05)
    loss_fn.broken = False
    step(images, masks)
    assert not torch.equal(before["weight"], model.weight)
    assert step.nonfinite_report().skipped == 0


def test_a_loss_that_stays_nan_ends_the_run_and_keeps_the_last_good_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import segstudio.engine.run_setup as run_setup
    import segstudio.engine.trainer as trainer

    project = make_shapes_project(tmp_path / "p")
    loss = SwitchableLoss()
    monkeypatch.setattr(run_setup, "build_loss", lambda *args, **kwargs: loss)
    limit = 3  # the run gives up after this many NaN steps in a row (fewer steps: a faster test)
    monkeypatch.setattr(trainer, "MAX_NONFINITE_STREAK", limit)

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "checkpoint" and event["kind"] == "last":
            loss.broken = True  # from epoch 2 on, every loss is NaN

    # 2 steps an epoch, repeated: the second epoch runs past the streak limit
    config = tiny_config(epochs=3, run_name="nan", min_epoch_steps=limit + 2)
    events: list[dict[str, Any]] = []
    with pytest.raises(TrainingError) as caught:
        fit_run(project, config, lambda e: (events.append(e), on_event(e)))
    message = str(caught.value)
    assert "training stopped in epoch 2" in message and f"NaN/inf for {limit} steps" in message
    assert "learning rate too high" in message and "last good checkpoint (epoch 1)" in message
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert any("changed no weight; learning rate lowered" in w for w in warnings)
    checkpoints = project.root / "runs" / "nan" / "checkpoints"
    assert loads_checkpoint(checkpoints) == 1
    from segstudio.engine.modelfile import load_model

    model, _ = load_model(project.root / "models" / "nan", "cpu")  # the best model so far was written
    assert all(torch.isfinite(p).all() for p in model.state_dict().values() if p.is_floating_point())
    assert "the run's best model is" in message


# -- the trainer killed at random -----------------------------------------------------------
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_a_trainer_killed_at_random_leaves_a_loadable_checkpoint_and_best_model(tmp_path: Path) -> None:
    project = make_shapes_project(tmp_path / "p")
    args = ["--device", "cpu", "--arch", "unet", "--encoder", "resnet18", "--pretrained", "none",
            "--epochs", "200", "--batch-size", "2", "--crop-size", "64", "--workers", "0", "--seed", "1",
            "--patience", "0", "--checkpoint-every-s", "0", "--val-share", "0", "--min-epoch-steps", "1",
            "--preview-images", "0", "--run-name", "killed"]
    proc = subprocess.Popen(segstudio_cmd("train", str(project.root), "--events", "jsonl", *args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            if event["event"] == "checkpoint" and event["kind"] == "last":
                break
        else:
            pytest.fail(f"no checkpoint before the trainer ended: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(random.uniform(0.0, 3.0))  # somewhere in the next epochs, maybe mid-write
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    checkpoints = project.root / "runs" / "killed" / "checkpoints"
    assert loads_checkpoint(checkpoints) >= 1
    best = create_model(ModelSpec("unet", encoder="resnet18", num_classes=NUM_CLASSES))
    assert "epoch" in ckpt.load_weights(checkpoints / "best.safetensors", best)
