"""Build the built-in sample project (resources/sample) from CamVid road frames.

Run from the repository root: `python packaging/make_sample.py [CAMVID_DIR]`. It picks
frames spread over the CamVid train and val sequences, downscales them to 240x180 (JPEG
quality 90, masks by nearest neighbour so class ids stay exact) and writes a complete
segstudio project. A few train frames are left without masks for the pre-label workflow.
The result is committed, so the app never needs ../shared at run time.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

from segstudio.core import imageio
from segstudio.core.classes import load_class_file
from segstudio.core.project import Project

SIZE = (240, 180)
TRAIN_LABELED = 14
TRAIN_UNLABELED = 4
VAL_LABELED = 6
REVIEWED_EVERY = 3  # every third labelled train frame counts as reviewed


def _spread(names: list[str], count: int, offset: int = 0) -> list[str]:
    step = len(names) / count
    return [names[min(len(names) - 1, int(i * step) + offset)] for i in range(count)]


def _add(project: Project, camvid: Path, split_dir: str, name: str, split: str,
         status: str | None) -> None:
    rgb = imageio.read_image_rgb(camvid / split_dir / name)
    small = cv2.resize(rgb, SIZE, interpolation=cv2.INTER_AREA)
    target = project.root / "images" / (Path(name).stem + ".jpg")
    target.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {name}")
    target.write_bytes(data.tobytes())
    record = project.add_image(target, split=split)
    if status is None:
        return
    mask = imageio.read_mask(camvid / f"{split_dir}annot" / name, project.classes)
    small_mask = cv2.resize(mask, SIZE, interpolation=cv2.INTER_NEAREST).astype(np.uint8)
    project.write_mask(record, small_mask, status=status, save_manifest=False)


def build(camvid: Path, out: Path) -> Project:
    if out.exists():
        shutil.rmtree(out)
    classes = load_class_file(camvid / "classes.json")
    project = Project.create(out, classes, name="CamVid road scenes (sample)")
    train = sorted(p.name for p in (camvid / "train").glob("*.png"))
    val = sorted(p.name for p in (camvid / "val").glob("*.png"))
    labeled = _spread(train, TRAIN_LABELED)
    unlabeled = [n for n in _spread(train, TRAIN_UNLABELED, offset=7) if n not in labeled]
    for i, name in enumerate(labeled):
        _add(project, camvid, "train", name, "train", "reviewed" if i % REVIEWED_EVERY == 0 else "labeled")
    for name in unlabeled:
        _add(project, camvid, "train", name, "train", None)
    for name in _spread(val, VAL_LABELED):
        _add(project, camvid, "val", name, "val", "labeled")
    project.save()
    return project


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parents[1]
    camvid = Path(argv[0]) if argv else root.parent / "shared" / "data" / "camvid"
    if not (camvid / "classes.json").is_file():
        print(f"no CamVid data at {camvid}; pass its folder as the first argument", file=sys.stderr)
        return 2
    project = build(camvid, root / "segstudio" / "resources" / "sample")
    size = sum(p.stat().st_size for p in project.root.rglob("*") if p.is_file())
    print(f"images={len(project)} bytes={size} path={project.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
