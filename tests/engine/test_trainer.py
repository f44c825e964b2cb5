"""The trainer on real data (a small CamVid subset, CPU): learning, events, files, resume,
stop on SIGTERM, DDP with two gloo processes; plus the step and schedule on their own."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from segstudio.core.errors import TrainingError
from segstudio.core.project import Project
from segstudio.engine import checkpoint as ckpt
from segstudio.engine.config import TrainConfig, resolve_config
from segstudio.engine.data import ClassMapping, ImageStore, eval_records, prepare_data
from segstudio.engine.metrics import ConfusionMatrix
from segstudio.engine.step import TrainStep, lr_factor

sys.path.insert(0, str(Path(__file__).resolve().parent))  # camvid_fixtures, any import mode
from camvid_fixtures import (
    TINY_ARGS,
    TinyRun,
    child_env,
    make_camvid_project,
    parse_events,
    segstudio_cmd,
    tiny_trained_run,
)

# The fields events.py documents, per event kind.
SCHEMA: dict[str, set[str]] = {
    "run_started": {"run_id", "run_dir", "config", "device", "device_type", "amp", "world_size", "train_images",
                    "val_images", "classes", "epochs", "steps_per_epoch", "start_epoch", "val_source", "crop"},
    "progress": {"epoch", "epochs", "step", "steps", "loss", "lr", "images_per_s"},
    "epoch_end": {"epoch", "epochs", "train_loss", "val_loss", "miou", "mean_dice", "pixel_accuracy",
                  "mean_class_accuracy", "per_class", "lr", "seconds", "images_per_s", "data_wait_share",
                  "peak_gpu_memory_mb", "best_miou", "is_best", "val_images"},
    "preview": {"epoch", "images"},
    "checkpoint": {"epoch", "kind", "path"},
    "warning": {"message"},
    "error": {"message"},
    "stopped": {"epoch", "reason", "checkpoint", "model"},
    "run_finished": {"epochs", "best_epoch", "best", "model", "run_dir", "minutes", "reason"},
}


def check_schema(events: list[dict[str, Any]]) -> None:
    for event in events:
        assert event["event"] in SCHEMA, event
        missing = SCHEMA[event["event"]] - set(event)
        assert not missing, f"{event['event']} lacks {missing}"
        assert isinstance(event["time"], float)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_trained_run(tmp_path_factory)


def chance_figures(project: Project) -> tuple[float, float]:
    """mIoU and pixel accuracy of always answering the most common training class."""
    data = prepare_data(project)
    train = ImageStore(project, data.train, data.mapping)
    counts = sum(np.bincount(train[i][1].ravel(), minlength=256)[:11] for i in range(len(train)))
    majority = int(np.argmax(counts))
    cm = ConfusionMatrix(11)
    val = ImageStore(project, eval_records(project, "val"), data.mapping)
    for i in range(len(val)):
        truth = torch.from_numpy(val[i][1])
        cm.update(torch.full_like(truth, majority), truth)
    m = cm.compute()
    return float(m.miou or 0), float(m.pixel_accuracy or 0)


@pytest.mark.slow
def test_tiny_run_learns_and_reports_every_documented_field(tiny: TinyRun) -> None:
    assert tiny.returncode == 0, tiny.stderr[-3000:]
    check_schema(tiny.events)
    kinds = [e["event"] for e in tiny.events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.count("epoch_end") == 3 and kinds.count("preview") == 3
    started = tiny.of("run_started")[0]
    assert started["train_images"] == 24 and started["val_images"] == 8 and started["val_source"] == "val"
    assert started["amp"] == "off" and started["device_type"] == "cpu"
    assert started["classes"][0] == "Sky" and len(started["classes"]) == 11
    ends = tiny.of("epoch_end")
    assert [e["epoch"] for e in ends] == [1, 2, 3]
    assert all(e["val_images"] == 8 for e in ends)
    assert set(ends[0]["per_class"]) == set(started["classes"])
    # Progress is throttled, yet every epoch reports its last step.
    assert all(any(p["epoch"] == n and p["step"] == p["steps"] for p in tiny.of("progress")) for n in (1, 2, 3))
    assert ends[-1]["train_loss"] < ends[0]["train_loss"]

    finished = tiny.of("run_finished")[0]
    chance_miou, chance_acc = chance_figures(Project.open(tiny.project))
    best = finished["best"]
    assert best["miou"] > chance_miou + 0.02, (best["miou"], chance_miou)
    assert best["pixel_accuracy"] > chance_acc, (best["pixel_accuracy"], chance_acc)
    assert best["miou"] == max(e["miou"] for e in ends)
    for path in tiny.of("preview")[-1]["images"]:
        assert Path(path).is_file() and Path(path).stat().st_size > 0


def test_tiny_run_writes_run_folder_and_model(tiny: TinyRun) -> None:
    from segstudio.engine.modelfile import load_model

    finished = tiny.of("run_finished")[0]
    run_dir = Path(finished["run_dir"])
    assert run_dir == tiny.project / "runs" / "tiny"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["encoder"] == "resnet18" and config["epochs"] == 3 and config["batch_size"] == 4
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2, 3]
    state = ckpt.load_state(run_dir / "checkpoints" / "last.pt")  # weights_only=True inside
    assert state["epoch"] == 3 and "optimizer" in state and "rng" in state
    kinds = {(e["kind"], Path(e["path"]).name) for e in tiny.of("checkpoint")}
    assert ("last", "last.safetensors") in kinds and ("best", "best.safetensors") in kinds

    model_dir = Path(finished["model"])
    assert model_dir == tiny.project / "models" / "tiny"
    model, mconfig = load_model(model_dir, "cpu")
    assert mconfig.arch == "unet" and mconfig.encoder == "resnet18" and mconfig.num_classes == 11
    assert mconfig.metrics["miou"] == pytest.approx(finished["best"]["miou"])
    x = torch.zeros(1, 3, 96, 128)
    assert model.eval()(x).shape == (1, 11, 96, 128)


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint(tiny: TinyRun, tmp_path: Path) -> None:
    from segstudio.engine.trainer import fit

    root = tmp_path / "copy"
    shutil.copytree(tiny.project, root)
    run_dir = root / "runs" / "tiny"
    before = ckpt.load_state(run_dir / "checkpoints" / "last.pt")
    config = TrainConfig.from_dict({**ckpt.read_config(run_dir), "epochs": 4, "resume": str(run_dir)})
    events: list[dict[str, Any]] = []
    result = fit(config, prepare_data(Project.open(root)), events.append)
    check_schema(events)
    started = [e for e in events if e["event"] == "run_started"][0]
    assert started["start_epoch"] == 3 and started["run_id"] == "tiny"
    assert [e["epoch"] for e in events if e["event"] == "epoch_end"] == [4]
    assert result.epochs == 4 and result.run_dir == run_dir
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2, 3, 4]
    after = ckpt.load_state(run_dir / "checkpoints" / "last.pt")
    steps_per_epoch = started["steps_per_epoch"]
    assert after["scheduler"]["last_epoch"] == before["scheduler"]["last_epoch"] + steps_per_epoch
    assert after["epoch"] == 4


@pytest.mark.slow
def test_sigterm_finishes_the_step_saves_and_exits_zero(tmp_path: Path) -> None:
    project = make_camvid_project(tmp_path / "p", n_train=8, n_val=2, scale=0.25)
    args = [a for a in TINY_ARGS]
    args[args.index("--epochs") + 1] = "50"
    args[args.index("--batch-size") + 1] = "2"
    args[args.index("--crop-size") + 1] = "64"
    proc = subprocess.Popen(segstudio_cmd("train", str(project.root), "--events", "jsonl", *args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if json.loads(line)["event"] == "progress":
            proc.send_signal(signal.SIGTERM)
            break
    out, err = proc.communicate(timeout=300)
    events = parse_events("".join(lines) + out)
    assert proc.returncode == 0, err[-3000:]
    check_schema(events)
    assert events[-1]["event"] == "stopped" and events[-1]["reason"] == "signal"
    assert not any(e["event"] == "epoch_end" and e["epoch"] >= 49 for e in events)
    weights = Path(events[-1]["checkpoint"])
    state = ckpt.load_state(weights.with_suffix(".pt"))
    assert state["epoch"] == events[-1]["epoch"]
    from segstudio.engine.models.registry import ModelSpec, create_model

    model = create_model(ModelSpec("unet", encoder="resnet18", num_classes=11))
    ckpt.load_weights(weights, model)  # a usable checkpoint


@pytest.mark.slow
def test_ddp_two_gloo_processes_train_and_only_rank0_reports(tmp_path: Path) -> None:
    project = make_camvid_project(tmp_path / "p", n_train=8, n_val=3, scale=0.25)
    args = [a for a in TINY_ARGS]
    args[args.index("--epochs") + 1] = "1"
    args[args.index("--batch-size") + 1] = "2"
    args[args.index("--crop-size") + 1] = "64"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "segstudio", "train", str(project.root), "--events", "jsonl", *args]
    env = child_env()
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = parse_events(proc.stdout)
    check_schema(events)
    started = [e for e in events if e["event"] == "run_started"]
    assert len(started) == 1 and started[0]["world_size"] == 2
    assert started[0]["steps_per_epoch"] == 2  # 8 images / (2 ranks x batch 2)
    ends = [e for e in events if e["event"] == "epoch_end"]
    assert len(ends) == 1 and ends[0]["val_images"] == 3  # every val image once, over both ranks
    finished = [e for e in events if e["event"] == "run_finished"]
    assert len(finished) == 1 and Path(finished[0]["model"]).is_dir()


class Picky(nn.Module):
    """Raises CUDA's out-of-memory error for more than two images at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.conv(x)


