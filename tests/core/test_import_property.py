"""Property: malformed JSON, images and masks never crash an importer and a failed import
never changes the project. Either a SegstudioError or a report (with skips) comes back."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from dataset_builders import noise_image, png_b64, project_state, write_gray, write_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segstudio.core.classes import ClassTable
from segstudio.core.errors import SegstudioError
from segstudio.core.importers import ImportOptions, import_dataset
from segstudio.core.project import Project

H, W = 12, 16
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)

LABELME = {
    "shapes": [
        {"label": "a", "shape_type": "polygon", "points": [[1, 1], [10, 1], [10, 8]]},
        {"label": "b", "shape_type": "circle", "points": [[5, 5], [8, 5]]},
        {"label": "__ignore__", "shape_type": "rectangle", "points": [[0, 0], [2, 2]]},
        {"label": "m", "shape_type": "mask", "points": [[3, 3], [6, 5]], "mask": "PLACEHOLDER"},
    ],
    "imagePath": "x.png",
    "imageData": None,
    "imageHeight": H,
    "imageWidth": W,
}
COCO = {
    "images": [{"id": 1, "file_name": "x.png", "width": W, "height": H}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 5, "iscrowd": 0, "segmentation": [[1, 1, 10, 1, 10, 8]]},
        {"id": 2, "image_id": 1, "category_id": 5, "iscrowd": 1,
         "segmentation": {"size": [H, W], "counts": [10, 5, H * W - 15]}},
    ],
    "categories": [{"id": 5, "name": "thing"}],
}


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and indices) into a JSON value, the root included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths_of(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths_of(item, (*prefix, index))
    return found


def mutate(template: dict[str, Any], data: st.DataObject) -> str:
    """The template with a few values replaced by random JSON, or its text cut short."""
    doc = copy.deepcopy(template)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = paths_of(doc)
        path = data.draw(st.sampled_from(paths))
        value = data.draw(json_values)
        if not path:
            doc = value
            continue
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    text = json.dumps(doc)
    if data.draw(st.booleans()) and len(text) > 2:
        text = text[: data.draw(st.integers(0, len(text) - 1))]
    return text


image_bytes = st.one_of(
    st.binary(max_size=64),
    st.integers(1, 200).map(lambda cut: _png_bytes()[:cut]),
    st.just(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40),
)


def _png_bytes() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(noise_image(H, W)).save(buffer, format="PNG")
    return buffer.getvalue()


def run_and_check(root: Path, fmt: str, options: ImportOptions) -> None:
    """The import either fails with a SegstudioError leaving every project file as it was,
    or succeeds with a project whose masks all read back."""
    before = project_state(root)
    try:
        report = import_dataset(root, fmt, options)
    except SegstudioError:
        assert project_state(root) == before
        return
    assert report.images >= 1
    project = Project.open(root)
    for record in project.images:
        project.read_mask(record)


def base_project(tmp: Path) -> Path:
    project = Project.create(tmp / "proj", ClassTable.from_names(["thing", "a", "b"]))
    project.add_image(write_image(tmp / "seed.png", noise_image(H, W)))
    project.save()
    return project.root


@SETTINGS
@given(data=st.data())
def test_labelme_json_fuzz(data: st.DataObject) -> None:
    template = copy.deepcopy(LABELME)
    patch = np.zeros((3, 4), np.uint8)
    patch[1, 1:3] = 255
    template["shapes"][3]["mask"] = png_b64(patch)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        root = base_project(tmp)
        write_image(tmp / "src" / "x.png", noise_image(H, W))
        (tmp / "src" / "x.json").write_text(mutate(template, data))
        run_and_check(root, "labelme", ImportOptions(sources=(tmp / "src",), strict=data.draw(st.booleans())))


@SETTINGS
@given(data=st.data())
def test_coco_json_fuzz(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        root = base_project(tmp)
        write_image(tmp / "src" / "x.png", noise_image(H, W))
        (tmp / "src" / "c.json").write_text(mutate(COCO, data))
        run_and_check(root, "coco", ImportOptions(sources=(tmp / "src" / "c.json",)))


@SETTINGS
@given(image=image_bytes, mask=image_bytes, value=st.integers(0, 255), size=st.tuples(st.integers(1, 20), st.integers(1, 20)),
       which=st.sampled_from(["folders", "voc", "cityscapes", "images"]), strict=st.booleans())
def test_image_and_mask_fuzz(image: bytes, mask: bytes, value: int, size: tuple[int, int], which: str,
                             strict: bool) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        root = base_project(tmp)
        src = tmp / "src"
        if which in ("folders", "images"):
            (src / "images").mkdir(parents=True)
            (src / "masks").mkdir()
            (src / "images" / "bad.png").write_bytes(image)
            (src / "masks" / "bad.png").write_bytes(mask)
            write_image(src / "images" / "good.jpg", noise_image(H, W))
            write_gray(src / "masks" / "good.png", np.full(size, value, np.uint8))
            options = ImportOptions(images=(src / "images",), masks=(src / "masks",), strict=strict) \
                if which == "folders" else ImportOptions(sources=(src,), strict=strict)
        elif which == "voc":
            (src / "JPEGImages").mkdir(parents=True)
            (src / "JPEGImages" / "bad.jpg").write_bytes(image)
            (src / "SegmentationClass").mkdir()
            (src / "SegmentationClass" / "bad.png").write_bytes(mask)
            write_image(src / "JPEGImages" / "good.jpg", noise_image(H, W))
            write_gray(src / "SegmentationClass" / "good.png", np.full(size, value, np.uint8))
            options = ImportOptions(sources=(src,), strict=strict)
        else:
            city = src / "leftImg8bit" / "train" / "c"
            labels = src / "gtFine" / "train" / "c"
            city.mkdir(parents=True)
            labels.mkdir(parents=True)
            (city / "bad_leftImg8bit.png").write_bytes(image)
            (labels / "bad_gtFine_labelIds.png").write_bytes(mask)
            write_image(city / "good_leftImg8bit.png", noise_image(H, W))
            write_gray(labels / "good_gtFine_labelIds.png", np.full(size, value, np.uint8))
            options = ImportOptions(sources=(src,), strict=strict)
        run_and_check(root, which, options)
