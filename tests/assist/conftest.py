"""Stand-in model pairs, built once per test session (milliseconds each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.assist.stand_ins import write_pair


@pytest.fixture(scope="session")
def stand_in_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("assist_models")


@pytest.fixture(scope="session")
def pair(stand_in_dir: Path):
    """pair('sam1') -> (encoder, decoder) paths, cached per family."""
    made: dict[str, tuple[Path, Path]] = {}

    def get(family: str) -> tuple[Path, Path]:
        if family not in made:
            made[family] = write_pair(stand_in_dir, family)
        return made[family]

    return get
