"""Hostile files: manifests and imports whose paths escape, decompression bombs, a huge COCO
file, model folders that link outside themselves, and no pickle loaded anywhere."""

from __future__ import annotations

import base64
import json
import os
import re
import struct
import time
import tracemalloc
from pathlib import Path

import pytest
from dataset_builders import huge_png_header, noise_image, write_image

from segstudio.core import imageio
from segstudio.core.classes import ClassTable
from segstudio.core.errors import (
    DatasetImportError,
    ImageReadError,
    MaskError,
    ModelError,
    ProjectError,
)
from segstudio.core.importers import coco
from segstudio.core.importers.base import ImportOptions, Skip
from segstudio.core.importers.driver import run_import
from segstudio.core.importers.images import scan as scan_images
from segstudio.core.importers.labelme import scan as scan_labelme
from segstudio.core.project import Project

CLASSES = ClassTable.from_names(["bg", "cell", "void"], ignore="void")
REPO = Path(__file__).resolve().parents[2]


def skips(source: object) -> list[Skip]:
    return [item for item in source.items if isinstance(item, Skip)]  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad_id", ["../../evil", "/tmp/evil", "a/b", "..", "x\\..\\..\\y"])
def test_manifest_image_ids_that_lead_out_of_masks_are_refused(tmp_path: Path, bad_id: str) -> None:
    project = Project.create(tmp_path / "p", CLASSES)
    data = json.loads(project.manifest_path.read_text())
    data["images"] = [{"id": bad_id, "path": "x.png", "width": 8, "height": 6}]
    project.manifest_path.write_text(json.dumps(data))
    with pytest.raises(ProjectError, match="not a plain file name"):
        Project.open(project.root)


def test_coco_file_names_that_escape_the_image_folder_are_skipped(tmp_path: Path) -> None:
    secret = write_image(tmp_path / "secret" / "s.png", noise_image(6, 8))
    root = tmp_path / "ds"
    write_image(root / "ok.png", noise_image(6, 8))
    (root / "link.png").symlink_to(secret)
    doc = {"images": [{"id": 1, "file_name": "ok.png"}, {"id": 2, "file_name": "../secret/s.png"},
                      {"id": 3, "file_name": str(secret)}, {"id": 4, "file_name": "link.png"}],
           "annotations": [], "categories": [{"id": 1, "name": "car"}]}
    (root / "ann.json").write_text(json.dumps(doc))
    source = coco.scan(ImportOptions(sources=(root / "ann.json",), images=(root,)), None)
    items = list(source.items)
    assert [i.name for i in items if not isinstance(i, Skip)] == ["ok"]
    reasons = [i.reason for i in items if isinstance(i, Skip)]
    assert len(reasons) == 3 and all("outside" in r for r in reasons), reasons


def test_labelme_image_paths_that_escape_are_skipped(tmp_path: Path) -> None:
    secret = write_image(tmp_path / "far" / "away" / "s.png", noise_image(6, 8))
    src = tmp_path / "ds" / "ann"
    src.mkdir(parents=True)
    write_image(tmp_path / "ds" / "images" / "ok.png", noise_image(6, 8))  # LabelMe's ../images layout
    shape = {"label": "cell", "points": [[0, 0], [3, 0], [3, 3]], "shape_type": "polygon"}
    for name, image_path in {"ok": "../images/ok.png", "up": "../../far/away/s.png", "abs": str(secret)}.items():
        (src / f"{name}.json").write_text(json.dumps({"shapes": [shape], "imagePath": image_path}))
    source = scan_labelme(ImportOptions(sources=(src,)), None)
    items = list(source.items)
    assert [i.name for i in items if not isinstance(i, Skip)] == ["ok"]
    reasons = {i.path.stem: i.reason for i in items if isinstance(i, Skip)}
    assert "absolute" in reasons["abs"] and "outside" in reasons["up"]


def test_image_folder_links_out_and_loops_are_skipped(tmp_path: Path) -> None:
    secret = write_image(tmp_path / "secret.png", noise_image(6, 8))
    src = tmp_path / "pics"
    write_image(src / "a.png", noise_image(6, 8))
    (src / "out.png").symlink_to(secret)
    (src / "loop").symlink_to(src, target_is_directory=True)
    started = time.monotonic()
    items = list(scan_images(ImportOptions(sources=(src,)), None).items)
    assert time.monotonic() - started < 5
    assert [i.name for i in items if not isinstance(i, Skip)] == ["a"]
    reasons = {i.path.name: i.reason for i in items if isinstance(i, Skip)}
    assert "outside" in reasons["out.png"] and "loop" in reasons["loop"]