def make_step(model: nn.Module) -> TrainStep:
    from segstudio.engine.losses import build_loss

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return TrainStep(model, build_loss("ce"), optimizer, None, torch.amp.GradScaler("cuda", enabled=False),
                     torch.device("cpu"), "off", False, None, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def test_out_of_memory_halves_the_batch_and_keeps_the_update() -> None:
    torch.manual_seed(0)
    images = torch.randint(0, 255, (8, 3, 6, 6), dtype=torch.uint8)
    masks = torch.randint(0, 4, (8, 6, 6), dtype=torch.uint8)
    picky = Picky()
    calm = nn.Module()
    calm.conv = nn.Conv2d(3, 4, 1)
    calm.forward = lambda x: calm.conv(x)  # type: ignore[method-assign]
    calm.conv.load_state_dict(picky.conv.state_dict())
    warnings: list[str] = []
    step = make_step(picky)
    step(images, masks, on_warning=warnings.append)
    assert step.micro_batches == 4 and len(warnings) == 2 and "halving to 2" in warnings[-1]
    # Equal chunks: the accumulated gradient is the full-batch gradient, so the update
    # equals one step on the whole batch by a model that never ran out of memory.
    make_step(calm)(images, masks)
    assert torch.allclose(picky.conv.weight, calm.conv.weight, atol=1e-6)
    assert torch.allclose(picky.conv.bias, calm.conv.bias, atol=1e-6)


def test_out_of_memory_at_one_image_is_a_clear_error() -> None:
    class Hopeless(Picky):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise torch.OutOfMemoryError("CUDA out of memory.")

    with pytest.raises(TrainingError, match="ran out of memory"):
        make_step(Hopeless())(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, 4, 4, dtype=torch.uint8))


