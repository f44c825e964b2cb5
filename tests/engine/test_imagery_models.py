"""Models over raw bands (issue 12): the 5-channel 16-bit OME-TIFF, the 4-band GeoTIFF and the
float32 single-band fixtures train a tiny model for a step with the right in_channels and
per-band statistics over the training images (recorded in the model and its ONNX file),
then predict through the one inference path, from the file and from the project alike."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from imagery_builders import dataset  # noqa: E402

from segstudio.core import channels  # noqa: E402
from segstudio.core.classes import ClassDef, ClassTable  # noqa: E402
from segstudio.core.importers import ImportOptions, import_dataset  # noqa: E402
from segstudio.core.project import Project  # noqa: E402
from segstudio.engine.config import TrainConfig  # noqa: E402
from segstudio.engine.data import prepare_data  # noqa: E402
from segstudio.engine.inference import Predictor, model_pixels  # noqa: E402
from segstudio.engine.modelfile import load_model  # noqa: E402

CLASSES = ClassTable((ClassDef(0, "background", (0, 0, 0)), ClassDef(1, "field", (0, 200, 0)),
                      ClassDef(255, "void", (128, 128, 128), ignore=True)))
KINDS = {"ome5": 5, "geo4": 4, "float1": 1}


def imported(tmp_path: Path, kind: str) -> Project:
    src = dataset(tmp_path / "src", kind, count=4, h=40, w=56)
    (tmp_path / "c.json").write_text(json.dumps({"ignore_index": 255, "classes": CLASSES.to_list()}))
    import_dataset(tmp_path / "p", "folders", ImportOptions(
        images=(src / "images",), masks=(src / "masks",), classes_file=tmp_path / "c.json", splits=("train",)))
    return Project.open(tmp_path / "p")


def tiny_config() -> TrainConfig:
    return TrainConfig(arch="unet", encoder="resnet18", pretrained=None, epochs=1, batch_size=2, crop_size=32,
                       lr=1e-3, augment="standard", loss="ce", workers=0, device="cpu", seed=1,
                       patience=0, preview_images=1, min_epoch_steps=1, run_name="tiny")


@pytest.mark.parametrize("kind", list(KINDS))
def test_trains_and_predicts_over_raw_bands(tmp_path: Path, kind: str) -> None:
    from segstudio.engine.trainer import fit

    project = imported(tmp_path, kind)
    data = prepare_data(project)
    result = fit(tiny_config(), data)
    model, config = load_model(result.model_dir)
    bands = KINDS[kind]
    assert config.in_channels == bands and config.channels == tuple(range(bands))
    table = channels.table_of(project.settings)
    assert table is not None and config.channel_names == table.names
    # Per-band statistics over every pixel of the training images, / 255: not per image.
    pixels = np.concatenate([channels.as_bands(project.read_raw(r)).reshape(-1, bands).astype(np.float64)
                             for r in data.train])
    np.testing.assert_allclose(np.asarray(config.mean) * 255, pixels.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(config.std) * 255, pixels.std(axis=0), rtol=1e-5)
    first = next(m for m in model.modules() if hasattr(m, "in_channels"))
    assert first.in_channels == bands
    predictor = Predictor(model, config)
    record = data.val[0]
    from_file = predictor.predict_file(project.image_path(record))
    from_project = predictor.predict(project.read_model_input(record))
    assert from_file.mask.shape == (record.height, record.width)
    np.testing.assert_array_equal(from_file.mask, from_project.mask)
    raw = project.read_raw(record)
    assert model_pixels(raw, config).dtype == np.float32
    previews = list((Path(result.run_dir) / "previews").glob("*.png"))
    assert previews


def test_onnx_carries_the_band_statistics(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from segstudio.engine.export import export_model
    from segstudio.engine.onnx_runtime import OnnxPredictor
    from segstudio.engine.trainer import fit

    project = imported(tmp_path, "geo4")
    result = fit(tiny_config(), prepare_data(project))
    model, config = load_model(result.model_dir)
    report = export_model(result.model_dir, "onnx", tmp_path / "m.onnx")
    assert report.check.ok if hasattr(report, "check") else True
    onnx = OnnxPredictor(tmp_path / "m.onnx")
    assert onnx.config.channels == config.channels and onnx.config.mean == config.mean
    record = project.images[0]
    torch_mask = Predictor(model, config).predict_file(project.image_path(record)).mask
    onnx_mask = onnx.predict_file(project.image_path(record)).mask
    assert (torch_mask == onnx_mask).mean() > 0.99
