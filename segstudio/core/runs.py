"""Training runs as they lie in a project, read without torch or Qt.

    PROJECT/runs/<run-id>/config.json     resolved settings (written by the engine)
    PROJECT/runs/<run-id>/metrics.jsonl   one `epoch_end` event per line (engine)
    PROJECT/runs/<run-id>/checkpoints/    last.pt + last.safetensors make a run resumable
    PROJECT/runs/<run-id>/snapshot.json   which images the run saw (written by the app)
    PROJECT/runs/<run-id>/outcome.json    how the run ended, as the app saw it (app)
    PROJECT/models/<run-id>/              the run's best model (engine)

The app's runs history, comparisons and "make active" all read through here, so a run
trained on a headless server and copied in shows up like one trained in the app.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segstudio.core.atomic import atomic_write_json
from segstudio.core.errors import ProjectError
from segstudio.core.project import Project
from segstudio.core.vocabulary import TRAIN_SPLITS, TRAINING_STATUSES

ACTIVE_MODEL_KEY = "active_model"
SNAPSHOT_NAME = "snapshot.json"
OUTCOME_NAME = "outcome.json"


@dataclass(frozen=True)
class RunInfo:
    """One run folder, summarised for the history table."""

    run_id: str
    run_dir: Path
    config: dict[str, Any]
    epochs: list[dict[str, Any]] = field(default_factory=list)
    snapshot: dict[str, Any] = field(default_factory=dict)
    outcome: dict[str, Any] = field(default_factory=dict)
    model_dir: Path | None = None
    resumable: bool = False
    created: float = 0.0

    @property
    def planned_epochs(self) -> int | None:
        value = self.config.get("epochs")
        return int(value) if isinstance(value, (int, float)) else None

    @property
    def completed_epochs(self) -> int:
        return int(self.epochs[-1].get("epoch", len(self.epochs))) if self.epochs else 0

    @property
    def best(self) -> dict[str, Any] | None:
        """The epoch_end record with the highest val mIoU (None before the first epoch)."""
        scored = [e for e in self.epochs if isinstance(e.get("miou"), (int, float))]
        return max(scored, key=lambda e: e["miou"]) if scored else None

    @property
    def status(self) -> str:
        """finished / stopped / failed / incomplete (killed, or still running)."""
        kind = self.outcome.get("event")
        if kind == "run_finished":
            return "finished"
        if kind == "stopped":
            return "stopped"
        if kind == "error":
            return "failed"
        planned = self.planned_epochs
        if planned and self.completed_epochs >= planned:
            return "finished"
        return "incomplete"

    @property
    def model_label(self) -> str:
        spec = self.config.get("spec") or {}
        arch = spec.get("arch") or self.config.get("arch") or "?"
        encoder = spec.get("encoder") or self.config.get("encoder") or ""
        return f"{arch} / {encoder}" if encoder else str(arch)

    def series(self, key: str) -> list[tuple[int, float | None]]:
        """(epoch, value) pairs of one metric, for curves."""
        return [(int(e.get("epoch", i + 1)), _number(e.get(key))) for i, e in enumerate(self.epochs)]

    def per_class(self, key: str = "iou", epoch: dict[str, Any] | None = None) -> dict[str, float | None]:
        """Per-class values of `key` at `epoch` (default: the best epoch)."""
        record = epoch if epoch is not None else self.best
        if not record:
            return {}
        return {name: _number(values.get(key)) for name, values in (record.get("per_class") or {}).items()}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The epoch records of metrics.jsonl; a torn last line (a killed run) is skipped."""
    records: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return records
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_run(run_dir: Path) -> RunInfo:
    run_dir = Path(run_dir)
    config = _read_json(run_dir / "config.json")
    model_dir = run_dir.parent.parent / "models" / run_dir.name
    try:
        created = (run_dir / "config.json").stat().st_mtime
    except OSError:
        created = run_dir.stat().st_mtime if run_dir.exists() else 0.0
    snapshot = _read_json(run_dir / SNAPSHOT_NAME)
    created = float(snapshot.get("taken", created))
    return RunInfo(
        run_id=run_dir.name,
        run_dir=run_dir,
        config=config,
        epochs=read_metrics(run_dir / "metrics.jsonl"),
        snapshot=snapshot,
        outcome=_read_json(run_dir / OUTCOME_NAME),
        model_dir=model_dir if model_dir.is_dir() else None,
        resumable=(run_dir / "checkpoints" / "last.pt").is_file(),
        created=created,
    )


def list_runs(project_root: Path) -> list[RunInfo]:
    """Every run folder of the project (one with a config.json), newest first."""
    runs_dir = Path(project_root) / "runs"
    if not runs_dir.is_dir():
        return []
    runs = [read_run(p) for p in runs_dir.iterdir() if p.is_dir() and (p / "config.json").is_file()]
    return sorted(runs, key=lambda r: (r.created, r.run_id), reverse=True)


# -- what the app adds to a run folder ---------------------------------------------------------
def data_snapshot(project: Project) -> dict[str, Any]:
    """Which images a run started now would see, per split (the engine's selection rule)."""
    splits: dict[str, list[str]] = {"train": [], "val": []}
    for record in project.images:  # the engine's rule (engine/data.py): confirmed masks only
        if record.status not in TRAINING_STATUSES or not project.has_mask(record):
            continue
        if record.split in TRAIN_SPLITS:
            splits["train"].append(record.id)
        elif record.split == "val":
            splits["val"].append(record.id)
    for ids in splits.values():
        ids.sort()
    return {
        "taken": time.time(),
        "project_images": len(project),
        "counts": {name: len(ids) for name, ids in splits.items()},
        "val_source": "val" if splits["val"] else "holdout",
        "images": splits,
    }


def write_snapshot(run_dir: Path, snapshot: dict[str, Any], started: dict[str, Any] | None = None) -> None:
    """Store the snapshot (and the run_started facts: device, precision) beside the run."""
    data = dict(snapshot)
    if started:
        data["started"] = {k: started.get(k) for k in (
            "device", "device_type", "amp", "train_images", "val_images", "val_source",
            "epochs", "steps_per_epoch", "start_epoch", "crop")}
    previous = _read_json(Path(run_dir) / SNAPSHOT_NAME)
    if previous.get("images") and started and started.get("start_epoch"):
        # A resumed run keeps its first snapshot and notes the data of the resume.
        previous.setdefault("resumes", []).append(data)
        data = previous
    atomic_write_json(Path(run_dir) / SNAPSHOT_NAME, data)


def write_outcome(run_dir: Path, event: dict[str, Any]) -> None:
    """Record the final event (run_finished / stopped / error) the app received."""
    if Path(run_dir).is_dir():
        atomic_write_json(Path(run_dir) / OUTCOME_NAME, event)


# -- the project's active model ----------------------------------------------------------------
def active_model(project: Project) -> Path | None:
    value = project.settings.get(ACTIVE_MODEL_KEY)
    if not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else project.root / path


def set_active_model(project: Project, model_dir: Path | None) -> None:
    """Make `model_dir` (a folder under PROJECT/models, or anywhere) the model that pre-labels."""
    if model_dir is None:
        project.settings.pop(ACTIVE_MODEL_KEY, None)
    else:
        model_dir = Path(model_dir)
        if not model_dir.exists():
            raise ProjectError(f"model {model_dir} does not exist; train a run to the end first, or pick another")
        project.settings[ACTIVE_MODEL_KEY] = project.stored_path(model_dir)
    project.save()
