"""One inference path: `eval`, the trainer's validation and `predict` score a trained model
identically (whole image and tiled); settings live in the model config; INT8 export is verified."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from segstudio.core.errors import ModelError
from segstudio.core.imageio import read_mask
from segstudio.core.project import Project
from segstudio.engine.inference_settings import InferenceSettings
from segstudio.engine.modelfile import ModelConfig, read_config, save_model

sys.path.insert(0, str(Path(__file__).resolve().parent))  # fixtures, any import mode
from camvid_fixtures import TinyRun, tiny_trained_run  # noqa: E402
from model_fixtures import camvid_classes, camvid_image, make_model_file  # noqa: E402

SETTINGS = {"whole": InferenceSettings(mode="whole"),
            "tiled": InferenceSettings(mode="tiled", tile=64, overlap=0.25, batch_size=3)}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    run = tiny_trained_run(tmp_path_factory)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def _matrix_from_predict_masks(project: Project, model: Path, settings: InferenceSettings, out: Path) -> np.ndarray:
    """Write predict's mask files for the val images, read them back, count (truth, predicted)."""
    from segstudio.cli.model_cmds import predict_files
    from segstudio.engine.data import ClassMapping, eval_records
    from segstudio.engine.inference import load_predictor

    predictor = load_predictor(model, device="cpu", settings=settings)
    records = eval_records(project, "val")
    written = predict_files(predictor, [project.image_path(r) for r in records], out)
    mapping = ClassMapping.from_classes(predictor.config.classes)
    lut, k = mapping.to_model_lut(), mapping.num_classes
    matrix = np.zeros((k, k), dtype=np.int64)
    for record, path in zip(records, written):
        truth = lut[project.read_mask(record)].ravel().astype(np.int64)
        predicted = lut[read_mask(path, predictor.config.classes)].ravel().astype(np.int64)
        valid = truth != 255
        matrix += np.bincount(truth[valid] * k + predicted[valid], minlength=k * k).reshape(k, k)
    return matrix


@pytest.mark.parametrize("name", list(SETTINGS))
def test_eval_scores_exactly_the_masks_predict_writes(tiny: TinyRun, tmp_path: Path, name: str) -> None:
    from segstudio.engine.inference import load_predictor
    from segstudio.engine.metrics import metrics_from_confusion
    from segstudio.engine.scoring import evaluate_model_file, split_confusion

    project, model, settings = Project.open(tiny.project), tiny.project / "models" / "tiny", SETTINGS[name]
    if name == "tiled":  # the tiny project's 120x90 images really are cut into several tiles
        assert settings.tile_shape(96, 128, 32) == (64, 64)
    expected = _matrix_from_predict_masks(project, model, settings, tmp_path)
    assert expected.sum() > 10_000
    predictor = load_predictor(model, device="cpu", settings=settings)
    matrix, _, images = split_confusion(predictor, project, "val")
    assert images == 8 and np.array_equal(matrix.numpy(), expected)
    report = evaluate_model_file(project, model, "val", torch.device("cpu"), "off", settings=settings)
    assert report["inference"] == settings.to_dict()
    assert report["miou"] == metrics_from_confusion(expected).miou
    assert report["pixels"] == int(expected.sum())


@pytest.mark.parametrize("name", list(SETTINGS))
def test_trainer_validation_computes_what_infer_computes(tiny: TinyRun, name: str) -> None:
    from segstudio.engine.data import (
        ClassMapping,
        EvalDataset,
        ImageStore,
        SizeGroupedBatches,
        eval_records,
        make_loader,
    )
    from segstudio.engine.evaluate import evaluate
    from segstudio.engine.inference import load_predictor
    from segstudio.engine.scoring import split_confusion

    project, model_path = Project.open(tiny.project), tiny.project / "models" / "tiny"
    predictor = load_predictor(model_path, device="cpu", settings=SETTINGS[name])
    config = predictor.config
    mapping = ClassMapping.from_classes(config.classes)
    store = ImageStore(project, eval_records(project, "val"), mapping)
    dataset = EvalDataset(store, config.divisor)
    loader = make_loader(dataset, batch_sampler=SizeGroupedBatches(dataset, 4))
    result = evaluate(predictor.model, loader, mapping.num_classes, torch.device("cpu"), mean=config.mean,
                      std=config.std, settings=SETTINGS[name], divisor=config.divisor)
    matrix, _, _ = split_confusion(predictor, project, "val")
    assert result.metrics == matrix.compute()


