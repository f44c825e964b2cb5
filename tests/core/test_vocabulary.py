"""The split and status vocabulary: what the manifest accepts, and the named groups."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
from dataset_builders import noise_image, write_image

from segstudio.core import vocabulary
from segstudio.core.classes import ClassTable
from segstudio.core.errors import ProjectError
from segstudio.core.project import Project
from segstudio.core.runs import data_snapshot

CLASSES = ClassTable.from_names(["bg", "fg", "void"], ignore="void")


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project.create(tmp_path / "p", CLASSES)
    project.add_image(write_image(tmp_path / "img" / "a.png", noise_image(4, 5)))
    project.save()
    return project


def test_every_literal_status_and_split_round_trips_through_the_manifest(project: Project) -> None:
    for status in get_args(vocabulary.Status):
        for split in get_args(vocabulary.Split):
            project.update_image("a", status=status, split=split)
            project.save()
            record = Project.open(project.root).image("a")
            assert (record.status, record.split) == (status, split)


def test_unknown_status_or_split_is_refused(project: Project, tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="unknown status 'done'"):
        project.update_image("a", status="done")
    with pytest.raises(ProjectError, match="unknown split 'holdout'"):
        project.update_image("a", split="holdout")
    with pytest.raises(ProjectError, match="unknown status"):
        project.add_image(write_image(tmp_path / "img" / "b.png", noise_image(4, 5)), status="Labeled")
    data = json.loads(project.manifest_path.read_text())
    data["images"][0]["status"] = "approved"
    project.manifest_path.write_text(json.dumps(data))
    with pytest.raises(ProjectError, match="unknown status 'approved'"):
        Project.open(project.root)


def test_groups_are_made_of_accepted_words_and_split_the_statuses() -> None:
    for group in (vocabulary.TRAINING_STATUSES, vocabulary.UNEDITED_STATUSES, vocabulary.OPEN_STATUSES):
        assert set(group) <= set(vocabulary.STATUSES)
    assert set(vocabulary.TRAIN_SPLITS) <= set(vocabulary.SPLITS)
    # Every status is either confirmed (trainable) or still open, never both.
    assert set(vocabulary.TRAINING_STATUSES).isdisjoint(vocabulary.OPEN_STATUSES)
    assert set(vocabulary.TRAINING_STATUSES) | set(vocabulary.OPEN_STATUSES) == set(vocabulary.STATUSES)
    assert set(vocabulary.UNEDITED_STATUSES) < set(vocabulary.OPEN_STATUSES)


def test_training_snapshot_takes_exactly_the_training_statuses_and_splits(project: Project,
                                                                         tmp_path: Path) -> None:
    project.remove_image("a")
    expected_train = []
    for status in vocabulary.STATUSES:
        for split in vocabulary.SPLITS:
            image_id = f"{status}-{split}"
            record = project.add_image(write_image(tmp_path / "img" / f"{image_id}.png", noise_image(4, 5)),
                                       split=split, status=status)
            project.write_mask(record, np.zeros((4, 5), np.uint8))
            if status in ("labeled", "reviewed") and split in ("train", "unassigned"):
                expected_train.append(image_id)
    snapshot = data_snapshot(project)
    assert snapshot["images"]["train"] == sorted(expected_train)
    assert snapshot["images"]["val"] == ["labeled-val", "reviewed-val"]
