"""`segstudio predict` and `segstudio export-model` on real CamVid frames."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from segstudio.cli.main import main
from segstudio.core.classes import ClassTable, load_class_file
from segstudio.core.imageio import read_image_rgb

CAMVID = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "camvid"


def _camvid_frames(count: int) -> list[Path]:
    files = sorted((CAMVID / "val").glob("*.png")) if (CAMVID / "val").is_dir() else []
    if len(files) < count or not (CAMVID / "classes.json").is_file():
        pytest.skip(f"CamVid not found at {CAMVID} (../shared/data/camvid from the repo root)")
    return files[:count]


@pytest.fixture(scope="module")
def classes() -> ClassTable:
    _camvid_frames(1)
    return load_class_file(CAMVID / "classes.json")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, classes: ClassTable) -> Path:
    """A randomly initialised U-Net (resnet18) model file with the CamVid classes."""
    import torch

    from segstudio.engine.modelfile import ModelConfig, save_model
    from segstudio.engine.models import ModelSpec, create_model

    torch.manual_seed(0)
    spec = ModelSpec("unet", encoder="resnet18", num_classes=len(classes.trainable))
    folder = tmp_path_factory.mktemp("cli_model") / "unet"
    save_model(folder, create_model(spec).eval(), ModelConfig.from_spec(spec, classes, input_size=(352, 480)))
    return folder


def _read_palette_mask(path: Path) -> tuple[np.ndarray, list[int]]:
    with Image.open(path) as im:
        assert im.mode == "P"
        return np.asarray(im), im.getpalette()


def test_predict_writes_palette_masks_named_after_inputs(tmp_path: Path, model_dir: Path,
                                                         classes: ClassTable) -> None:
    frames = _camvid_frames(3)
    folder = tmp_path / "inputs"
    folder.mkdir()
    for frame in frames[:2]:
        shutil.copy(frame, folder / frame.name)
    out = tmp_path / "out"
    code = main(["predict", "--model", str(model_dir), str(folder), str(frames[2]), "--out", str(out),
                 "--device", "cpu"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f.name for f in frames)
    for frame in frames:
        mask, palette = _read_palette_mask(out / frame.name)
        assert mask.shape == (360, 480)
        assert set(np.unique(mask)) <= set(range(11))  # CamVid ids, never the ignore id 11
        assert palette[3 * 3 : 3 * 3 + 3] == [128, 64, 128]  # Road's colour at id 3


def test_predict_with_onnx_writes_the_same_masks_as_torch(tmp_path: Path, model_dir: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    frames = _camvid_frames(2)
    onnx_path = tmp_path / "unet.onnx"
    assert main(["export-model", str(model_dir), "--format", "onnx", "--out", str(onnx_path),
                 "--sample", str(frames[0])]) == 0
    assert "matches PyTorch" in capsys.readouterr().out
    for backend, model in (("torch", model_dir), ("onnx", onnx_path)):
        assert main(["predict", "--model", str(model), *map(str, frames), "--out", str(tmp_path / backend),
                     "--device", "cpu", "--threads", "2"]) == 0
    for frame in frames:
        torch_mask, _ = _read_palette_mask(tmp_path / "torch" / frame.name)
        onnx_mask, _ = _read_palette_mask(tmp_path / "onnx" / frame.name)
        assert onnx_mask.shape == torch_mask.shape == (360, 480)
        # Same masks up to float rounding at near-ties (the export criterion: >= 99.9% equal).
        assert (onnx_mask == torch_mask).mean() >= 0.999


def test_predict_tiles_an_image_larger_than_the_tile(tmp_path: Path, model_dir: Path) -> None:
    frame = _camvid_frames(1)[0]
    big = cv2.resize(read_image_rgb(frame), (1000, 750), interpolation=cv2.INTER_LINEAR)
    source = tmp_path / "big.jpg"
    Image.fromarray(big).save(source, quality=95)
    out = tmp_path / "out"
    assert main(["predict", "--model", str(model_dir), str(source), "--out", str(out), "--tile", "320",
                 "--device", "cpu"]) == 0
    mask, _ = _read_palette_mask(out / "big.png")
    assert mask.shape == (750, 1000)


@pytest.mark.parametrize("fmt", ["color", "overlay", "prob"])
def test_other_output_formats(tmp_path: Path, model_dir: Path, classes: ClassTable, fmt: str) -> None:
    frame = _camvid_frames(1)[0]
    out = tmp_path / fmt
    assert main(["predict", "--model", str(model_dir), str(frame), "--out", str(out), "--format", fmt,
                 "--tta", "--device", "cpu"]) == 0
    if fmt == "prob":
        probs = np.load(out / f"{frame.stem}.npy")
        assert probs.shape == (11, 360, 480) and probs.dtype == np.float16
        np.testing.assert_allclose(probs.astype(np.float32).sum(axis=0), 1.0, atol=1e-2)
        return
    rgb = read_image_rgb(out / frame.name)
    assert rgb.shape == (360, 480, 3)
    if fmt == "color":  # every pixel is some class colour
        colours = {tuple(c.color) for c in classes}
        assert {tuple(int(v) for v in px) for px in np.unique(rgb.reshape(-1, 3), axis=0)} <= colours


def test_export_bundle_and_errors(tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-model", str(model_dir), "--format", "torchscript", "--out", str(tmp_path / "b"),
                 "--bundle"]) == 0
    assert {p.name for p in (tmp_path / "b").iterdir()} == {"model.pt", "config.json", "README.md"}
    capsys.readouterr()
    assert main(["predict", "--model", str(model_dir), str(tmp_path / "nope.png"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path / "missing"), str(model_dir / "config.json"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err


def test_predict_a_gigapixel_geotiff_block_by_block(tmp_path: Path, model_dir: Path, classes: ClassTable,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A TIFF over the gigapixel side is never decoded whole: `predict` runs it block by block
    into a tiled class-id TIFF that keeps the source's georeferencing (a GIS lays it in place)."""
    import sys

    import tifffile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
    from gigapixel_builders import write_pyramid
    from imagery_builders import ORIGIN, geo_extratags

    from segstudio.core.gigapixel import GigapixelImage
    from segstudio.core.tiled_mask import TiledMaskStore
    from segstudio.engine.inference import load_predictor
    from segstudio.engine.tiled_predict import block_for, predict_gigapixel

    source = write_pyramid(tmp_path / "strip.tif", 12_100, 256, extratags=geo_extratags())
    out = tmp_path / "out"
    assert main(["predict", "--model", str(model_dir), str(source), "--out", str(out), "--device", "cpu"]) == 0
    assert "wrote 1 masks file(s)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["strip.tif"]  # the staging store is gone

    predictor = load_predictor(model_dir, device="cpu")
    store = TiledMaskStore(tmp_path / "direct.zarr", (12_100, 256), fill=classes.unlabeled_id)
    with GigapixelImage(source) as image:
        predict_gigapixel(predictor, image, store, block=block_for(predictor))
    with tifffile.TiffFile(out / "strip.tif") as tif:
        page = tif.pages[0]
        assert page.is_tiled and page.photometric == tifffile.PHOTOMETRIC.PALETTE
        assert np.array_equal(page.asarray(), store.read())
        assert list(page.tags[33922].value)[3:5] == list(ORIGIN)  # ModelTiepointTag
        assert len(tif.pages) > 1  # reduced-resolution overviews for viewers and GIS

    assert main(["predict", "--model", str(model_dir), str(source), "--out", str(out), "--format", "color"]) == 2
    assert "--format masks" in capsys.readouterr().err
