"""Fixtures shared by the whole suite: real CamVid projects, imported once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CAMVID = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "camvid"
CAMVID_MISSING = f"CamVid not found at {CAMVID} (../shared/data/camvid from the repo root)"


def camvid_dir() -> Path:
    """The shared CamVid folder, or skip the test with the reason."""
    if not (CAMVID / "classes.json").is_file() or not (CAMVID / "trainannot").is_dir():
        pytest.skip(CAMVID_MISSING)
    return CAMVID


@pytest.fixture(scope="session")
def camvid_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project holding all of CamVid (367 train + 101 val, masks, classes.json), imported
    once per session through the CLI. Treat it as read-only."""
    from segstudio.cli.main import main

    source = camvid_dir()
    root = tmp_path_factory.mktemp("camvid") / "camvid project"
    code = main([
        "import", str(root), "--format", "folders",
        "--images", str(source / "train"), "--masks", str(source / "trainannot"), "--split", "train",
        "--images", str(source / "val"), "--masks", str(source / "valannot"), "--split", "val",
        "--classes", str(source / "classes.json"),
    ])
    assert code == 0
    return root


@pytest.fixture(scope="session")
def small_camvid_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CamVid project for fast tests: the first 24 train and 8 val frames with their
    masks (files copied into the project). Treat it as read-only."""
    from segstudio.core.importers import ImportOptions, import_dataset

    source = camvid_dir()
    staging = tmp_path_factory.mktemp("camvid_small_src")
    pairs = []
    for split, count in (("train", 24), ("val", 8)):
        images, masks = staging / split, staging / f"{split}annot"
        images.mkdir()
        masks.mkdir()
        for path in sorted((source / split).glob("*.png"))[:count]:
            shutil.copyfile(path, images / path.name)
            shutil.copyfile(source / f"{split}annot" / path.name, masks / path.name)
        pairs.append((images, masks, split))
    root = tmp_path_factory.mktemp("camvid_small") / "small"
    import_dataset(root, "folders", ImportOptions(
        images=tuple(p[0] for p in pairs), masks=tuple(p[1] for p in pairs),
        splits=tuple(p[2] for p in pairs), classes_file=source / "classes.json", copy=True,
    ))
    shutil.rmtree(staging)
    return root
