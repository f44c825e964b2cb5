"""The Qt-free runs reader: run folders as the engine writes them, snapshots, active model."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from segstudio.core.classes import ClassTable
from segstudio.core.errors import ProjectError
from segstudio.core.project import Project
from segstudio.core.runs import (
    active_model,
    data_snapshot,
    list_runs,
    read_metrics,
    read_run,
    set_active_model,
    write_outcome,
    write_snapshot,
)


def _epoch(epoch: int, miou: float | None, per_class: dict[str, float | None]) -> dict[str, Any]:
    return {"event": "epoch_end", "epoch": epoch, "epochs": 4, "train_loss": 1.0 / epoch, "val_loss": 1.5 / epoch,
            "miou": miou, "per_class": {k: {"iou": v, "dice": v} for k, v in per_class.items()}}


def _run(root: Path, run_id: str, records: list[dict[str, Any]], epochs: int = 4, mtime: float = 0.0,
         resumable: bool = False, model: bool = False, torn: str = "") -> Path:
    run_dir = root / "runs" / run_id
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(
        {"arch": "unet", "encoder": "resnet18", "epochs": epochs, "spec": {"arch": "unet", "encoder": "resnet18"}}))
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + torn)
    if mtime:
        os.utime(run_dir / "config.json", (mtime, mtime))
    if resumable:
        (run_dir / "checkpoints" / "last.pt").write_bytes(b"x")
    if model:
        (root / "models" / run_id).mkdir(parents=True)
    return run_dir


@pytest.fixture
def project(tmp_path: Path) -> Project:
    classes = ClassTable.from_list([{"id": 0, "name": "sky", "color": [0, 0, 255]},
                                    {"id": 1, "name": "road", "color": [128, 64, 128]}])
    project = Project.create(tmp_path / "p", classes)
    rng = np.random.default_rng(0)
    layout = [("a", "train", "labeled", True), ("b", "train", "reviewed", True), ("c", "train", "unlabeled", True),
              ("d", "unassigned", "labeled", True), ("e", "val", "labeled", True), ("f", "train", "labeled", False),
              ("g", "test", "labeled", True)]
    for name, split, status, with_mask in layout:
        path = tmp_path / f"{name}.png"
        cv2.imwrite(str(path), rng.integers(0, 255, (12, 16, 3), dtype=np.uint8))
        record = project.add_image(path, split=split, status=status)
        if with_mask:
            project.write_mask(record, rng.integers(0, 2, (12, 16), dtype=np.uint8), save_manifest=False)
    project.save()
    return project


def test_list_runs_reads_metrics_status_and_best(project: Project) -> None:
    root = project.root
    _run(root, "old", [_epoch(1, 0.2, {"sky": 0.3, "road": 0.1}), _epoch(2, 0.5, {"sky": 0.7, "road": 0.3}),
                       _epoch(3, 0.4, {"sky": 0.6, "road": None})], mtime=1000.0, resumable=True,
         torn='{"event": "epoch_end", "epo')  # a run killed while appending
    _run(root, "new", [_epoch(e, 0.1 * e, {"sky": 0.1 * e}) for e in (1, 2, 3, 4)], mtime=2000.0, model=True)
    (root / "runs" / "not-a-run").mkdir()
    runs = list_runs(root)
    assert [r.run_id for r in runs] == ["new", "old"]
    new, old = runs
    assert old.completed_epochs == 3 and old.status == "incomplete" and old.resumable
    assert old.best is not None and old.best["epoch"] == 2
    assert old.per_class("iou") == {"sky": 0.7, "road": 0.3}
    assert old.series("miou") == [(1, 0.2), (2, 0.5), (3, 0.4)]
    assert new.status == "finished" and new.model_dir == root / "models" / "new"
    assert old.model_dir is None and old.model_label == "unet / resnet18"


def test_outcome_decides_status(project: Project) -> None:
    run_dir = _run(project.root, "r", [_epoch(1, 0.3, {"sky": 0.3})])
    write_outcome(run_dir, {"event": "stopped", "epoch": 1})
    assert read_run(run_dir).status == "stopped"
    write_outcome(run_dir, {"event": "error", "message": "out of memory"})
    assert read_run(run_dir).status == "failed"


def test_metrics_with_undefined_values(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps(_epoch(1, None, {"sky": None})) + "\nnot json\n[1, 2]\n")
    records = read_metrics(path)
    assert len(records) == 1
    assert read_metrics(tmp_path / "missing.jsonl") == []


def test_data_snapshot_follows_the_engine_rule(project: Project) -> None:
    snapshot = data_snapshot(project)
    # labelled/reviewed with a mask; train + unassigned train, val validates; f has no mask.
    assert snapshot["images"] == {"train": ["a", "b", "d"], "val": ["e"]}
    assert snapshot["counts"] == {"train": 3, "val": 1}
    assert snapshot["val_source"] == "val" and snapshot["project_images"] == 7


def test_snapshot_is_written_and_a_resume_is_appended(project: Project) -> None:
    run_dir = _run(project.root, "r", [])
    write_snapshot(run_dir, data_snapshot(project), started={"device": "CPU", "amp": "off", "start_epoch": 0})
    first = read_run(run_dir).snapshot
    assert first["started"]["device"] == "CPU" and first["counts"]["train"] == 3
    project.update_image("c", status="labeled")
    write_snapshot(run_dir, data_snapshot(project), started={"device": "CPU", "start_epoch": 2})
    again = read_run(run_dir).snapshot
    assert again["images"] == first["images"]  # the run's own data stays recorded
    assert again["resumes"][0]["counts"]["train"] == 4


def test_active_model_round_trip(project: Project) -> None:
    assert active_model(project) is None
    model_dir = project.root / "models" / "run-1"
    with pytest.raises(ProjectError, match="does not exist"):
        set_active_model(project, model_dir)
    model_dir.mkdir(parents=True)
    set_active_model(project, model_dir)
    reopened = Project.open(project.root)
    assert reopened.settings["active_model"] == "models/run-1"
    assert active_model(reopened) == model_dir
    set_active_model(reopened, None)
    assert active_model(Project.open(project.root)) is None
