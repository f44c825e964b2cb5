"""Small real-data projects for the engine and CLI tests: a CamVid subset, downscaled.

Halving CamVid's 480x360 frames keeps a CPU training run of a few epochs to seconds while
the scenes stay real. A trained tiny run is made once per test session (under pytest's
session temp folder) and shared by the trainer and CLI tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from segstudio.core.classes import load_class_file
from segstudio.core.project import Project

REPO = Path(__file__).resolve().parents[2]
CAMVID = REPO.parent / "shared" / "data" / "camvid"


def require_camvid() -> Path:
    if not (CAMVID / "train").is_dir():
        pytest.skip(f"CamVid data not found at {CAMVID}; it lives in ../shared/data/camvid beside the repo")
    return CAMVID


def make_camvid_project(root: Path, n_train: int = 24, n_val: int = 8, scale: float = 0.5,
                        val_split: bool = True) -> Project:
    """A project of the first `n_train` train and `n_val` val frames (every 4th frame, for
    variety), resized by `scale` (images area-averaged, masks nearest)."""
    camvid = require_camvid()
    classes = load_class_file(camvid / "classes.json")
    project = Project.create(root, classes, name=root.name)
    (root / "images").mkdir(exist_ok=True)
    parts = [("train", "train", n_train), ("val", "val" if val_split else "train", n_val)]
    for folder, split, count in parts:
        names = sorted(p.name for p in (camvid / folder).glob("*.png"))[::4][:count]
        for name in names:
            image = cv2.imread(str(camvid / folder / name), cv2.IMREAD_COLOR)
            mask = cv2.imread(str(camvid / f"{folder}annot" / name), cv2.IMREAD_GRAYSCALE)
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
            target = root / "images" / f"{folder}_{name}"
            cv2.imwrite(str(target), image)
            record = project.add_image(target, split=split)
            project.write_mask(record, mask.astype(np.uint8), status="labeled", save_manifest=False)
    project.save()
    return project


def segstudio_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "segstudio", *args]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def parse_events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


TINY_ARGS = ("--device", "cpu", "--arch", "unet", "--encoder", "resnet18", "--pretrained", "none",
             "--epochs", "3", "--batch-size", "4", "--crop-size", "96", "--lr", "2e-3",
             "--augment", "light", "--loss", "ce", "--workers", "0", "--seed", "1", "--patience", "0")


@dataclass(frozen=True)
class TinyRun:
    project: Path
    events: list[dict[str, Any]]
    stderr: str
    returncode: int

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind]


def tiny_trained_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """Train once per session (CLI, --events jsonl) and reuse the result."""
    base = tmp_path_factory.getbasetemp() / "tiny_camvid_run"
    done = base / "result.json"
    if done.is_file():
        data = json.loads(done.read_text())
        return TinyRun(Path(data["project"]), data["events"], data["stderr"], data["returncode"])
    project = make_camvid_project(base / "project", n_train=24, n_val=8, scale=0.25)
    proc = subprocess.run(
        segstudio_cmd("train", str(project.root), "--events", "jsonl", "--run-name", "tiny", *TINY_ARGS),
        capture_output=True, text=True, env=child_env(), timeout=600,
    )
    run = TinyRun(project.root, parse_events(proc.stdout), proc.stderr, proc.returncode)
    done.write_text(json.dumps({"project": str(run.project), "events": run.events,
                                "stderr": run.stderr, "returncode": run.returncode}))
    return run
