"""`segstudio new | info | import | export` through main(): output, exit codes, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segstudio.cli.main import main
from segstudio.core.project import Project


def write_pair(src: Path, stem: str, value: int, size: tuple[int, int] = (12, 16)) -> None:
    (src / "images").mkdir(parents=True, exist_ok=True)
    (src / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(src / "images" / f"{stem}.png")
    Image.fromarray(np.full(size, value, np.uint8)).save(src / "masks" / f"{stem}.png")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_new_with_names_and_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "new", str(tmp_path / "a"), "--classes", "sky,road,__ignore__")
    assert code == 0 and "3 classes" in out
    names = [(c.id, c.name, c.ignore) for c in Project.open(tmp_path / "a").classes]
    assert names == [(0, "sky", False), (1, "road", False), (255, "unlabeled", True)]
    labels = tmp_path / "my labels.txt"
    labels.write_text("_background_\ncat\n")
    assert run(capsys, "new", str(tmp_path / "b"), "--classes", str(labels))[0] == 0
    assert [c.name for c in Project.open(tmp_path / "b").classes] == ["background", "cat", "unlabeled"]
    code, _, err = run(capsys, "new", str(tmp_path / "a"))
    assert code == 2 and err.startswith("error: ") and "already holds" in err
    code, _, err = run(capsys, "new", str(tmp_path / "c"), "--classes", str(tmp_path / "none.json"))
    assert code == 2 and "not found" in err


def test_import_report_info_and_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "data set ä"
    write_pair(src, "one", 1)
    write_pair(src, "two", 2)
    (src / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    project = tmp_path / "proj"
    code, out, _ = run(capsys, "import", str(project), "--format", "folders", "--images", str(src / "images"),
                       "--masks", str(src / "masks"), "--split", "train")
    assert code == 0
    assert "imported 2 images and 2 masks" in out and "train 2" in out
    assert "skipped 1 file(s):" in out and "broken.png: " in out
    code, out, _ = run(capsys, "info", str(project), "--json")
    data = json.loads(out)
    assert data["images"] == 2 and data["splits"]["train"] == 2 and data["status"]["labeled"] == 2
    assert {c["name"] for c in data["classes"]} == {"class_1", "class_2", "unlabeled"}
    assert data["pixel_share"]["class_1"] == pytest.approx(0.5)
    code, out, _ = run(capsys, "info", str(project))
    assert code == 0 and "class_2" in out and "50.00%" in out and "images   2" in out
    code, out, _ = run(capsys, "export", str(project), "--format", "voc", "--out", str(tmp_path / "voc"))
    assert code == 0 and "exported 2 images (voc)" in out
    assert (tmp_path / "voc" / "ImageSets" / "Segmentation" / "train.txt").read_text().split() == ["one", "two"]
    code, _, err = run(capsys, "export", str(project), "--format", "masks", "--out", str(tmp_path / "m"),
                       "--status", "predicted")
    assert code == 2 and "no images to export" in err


def test_sources_after_options_and_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "pics"
    write_pair(src, "a", 0)
    (src / "images" / "junk.png").write_bytes(b"nope")
    code, out, _ = run(capsys, "import", str(tmp_path / "p"), "--format", "images", str(src / "images"), "--split", "val")
    assert code == 0 and "imported 1 images and 0 masks" in out and "junk.png" in out
    code, _, err = run(capsys, "import", str(tmp_path / "q"), "--format", "images", "--strict", str(src / "images"))
    assert code == 2 and "junk.png" in err and "--strict" in err
    assert not (tmp_path / "q").exists()


def test_nothing_imported_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.json").write_text("{ broken")
    code, _, err = run(capsys, "import", str(tmp_path / "p"), "-f", "labelme", str(tmp_path / "empty"))
    assert code == 2 and "nothing could be imported" in err and "a.json: not valid JSON" in err
    code, _, err = run(capsys, "import", str(tmp_path / "p"), "-f", "voc", str(tmp_path / "empty"))
    assert code == 2 and "not a Pascal VOC folder" in err
    code, _, err = run(capsys, "info", str(tmp_path / "nowhere"))
    assert code == 2 and "not a segstudio project" in err


def test_schema_invalid_json_is_an_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": "nope", "categories": []}')
    code, _, err = run(capsys, "import", str(tmp_path / "p"), "--format", "coco", str(bad))
    assert code == 2 and err.startswith("error: ") and "bad.json: 'images' must be a list" in err


def test_camvid_info_of_the_val_split(camvid_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "info", str(camvid_project), "--json", "--split", "val")
    data = json.loads(out)
    assert code == 0 and data["images"] == 101 and data["splits"]["val"] == 101
    assert [c["id"] for c in data["classes"]] == list(range(12))
    assert data["classes"][11] == {"id": 11, "name": "Unlabelled", "color": [0, 0, 0], "ignore": True}


def test_segnet_layout_is_detected_from_the_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "mini camvid"
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            write_pair(root / "tmp", f"{split}{i}", i % 2)
        (root / "tmp" / "images").rename(root / split)
        (root / "tmp" / "masks").rename(root / f"{split}annot")
    (root / "classes.json").write_text(json.dumps({"ignore_index": 1, "classes": [
        {"id": 0, "name": "thing", "color": [1, 2, 3]}, {"id": 1, "name": "void", "color": [0, 0, 0]}]}))
    code, out, _ = run(capsys, "import", str(tmp_path / "p"), "-f", "folders", str(root), "--copy")
    assert code == 0 and "[train 3, val 2]" in out
    project = Project.open(tmp_path / "p")
    assert [c.name for c in project.classes] == ["thing", "void"] and project.classes.ignore_index == 1
    assert np.all(project.read_mask("train1") == 1)