def test_settings_round_trip_through_the_model_config(tmp_path: Path) -> None:
    folder = make_model_file(tmp_path / "m")
    assert read_config(folder).inference == InferenceSettings()  # default
    config = read_config(folder)
    custom = InferenceSettings(mode="tiled", tile=512, overlap=0.5, blend="uniform", tta=True, pad_divisor=64)
    data = ModelConfig.from_dict({**config.to_dict(), "inference": custom.to_dict()}).to_dict()
    assert ModelConfig.from_dict(data).inference == custom
    old = config.to_dict()
    del old["inference"]  # a model file written before the settings existed
    assert ModelConfig.from_dict(old).inference == InferenceSettings()
    from segstudio.engine.modelfile import load_model

    model, _ = load_model(folder)
    from dataclasses import replace

    save_model(tmp_path / "n", model, replace(config, inference=custom))
    assert read_config(tmp_path / "n").inference == custom
    with pytest.raises(ModelError, match="inference mode 'sideways'"):
        ModelConfig.from_dict({**old, "inference": {"mode": "sideways"}})


def test_auto_runs_whole_within_the_budget_and_tiles_of_1024_past_it() -> None:
    auto = InferenceSettings()
    assert auto.tile_shape(384, 480, 32) is None
    assert auto.tile_shape(4096, 4096, 32) == (1024, 1024)
    assert InferenceSettings(tile=256).tile_shape(4096, 3000, 32) == (1024, 1024)  # at least 1024
    assert InferenceSettings(max_whole_pixels=100).tile_shape(512, 2048, 32) == (512, 1024)
    assert InferenceSettings(mode="tiled", tile=256).tile_shape(512, 200, 32) == (256, 200)
    assert InferenceSettings(mode="tiled", tile=1024).tile_shape(512, 640, 32) is None  # one tile = whole
    assert InferenceSettings(pad_divisor=48).divisor(32) == 64


def test_onnx_session_options_are_applied(tmp_path: Path) -> None:
    import onnxruntime as ort

    from segstudio.engine.export import export_model
    from segstudio.engine.onnx_runtime import OnnxPredictor, onnx_session_options, physical_cores

    options = onnx_session_options()
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.enable_cpu_mem_arena and options.enable_mem_pattern
    report = export_model(make_model_file(tmp_path / "m"), "onnx", tmp_path / "m.onnx", sizes=[(64, 96)])
    predictor = OnnxPredictor(report.model_path)
    used = predictor.session.get_session_options()
    assert used.intra_op_num_threads == physical_cores()
    assert used.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert used.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_int8_export_is_verified_against_the_float_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    from segstudio.cli.main import main
    from segstudio.engine import quantize
    from segstudio.engine.export import export_model

    folder = make_model_file(tmp_path / "m", classes=camvid_classes())
    small = [cv2.resize(camvid_image("val", i)[1], (160, 128), interpolation=cv2.INTER_AREA) for i in range(3)]
    report = export_model(folder, "onnx", tmp_path / "q.onnx", quantize="int8", calibration=small)
    assert report.format == "onnx-int8" and report.model_path.is_file()
    assert len(report.checks) == 3 and all(0.0 <= c.argmax_agreement <= 1.0 for c in report.checks)
    assert "mask agreement with the float model" in report.summary()
    pixels = [c.height * c.width for c in report.checks]
    overall = sum(c.argmax_agreement * n for c, n in zip(report.checks, pixels)) / sum(pixels)
    assert abs(report.pixel_agreement - overall) < 1e-12 and report.argmax_agreement <= overall
    assert report.passed == (overall >= 0.99)  # over all the images' pixels; the worst is reported
    assert f"worst image {report.argmax_agreement * 100:.2f}%" in report.summary()
    if not report.passed:
        assert "agrees with the float model on only" in report.failure()
    import onnx

    assert "segstudio_config" in {p.key for p in onnx.load(str(report.model_path)).metadata_props}
    # An unreachable bar: the command fails and says why.
    monkeypatch.setattr(quantize, "MIN_INT8_AGREEMENT", 1.01)
    cv2.imwrite(str(tmp_path / "cal.png"), cv2.cvtColor(small[0], cv2.COLOR_RGB2BGR))
    code = main(["export-model", str(folder), "--format", "onnx", "--quantize", "int8", "--out",
                 str(tmp_path / "r.onnx"), "--calibration", str(tmp_path / "cal.png")])
    assert code == 1
    assert "agrees with the float model on only" in capsys.readouterr().err
    assert main(["export-model", str(folder), "--format", "torchscript", "--quantize", "int8",
                 "--out", str(tmp_path / "x.pt")]) == 2
