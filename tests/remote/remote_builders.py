"""Generated projects for the remote tests: random images with blob masks, all labelled."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from segstudio.core.classes import ClassTable
from segstudio.core.project import Project


def make_project(root: Path, n_train: int = 4, n_val: int = 2, size: tuple[int, int] = (80, 64),
                 seed: int = 0) -> Project:
    """Images of noise with two classes of rectangles; masks say where the rectangles are."""
    rng = np.random.default_rng(seed)
    project = Project.create(root, ClassTable.from_names(["background", "box"]), name=root.name)
    (root / "images").mkdir(exist_ok=True)
    w, h = size
    for index in range(n_train + n_val):
        image = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
        mask = np.zeros((h, w), np.uint8)
        x, y = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        image[y:y + h // 3, x:x + w // 3] += 150
        mask[y:y + h // 3, x:x + w // 3] = 1
        path = root / "images" / f"img{index:02d}.png"
        cv2.imwrite(str(path), image)
        record = project.add_image(path, split="train" if index < n_train else "val")
        project.write_mask(record, mask, status="labeled", save_manifest=False)
    project.save()
    return project


# A tiny CPU recipe for runs on the test host: seconds per epoch.
TINY_TRAIN = ["--device", "cpu", "--arch", "unet", "--encoder", "resnet18", "--pretrained", "none",
              "--batch-size", "4", "--crop-size", "64", "--lr", "2e-3", "--augment", "light", "--loss", "ce",
              "--workers", "0", "--seed", "1", "--patience", "0", "--cache-mb", "16"]