def tiff_header(path: Path, w: int, h: int) -> Path:
    """A little-endian TIFF whose header says w x h 8-bit grey, with one byte of data."""
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 12 * 8 + 4), (278, 4, 1, h), (279, 4, 1, 1)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + struct.pack("<I", 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00")
    return path


def test_png_and_tiff_bombs_are_refused_before_decoding(tmp_path: Path) -> None:
    png = huge_png_header(tmp_path / "bomb.png")  # 20000 x 20000 in a few hundred bytes
    started = time.monotonic()
    with pytest.raises(ImageReadError, match="decompression bomb"):
        imageio.read_image_raw(png)
    with pytest.raises(MaskError, match="decompression bomb"):
        imageio.read_mask_array(png)
    tif = tiff_header(tmp_path / "pics" / "bomb.tif", 50000, 50000)
    assert imageio.read_image_info(tif).width == 50000  # the header alone is fine
    with pytest.raises(ImageReadError, match="more than segstudio opens"):
        imageio.read_image_raw(tif)
    assert time.monotonic() - started < 5
    write_image(tmp_path / "pics" / "fine.png", noise_image(6, 8))
    report = run_import(tmp_path / "p", "images", scan_images, ImportOptions(sources=(tmp_path / "pics",)))
    # A 50k TIFF could be a gigapixel slide (read by tiles, issue 12): a header-only one is a bomb.
    assert report.images == 1 and "decompression bomb" in report.skipped[0][1]


def test_labelme_embedded_bombs_are_skipped(tmp_path: Path) -> None:
    bomb = base64.b64encode(huge_png_header(tmp_path / "b.png").read_bytes()).decode()
    small = base64.b64encode(write_image(tmp_path / "s.png", noise_image(6, 8)).read_bytes()).decode()
    src = tmp_path / "ds"
    src.mkdir()
    polygon = {"label": "cell", "points": [[0, 0], [3, 0], [3, 3]], "shape_type": "polygon"}
    mask_shape = {"label": "cell", "points": [[0, 0], [3, 3]], "shape_type": "mask", "mask": bomb}
    (src / "data.json").write_text(json.dumps({"shapes": [polygon], "imageData": bomb}))
    (src / "mask.json").write_text(json.dumps({"shapes": [mask_shape], "imageData": small}))
    started = time.monotonic()
    with pytest.raises(DatasetImportError) as caught:  # nothing left to import: the user is told why
        run_import(tmp_path / "p", "labelme", scan_labelme, ImportOptions(sources=(src,)))
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert f"{src / 'data.json'}: imageData claims 20000x20000 pixels in 312 bytes; this looks like a decompression bomb" in message
    assert f"{src / 'mask.json'}: shape 0 ('cell'): mask is 20000x20000 but its points span 4x4" in message


def test_a_big_coco_file_stays_within_a_memory_budget(tmp_path: Path) -> None:
    """30k annotations (a 4 MB file): the import streams it (core/importers/jsonstream.py into
    coco_store's compact per-image form; 0.25 kB per annotation at 200k, 2.5 kB with json.load),
    and a file whose compact form would not fit in free memory is refused before reading
    (tests/core/test_import_coco_stream.py). The bound here stays generous."""
    n = 30_000
    anns = [{"id": i, "image_id": i % 10, "category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4]],
             "area": 8, "bbox": [0, 0, 4, 4], "iscrowd": 0} for i in range(n)]
    images = [{"id": k, "file_name": f"i{k}.png"} for k in range(10)]
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "car"}]}))
    del anns
    tracemalloc.start()
    try:
        items = list(coco.scan(ImportOptions(sources=(path,)), None).items)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(items) == 10
    assert peak / n < 600, f"{peak / n:.0f} bytes per annotation"


def test_a_model_folder_linking_outside_itself_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from segstudio.engine.modelfile import load_model

    outside = tmp_path / "elsewhere" / "stolen.safetensors"
    outside.parent.mkdir()
    outside.write_bytes(b"not weights")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").symlink_to(outside)
    with pytest.raises(ModelError, match="leads outside its model folder"):
        load_model(folder)


PICKLE_RISKS = [
    (re.compile(r"\bpickle\.loads?\("), "pickle.load"),
    (re.compile(r"\b(cPickle|dill|joblib)\.load"), "pickle-based load"),
    (re.compile(r"allow_pickle\s*=\s*True"), "np.load(allow_pickle=True)"),
    (re.compile(r"\btorch\.load\("), "torch.load without weights_only=True"),
]


def call_arguments(text: str, start: int) -> str:
    """The text of a call's arguments, from just after its '(' to the matching ')'."""
    depth, index = 1, start
    while depth and index < len(text):
        depth += {"(": 1, ")": -1}.get(text[index], 0)
        index += 1
    return text[start:index - 1]


def is_safe(pattern: re.Pattern[str], text: str, match: re.Match[str]) -> bool:
    if "torch" not in pattern.pattern:
        return False
    return re.search(r"weights_only\s*=\s*True", call_arguments(text, match.end())) is not None


def test_no_pickle_is_ever_loaded() -> None:
    found = []
    for folder in ("segstudio", "benchmarks", "packaging"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for pattern, what in PICKLE_RISKS:
                for match in pattern.finditer(text):
                    if is_safe(pattern, text, match):
                        continue
                    line = text.count("\n", 0, match.start()) + 1
                    found.append(f"{path.relative_to(REPO)}:{line}: {what}")
    assert found == [], "\n".join(found)
    assert os.path.isdir(REPO / "segstudio")
