"""Class tables: validation, VOC colours, class files, ignore handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segstudio.core.classes import ClassDef, ClassTable, load_class_file, parse_labels, voc_color
from segstudio.core.errors import ClassTableError


def test_voc_colours_match_the_published_map() -> None:
    # Pascal VOC: background black, aeroplane (128,0,0), person (192,128,128), void index 255.
    assert voc_color(0) == (0, 0, 0)
    assert voc_color(1) == (128, 0, 0)
    assert voc_color(15) == (192, 128, 128)
    assert voc_color(20) == (0, 64, 128)
    assert voc_color(255) == (224, 224, 192)


@pytest.mark.parametrize("defs, match", [
    ((ClassDef(0, "a", (0, 0, 0)), ClassDef(0, "b", (0, 0, 0))), "used twice"),
    ((ClassDef(0, "a", (0, 0, 0)), ClassDef(1, "a", (0, 0, 0))), "used twice"),
    ((ClassDef(300, "a", (0, 0, 0)),), "0-255"),
    ((ClassDef(1, " ", (0, 0, 0)),), "empty name"),
    ((ClassDef(1, "a", (0, 0, 999)),), "colour"),
    ((ClassDef(1, "a", (0, 0, 0), True), ClassDef(2, "b", (0, 0, 0), True)), "more than one"),
])
def test_invalid_tables_raise(defs: tuple[ClassDef, ...], match: str) -> None:
    with pytest.raises(ClassTableError, match=match):
        ClassTable(defs)


def test_class_files(tmp_path: Path) -> None:
    camvid_like = tmp_path / "classes.json"
    camvid_like.write_text(json.dumps({"ignore_index": 2, "classes": [
        {"id": 0, "name": "Sky", "color": [128, 128, 128]}, {"id": 1, "name": "Road"}, {"id": 2, "name": "Void"}]}))
    table = load_class_file(camvid_like)
    assert table.ignore_index == 2 and table.by_id(1).color == voc_color(1)
    assert [c.name for c in table.trainable] == ["Sky", "Road"]
    labels = tmp_path / "labels.txt"
    labels.write_text("# comment\n__ignore__\n_background_\n\ncar\n")
    table = load_class_file(labels)
    assert [(c.id, c.name, c.ignore) for c in table] == [(255, "unlabeled", True), (0, "background", False), (1, "car", False)]
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ClassTableError, match="not valid JSON"):
        load_class_file(tmp_path / "bad.json")
    with pytest.raises(ClassTableError, match="cannot read"):
        load_class_file(tmp_path / "missing.json")
    with pytest.raises(ClassTableError, match="names no classes"):
        parse_labels(["", "# x"])


def test_table_edits_and_lookups() -> None:
    table = ClassTable.from_names(["a", "b"]).ensure_ignore()
    assert table.ignore_index == 255 and table.unlabeled_id == 255
    assert table.next_free_id() == 2
    assert table.valid_lut()[[0, 1, 2, 255]].tolist() == [True, True, False, True]
    assert table.color_lut()[1].tolist() == list(voc_color(1))
    assert table.reordered([255, 1, 0]).ids == (255, 1, 0)
    inferred = ClassTable.from_ids([3, 255, 3, 0])
    assert [(c.id, c.name, c.ignore) for c in inferred] == [(0, "class_0", False), (3, "class_3", False), (255, "unlabeled", True)]
