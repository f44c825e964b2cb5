"""core/events_schema.py against what the engine really emits: a tiny run on CamVid (CPU),
a stopped run and a failing `segstudio train`, every event checked field by field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from segstudio.core import events_schema as schema
from segstudio.engine.config import TrainConfig
from segstudio.engine.data import prepare_data

sys.path.insert(0, str(Path(__file__).resolve().parent))  # camvid_fixtures, any import mode
from camvid_fixtures import child_env, make_camvid_project, segstudio_cmd  # noqa: E402


def required_keys(kind: str) -> set[str]:
    return set(schema.EVENT_TYPES[kind].__required_keys__)


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Every event a tiny run, a stopped run and a failing CLI run emit, by kind."""
    from segstudio.core.project import Project
    from segstudio.engine.trainer import fit

    root = tmp_path_factory.mktemp("events")
    project = make_camvid_project(root / "p", n_train=4, n_val=2, scale=0.25)
    project.delete_mask(project.images_where(split="train")[0])  # labelled without a mask: a warning
    config = TrainConfig(device="cpu", encoder="resnet18", pretrained=None, epochs=1, batch_size=2,
                         crop_size=64, workers=0, patience=0, preview_images=1)
    events: list[dict[str, Any]] = []
    fit(config, prepare_data(project), events.append)
    fit(config, prepare_data(project), events.append, should_stop=lambda: True)
    empty = Project.create(root / "empty", project.classes)
    out = subprocess.run(segstudio_cmd("train", str(empty.root), "--events", "jsonl", "--device", "cpu"),
                         capture_output=True, text=True, env=child_env(), timeout=300)
    assert out.returncode != 0  # nothing labelled: the run fails with an `error` event
    events += [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_kind.setdefault(event["event"], []).append(event)
    return by_kind


def test_every_kind_is_emitted_and_the_kinds_match(emitted: dict[str, list[dict[str, Any]]]) -> None:
    assert set(emitted) == set(schema.EVENT_KINDS) == set(schema.EVENT_TYPES)
    assert set(schema.FINAL_EVENTS) <= set(schema.EVENT_KINDS)


@pytest.mark.parametrize("kind", schema.EVENT_KINDS)
def test_typeddict_keys_are_what_the_engine_emits(emitted: dict[str, list[dict[str, Any]]], kind: str) -> None:
    for event in emitted[kind]:
        assert set(event) == required_keys(kind), f"{kind}: {sorted(set(event) ^ required_keys(kind))}"
        assert isinstance(event["time"], float)


def test_figures_and_per_class_keys_match(emitted: dict[str, list[dict[str, Any]]]) -> None:
    best = emitted["run_finished"][0]["best"]
    assert set(best) == set(schema.Figures.__required_keys__)
    for record in [best, *emitted["epoch_end"]]:
        for figures in record["per_class"].values():
            assert set(figures) == set(schema.ClassFigures.__required_keys__)


def test_the_app_reads_the_schema_without_loading_torch() -> None:
    code = ("import sys, segstudio.ui.training.process, segstudio.core.events_schema; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**child_env(), "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
