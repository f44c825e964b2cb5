"""Exports: ONNX and TorchScript files of U-Net, SegNet and FCN-8s reproduce PyTorch on inputs of
several sizes; ONNX metadata and the deployment bundle say how to use them."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from segstudio.core.errors import ExportError
from segstudio.engine.export import MAX_ABS_DIFF, export_model
from segstudio.engine.modelfile import load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))  # model_fixtures, any import mode
from model_fixtures import camvid_classes, make_model_file

ARCHS = {"unet": "resnet18", "segnet": "vgg16_bn", "fcn8s": "resnet18"}
CHECK_SIZES = [(64, 96), (96, 64)]


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export_models")
    return {arch: make_model_file(root / arch, arch=arch, encoder=encoder) for arch, encoder in ARCHS.items()}


def _run_exported(path: Path, fmt: str, x: np.ndarray) -> np.ndarray:
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {"image": x})[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path))
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_export_reproduces_pytorch_at_several_sizes(model_folders: dict[str, Path], tmp_path: Path,
                                                    arch: str, fmt: str) -> None:
    report = export_model(model_folders[arch], fmt, tmp_path / f"model.{'onnx' if fmt == 'onnx' else 'pt'}",
                          sizes=CHECK_SIZES)
    assert report.passed, report.summary()
    assert [(c.height, c.width) for c in report.checks] == CHECK_SIZES
    assert report.max_abs_diff <= MAX_ABS_DIFF and report.argmax_agreement >= 0.999
    # An independent run at a third size and batch 2: height and width really are dynamic.
    model, _ = load_model(model_folders[arch])
    x = np.random.default_rng(1).normal(size=(2, 3, 128, 160)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = _run_exported(report.model_path, fmt, x)
    assert got.shape == expected.shape == (2, 11, 128, 160)
    assert np.abs(got - expected).max() <= MAX_ABS_DIFF
    assert np.abs(expected).max() > 0.01  # a live network, not one that outputs constants


def test_onnx_metadata_and_bundle(model_folders: dict[str, Path], tmp_path: Path) -> None:
    import onnx

    report = export_model(model_folders["fcn8s"], "onnx", tmp_path / "bundle", bundle=True, sizes=CHECK_SIZES)
    assert report.passed
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == ["README.md", "config.json", "model.onnx"]
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "bundle" / "model.onnx")).metadata_props}
    classes = json.loads(meta["classes"])
    assert classes == camvid_classes().to_list()
    norm = json.loads(meta["normalization"])
    assert norm["mean"] == pytest.approx([0.485, 0.456, 0.406]) and norm["max_pixel_value"] == 255
    assert json.loads(meta["output_class_ids"]) == list(range(11)) and meta["divisor"] == "32"
    readme = (tmp_path / "bundle" / "README.md").read_text()
    for needed in ("0.485", "0.229", "multiples of **32**", "softmax", "argmax", "RGB", "Unlabelled"):
        assert needed in readme, needed
    config = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert config["segstudio"]["arch"] == "fcn8s"


def test_safetensors_export_is_a_loadable_model_folder(model_folders: dict[str, Path], tmp_path: Path) -> None:
    report = export_model(model_folders["unet"], "safetensors", tmp_path / "copy", bundle=True, sizes=[(64, 64)])
    assert report.passed and report.max_abs_diff == 0.0
    assert {p.name for p in (tmp_path / "copy").iterdir()} == {"model.safetensors", "config.json", "README.md"}
    _, config = load_model(tmp_path / "copy")
    assert config.arch == "unet"


def test_bad_requests_are_clear_errors(model_folders: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="onnx"):
        export_model(model_folders["unet"], "tflite", tmp_path / "x")
    with pytest.raises(ExportError, match="multiple of 32"):
        export_model(model_folders["unet"], "onnx", tmp_path / "x.onnx", sizes=[(50, 64)])


def test_tolerance_is_1e3_for_trained_logits_and_scales_beyond() -> None:
    from segstudio.engine.export import ExportCheck

    assert ExportCheck(32, 32, 9e-4, 1.0, max_abs_logit=8.0).passed
    assert not ExportCheck(32, 32, 2e-3, 1.0, max_abs_logit=8.0).passed
    assert ExportCheck(32, 32, 1.3e-3, 1.0, max_abs_logit=226.0).passed  # 6e-6 of the logit scale
    assert not ExportCheck(32, 32, 0.05, 1.0, max_abs_logit=226.0).passed
    assert not ExportCheck(32, 32, 0.0, 0.998, max_abs_logit=8.0).passed
