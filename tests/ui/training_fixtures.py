"""A tiny CamVid project and recorded engine events for the training UI tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from segstudio.core.classes import load_class_file
from segstudio.core.project import Project
from segstudio.engine.config import TrainConfig

CAMVID = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "camvid"

# Small enough that a CPU epoch takes about a second once torch is loaded.
TINY = TrainConfig(arch="unet", encoder="resnet18", pretrained="none", loss="ce", augment="light",
                    class_weights="none", lr=3e-3, epochs=2, batch_size=4, crop_size=64, amp="off",
                    device="cpu", workers=0, patience=0, seed=1)


def make_tiny_project(root: Path, n_train: int = 8, n_val: int = 4, scale: float = 0.25) -> Project:
    """`n_train` + `n_val` CamVid frames (every 8th), downscaled, all labelled."""
    if not (CAMVID / "classes.json").is_file():
        pytest.skip(f"CamVid data not found at {CAMVID}; it lives in ../shared/data/camvid beside the repo")
    project = Project.create(root, load_class_file(CAMVID / "classes.json"), name="tiny")
    (root / "images").mkdir(exist_ok=True)
    for folder, count in (("train", n_train), ("val", n_val)):
        names = sorted(p.name for p in (CAMVID / folder).glob("*.png"))[::8][:count]
        for name in names:
            image = cv2.imread(str(CAMVID / folder / name), cv2.IMREAD_COLOR)
            mask = cv2.imread(str(CAMVID / f"{folder}annot" / name), cv2.IMREAD_GRAYSCALE)
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            target = root / "images" / f"{folder}_{name}"
            cv2.imwrite(str(target), cv2.resize(image, size, interpolation=cv2.INTER_AREA))
            record = project.add_image(target, split=folder)
            small = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST).astype(np.uint8)
            project.write_mask(record, small, status="labeled", save_manifest=False)
    project.save()
    return project


def masks_digest(project: Project) -> dict[str, str]:
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted((project.root / "masks").glob("*.png"))}


def epoch_record(epoch: int, miou: float, classes: dict[str, float | None]) -> dict[str, Any]:
    """An epoch_end event as the engine writes it (values chosen by the test)."""
    per_class = {name: {"iou": v, "dice": None if v is None else 2 * v / (1 + v), "accuracy": v}
                 for name, v in classes.items()}
    return {"event": "epoch_end", "time": 1.0 + epoch, "epoch": epoch, "epochs": 3, "train_loss": 2.0 / epoch,
            "val_loss": 2.5 / epoch, "miou": miou, "mean_dice": miou + 0.1, "pixel_accuracy": 0.5 + miou / 2,
            "mean_class_accuracy": miou, "per_class": per_class, "lr": 1e-3, "seconds": 3.0,
            "images_per_s": 12.5, "data_wait_share": 0.1, "peak_gpu_memory_mb": None,
            "best_miou": miou, "is_best": True}


def write_fake_run(project_root: Path, run_id: str, records: list[dict[str, Any]], epochs: int = 3,
                   resumable: bool = False, model: bool = False) -> Path:
    """A run folder laid out as the engine lays it out (see engine/checkpoint.py)."""
    run_dir = project_root / "runs" / run_id
    (run_dir / "checkpoints").mkdir(parents=True)
    config = {"arch": "unet", "encoder": "resnet18", "epochs": epochs, "batch_size": 4, "lr": 0.001,
              "spec": {"arch": "unet", "encoder": "resnet18"}, "classes": ["a", "b"]}
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if resumable:
        (run_dir / "checkpoints" / "last.pt").write_bytes(b"state")
    if model:
        (project_root / "models" / run_id).mkdir(parents=True)
        (project_root / "models" / run_id / "model.safetensors").write_bytes(b"weights")
    return run_dir