def test_lr_schedule_warms_up_then_decays() -> None:
    values = [lr_factor(s, 100, 10, "cosine") for s in range(100)]
    assert values[0] < values[5] < values[9] <= 1.0
    assert values[10] == pytest.approx(1.0) and values[-1] == pytest.approx(0.01, abs=0.01)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))
    assert lr_factor(20, 100, 10, "cosine", time_fraction=1.0) == pytest.approx(0.01)
    cycle = [lr_factor(s, 100, 0, "onecycle") for s in range(100)]
    assert max(cycle) == pytest.approx(cycle[30], abs=0.05) and cycle[-1] < 0.01


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path: Path) -> None:
    import random

    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    ckpt.save_state(tmp_path / "s.pt", {"rng": ckpt.capture_rng()})
    first = (torch.rand(3), np.random.rand(3), random.random())
    ckpt.restore_rng(ckpt.load_state(tmp_path / "s.pt")["rng"])
    second = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1]) and first[2] == second[2]


def test_defaults_follow_the_device() -> None:
    gpu = resolve_config(TrainConfig(), "cuda", 367, workers=6)
    assert (gpu.encoder, gpu.batch_size, gpu.crop_size, gpu.channels_last) == ("resnet34", 16, 512, True)
    assert 10 <= gpu.epochs <= 200 and gpu.workers == 6
    cpu = resolve_config(TrainConfig(), "cpu", 367)
    assert (cpu.encoder, cpu.batch_size, cpu.crop_size, cpu.channels_last) == ("resnet18", 8, 256, False)
    assert resolve_config(TrainConfig(), "cpu", 5).batch_size == 5  # never more than the images
    assert resolve_config(TrainConfig(epochs=7, patience=0), "cpu", 40).epochs == 7


