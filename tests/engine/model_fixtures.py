"""Small randomly initialised model files with a CamVid class table, for model/inference tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segstudio.core.classes import ClassDef, ClassTable, load_class_file

CAMVID = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "camvid"
CAMVID_MISSING = f"CamVid not found at {CAMVID} (../shared/data/camvid from the repo root)"
# Light encoders keep every test fast; segformer's own encoder is mit_b0.
LIGHT_ENCODER = {"segformer": "mit_b0"}


def camvid_classes() -> ClassTable:
    """The CamVid class table (11 classes + 'Unlabelled' = 11 as ignore), from shared or inline."""
    path = CAMVID / "classes.json"
    if path.is_file():
        return load_class_file(path)
    names = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
             "Pedestrian", "Bicyclist"]
    colors = [(128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
              (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192)]
    defs = [ClassDef(i, n, c) for i, (n, c) in enumerate(zip(names, colors))]
    return ClassTable((*defs, ClassDef(11, "Unlabelled", (0, 0, 0), ignore=True)))


def camvid_image(split: str = "val", index: int = 0) -> tuple[Path, np.ndarray]:
    """A real 480x360 CamVid frame (path, RGB array); skips the test when shared is absent."""
    import pytest

    from segstudio.core.imageio import read_image_rgb

    folder = CAMVID / split
    files = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if not files:
        pytest.skip(CAMVID_MISSING)
    return files[index], read_image_rgb(files[index])


def make_model_file(folder: Path, arch: str = "unet", encoder: str = "resnet18",
                    classes: ClassTable | None = None, input_size: tuple[int, int] | None = (64, 96),
                    seed: int = 0) -> Path:
    """Save a randomly initialised model (eval mode) with a CamVid-like class table."""
    import torch

    from segstudio.engine.modelfile import ModelConfig, save_model
    from segstudio.engine.models import ModelSpec, create_model

    classes = classes or camvid_classes()
    torch.manual_seed(seed)
    spec = ModelSpec(arch, encoder=encoder, num_classes=len(classes.trainable))
    model = create_model(spec).eval()
    config = ModelConfig.from_spec(spec, classes, input_size=input_size, metrics={"miou": 0.0})
    save_model(folder, model, config)
    return folder