def test_class_mapping_of_model_matches_project(tiny: TinyRun) -> None:
    from segstudio.engine.modelfile import load_model

    _, config = load_model(tiny.project / "models" / "tiny", "cpu")
    assert ClassMapping.from_classes(config.classes) == ClassMapping.from_classes(Project.open(tiny.project).classes)


def test_max_minutes_ends_the_run_properly_with_a_model(tmp_path: Path) -> None:
    from segstudio.engine.trainer import fit

    project = make_camvid_project(tmp_path / "p", n_train=4, n_val=2, scale=0.25)
    config = TrainConfig(device="cpu", encoder="resnet18", pretrained=None, epochs=20, batch_size=2, crop_size=64,
                         workers=0, max_minutes=0.001, patience=0, preview_images=1)
    events: list[dict[str, Any]] = []
    result = fit(config, prepare_data(project), events.append)
    check_schema(events)
    assert result.reason == "max_minutes" and result.epochs == 1
    steps = [e for e in events if e["event"] == "progress"]
    assert len(steps) == 1  # the budget is checked after every step
    finished = events[-1]
    assert finished["event"] == "run_finished" and finished["reason"] == "max_minutes"
    assert Path(finished["model"]).is_dir()



@pytest.mark.parametrize("refresh", [True, False], ids=["refresh", "snapshot"])
def test_masks_saved_during_a_run_join_from_the_next_epoch_only_when_asked(tmp_path: Path, refresh: bool) -> None:
    from segstudio.engine.trainer import fit

    project = make_camvid_project(tmp_path / "p", n_train=4, n_val=2, scale=0.25)
    # an image the user is still labelling when the run starts
    late = project.images_where(split="train")[0]
    mask = project.read_mask(late)
    project.delete_mask(late)
    project.update_image(late.id, status="in_progress")
    project.save()
    data = prepare_data(project)
    assert late.id not in {rec.id for rec in data.train}
    events: list[dict[str, Any]] = []

    def on_event(event: dict[str, Any]) -> None:
        events.append(event)
        if event["event"] == "epoch_end" and event["epoch"] == 1:
            # what the app does when the user marks the image done mid-run
            Project.open(project.root).write_mask(late.id, mask, status="labeled")

    config = TrainConfig(device="cpu", encoder="resnet18", pretrained=None, epochs=2, batch_size=1, crop_size=64,
                         workers=0, patience=0, preview_images=1, refresh_data=refresh)
    fit(config, data, on_event)
    check_schema(events)
    n = len(data.train)
    refreshed = [e["message"] for e in events if e["event"] == "warning" and "refreshed" in e["message"]]
    steps = {e["epoch"]: e["steps"] for e in events if e["event"] == "progress"}  # batch 1: a step per image
    if refresh:
        assert len(refreshed) == 1 and f"{n + 1} training images (was {n})" in refreshed[0]
        assert steps == {1: n, 2: n + 1}
    else:
        assert not refreshed
        assert steps == {1: n, 2: n}
