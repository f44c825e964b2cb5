"""Export a model file to safetensors, TorchScript or ONNX, and prove the export is faithful.

Every export is run on sample inputs of two sizes right after writing and compared with the
PyTorch model: max abs logit difference <= 1e-3 and identical argmax on >= 99.9% of pixels.
The second size checks that height and width really are dynamic. ONNX files carry the class
table and normalisation as metadata_props (JSON strings); a bundle adds config.json and a
README stating the exact pre- and post-processing.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from segstudio.core.atomic import atomic_write_json, atomic_write_text
from segstudio.core.errors import ExportError
from segstudio.engine.inference import normalize_image
from segstudio.engine.modelfile import ModelConfig, load_model, save_model
from segstudio.engine.onnx_runtime import ONNX_CONFIG_KEY, onnx_session_options

log = logging.getLogger(__name__)

FORMATS = ("safetensors", "torchscript", "onnx")
MAX_ABS_DIFF = 1e-3
# Logits beyond +-10 (untrained or very confident nets reach +-200) carry float32 rounding
# above 1e-3 that is no export error; there the allowance grows with the logit scale.
LOGIT_SCALE = 10.0
MIN_ARGMAX_AGREEMENT = 0.999
_SUFFIX = {"safetensors": "", "torchscript": ".pt", "onnx": ".onnx"}


@dataclass(frozen=True)
class ExportCheck:
    """One comparison of the exported file with PyTorch on an input of (height, width)."""

    height: int
    width: int
    max_abs_diff: float
    argmax_agreement: float
    max_abs_logit: float = 0.0
    min_agreement: float = MIN_ARGMAX_AGREEMENT
    check_logits: bool = True  # False for INT8: its logits differ by design, its masks may not

    @property
    def tolerance(self) -> float:
        """1e-3 for logits within +-10 (trained nets), 1e-4 of the largest logit beyond."""
        return MAX_ABS_DIFF * max(1.0, self.max_abs_logit / LOGIT_SCALE)

    @property
    def passed(self) -> bool:
        logits_ok = not self.check_logits or self.max_abs_diff <= self.tolerance
        return logits_ok and self.argmax_agreement >= self.min_agreement


@dataclass(frozen=True)
class ExportReport:
    """Where the export went and how closely it reproduces the PyTorch model."""

    format: str
    model_path: Path
    files: tuple[Path, ...]
    checks: tuple[ExportCheck, ...]

    @property
    def passed(self) -> bool:
        if not self.checks:
            return False
        if self.format == "onnx-int8":
            # the share of mask pixels the INT8 model gets as the float one does, over all the
            # calibration images: one hard frame (a dark one, 97%) need not fail a dataset at 99.3%
            return self.pixel_agreement >= self.checks[0].min_agreement
        return all(check.passed for check in self.checks)

    @property
    def pixel_agreement(self) -> float:
        """Argmax agreement over all the checks' pixels together."""
        sizes = [check.height * check.width for check in self.checks]
        total = sum(sizes)
        return sum(c.argmax_agreement * n for c, n in zip(self.checks, sizes)) / total if total else 0.0

    @property
    def max_abs_diff(self) -> float:
        return max(check.max_abs_diff for check in self.checks)

    @property
    def argmax_agreement(self) -> float:
        return min(check.argmax_agreement for check in self.checks)

    def failure(self) -> str:
        """Why the export failed (empty when it passed)."""
        if self.passed:
            return ""
        if self.format == "onnx-int8":
            return (f"the INT8 model agrees with the float model on only {self.pixel_agreement * 100:.2f}% of "
                    f"mask pixels (needs {self.checks[0].min_agreement * 100:.0f}%): calibrate with more "
                    "typical images (--calibration) or ship the float ONNX export")
        return "the exported model does not reproduce PyTorch's outputs"

    def summary(self) -> str:
        if self.format == "onnx-int8":
            verdict = "passes" if self.passed else "FAILS"
            sizes = ", ".join(f"{c.height}x{c.width}" for c in self.checks)
            return (f"onnx int8 export {verdict}: mask agreement with the float model "
                    f"{self.pixel_agreement * 100:.3f}% (needs {self.checks[0].min_agreement * 100:.0f}%; "
                    f"worst image {self.argmax_agreement * 100:.2f}%), on {len(self.checks)} image(s) ({sizes})")
        verdict = "matches PyTorch" if self.passed else "DOES NOT match PyTorch"
        sizes = ", ".join(f"{c.height}x{c.width}" for c in self.checks)
        tolerance = min(c.tolerance for c in self.checks)
        return (
            f"{self.format} export {verdict}: max |logit diff| {self.max_abs_diff:.2e} "
            f"(allowed {tolerance:.1e}), argmax agreement {self.argmax_agreement * 100:.3f}% "
            f"(inputs {sizes})"
        )


def _sample_inputs(config: ModelConfig, sizes: Sequence[tuple[int, int]] | None,
                   sample_image: np.ndarray | None) -> list[np.ndarray]:
    """Normalised (1, C, H, W) inputs: the given image (cropped to the divisor), else noise."""
    divisor = config.divisor
    inputs: list[np.ndarray] = []
    if sample_image is not None:
        chw = normalize_image(sample_image, config)
        height = max(divisor, chw.shape[1] // divisor * divisor)
        width = max(divisor, chw.shape[2] // divisor * divisor)
        if chw.shape[1] >= height and chw.shape[2] >= width:
            inputs.append(chw[None, :, :height, :width])
    if sizes is None:
        base_h, base_w = config.input_size or (256, 320)
        base_h = max(divisor, base_h // divisor * divisor)
        base_w = max(divisor, base_w // divisor * divisor)
        sizes = [(base_h, base_w), (base_h + divisor, max(divisor, base_w - divisor))]
    rng = np.random.default_rng(0)
    for height, width in sizes:
        if height % divisor or width % divisor:
            raise ExportError(f"check size {height}x{width} is not a multiple of {divisor}")
        if config.channels:  # raw bands: noise around the training statistics, in raw units
            raw = rng.normal(np.asarray(config.mean) * 255, np.asarray(config.std) * 255,
                             size=(height, width, config.in_channels)).astype(np.float32)
            inputs.append(normalize_image(raw, config)[None])
            continue
        noise = rng.integers(0, 256, size=(height, width, config.in_channels), dtype=np.uint8)
        inputs.append(normalize_image(noise[..., 0] if config.in_channels == 1 else noise, config)[None])
    return [np.ascontiguousarray(x, dtype=np.float32) for x in inputs]


def _compare(reference: np.ndarray, exported: np.ndarray) -> ExportCheck:
    if reference.shape != exported.shape:
        raise ExportError(f"the export returned shape {exported.shape}, PyTorch {reference.shape}")
    diff = float(np.abs(reference - exported).max())
    agreement = float((reference.argmax(axis=1) == exported.argmax(axis=1)).mean())
    scale = float(np.abs(reference).max())
    return ExportCheck(int(reference.shape[2]), int(reference.shape[3]), diff, agreement, scale)


def _torch_logits(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x)).float().numpy()


def _target_path(out: Path, fmt: str, bundle: bool) -> Path:
    if fmt == "safetensors":
        return out
    if bundle or out.is_dir() or out.suffix == "":
        return out / f"model{_SUFFIX[fmt]}"
    return out


def export_model(model_path: str | os.PathLike[str], fmt: str, out: str | os.PathLike[str], *,
                 bundle: bool = False, sizes: Sequence[tuple[int, int]] | None = None,
                 sample_image: np.ndarray | None = None, opset: int = 18, quantize: str | None = None,
                 calibration: Sequence[np.ndarray] | None = None) -> ExportReport:
    """Write `model_path` as `fmt` to `out` (a file, or a folder for bundles), then verify it.

    `sizes` are the (H, W) check inputs (default: the training size and one other); a
    `sample_image` is checked too. The report says whether the export reproduces PyTorch.
    `quantize="int8"` (ONNX): a static INT8 model calibrated on `calibration` images, checked
    for mask agreement with the float model on those images (the float file is not kept).
    """
    if quantize is not None:
        return _export_int8(model_path, fmt, Path(out), bundle, quantize, calibration, opset)
    fmt = fmt.strip().lower()
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format '{fmt}'; choose one of: {', '.join(FORMATS)}")
    model, config = load_model(model_path)
    model.float().eval()
    out = Path(out)
    target = _target_path(out, fmt, bundle)
    target.parent.mkdir(parents=True, exist_ok=True)
    inputs = _sample_inputs(config, sizes, sample_image)
    references = [_torch_logits(model, x) for x in inputs]
    if fmt == "safetensors":
        save_model(target, model, config)
        reloaded, _ = load_model(target)
        outputs = [_torch_logits(reloaded, x) for x in inputs]
        files = [target / "model.safetensors", target / "config.json"] if target.suffix == "" else [target]
    elif fmt == "torchscript":
        _export_torchscript(model, config, inputs[0], target)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation notice
            loaded = torch.jit.load(str(target), map_location="cpu")
        outputs = [_torch_logits(loaded, x) for x in inputs]
        files = [target]
    else:
        outputs = _export_onnx_checked(model, config, inputs, references, target, opset)
        files = [target]
    if bundle:
        files += _write_bundle_extras(target.parent if fmt != "safetensors" else target, fmt, target, config)
    checks = tuple(_compare(ref, got) for ref, got in zip(references, outputs))
    report = ExportReport(fmt, target, tuple(files), checks)
    log.info("%s", report.summary())
    return report


def _export_int8(model_path: str | os.PathLike[str], fmt: str, out: Path, bundle: bool, quantize: str,
                 calibration: Sequence[np.ndarray] | None, opset: int) -> ExportReport:
    import tempfile

    from segstudio.engine.quantize import (
        MIN_INT8_AGREEMENT,
        image_regions,
        model_inputs,
        quantize_int8,
    )

    if fmt != "onnx" or quantize != "int8":
        raise ExportError(f"quantisation '{quantize}' is only offered as int8 for the onnx format")
    if not calibration:
        raise ExportError("INT8 quantisation needs calibration images (a few typical images of the project)")
    with tempfile.TemporaryDirectory() as tmp:
        float_report = export_model(model_path, "onnx", Path(tmp) / "float.onnx", opset=opset)
        if not float_report.passed:
            return float_report
        _, config = load_model(model_path)
        target = _target_path(out, "onnx", bundle)
        target.parent.mkdir(parents=True, exist_ok=True)
        inputs = model_inputs(calibration, config)
        regions = image_regions(calibration, config)
        quantize_int8(float_report.model_path, target, inputs)
        references = _run_onnx(float_report.model_path, inputs)
    import onnx

    proto = onnx.load(str(target))
    del proto.metadata_props[:]
    for key, value in onnx_metadata(config).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(target))
    outputs = _run_onnx(target, inputs)
    # agreement on the image's own pixels, as the masks the INT8 model would write
    checks = tuple(replace(_compare(r[..., :h, :w], o[..., :h, :w]), min_agreement=MIN_INT8_AGREEMENT,
                           check_logits=False)
                   for r, o, (h, w) in zip(references, outputs, regions))
    files = [target]
    if bundle:
        files += _write_bundle_extras(target.parent, "onnx", target, config)
    report = ExportReport("onnx-int8", target, tuple(files), checks)
    log.info("%s", report.summary())
    return report


def _export_torchscript(model: nn.Module, config: ModelConfig, example: np.ndarray, target: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter; checked by running it
        try:
            traced = torch.jit.trace(model, torch.from_numpy(example), check_trace=False)
        except Exception as exc:  # tracing failures come in many types
            raise ExportError(f"TorchScript tracing of {config.arch} failed: {exc}") from exc
        extra = {"config.json": json.dumps(config.to_dict())}
        torch.jit.save(traced, str(target), _extra_files=extra)


def _export_onnx_checked(model: nn.Module, config: ModelConfig, inputs: list[np.ndarray],
                         references: list[np.ndarray], target: Path, opset: int) -> list[np.ndarray]:
    """TorchScript-based exporter first (several times faster here), then torch.export-based.

    The first is deprecated upstream and may go; the second is the future default. The second
    runs when the first fails or its file does not reproduce PyTorch on the check inputs.
    """
    errors: list[str] = []
    outputs: list[np.ndarray] | None = None
    for exporter in ("torchscript", "dynamo"):
        try:
            _export_onnx(model, config, inputs[0], target, opset, exporter)
            outputs = _run_onnx(target, inputs)
        except ExportError as exc:
            errors.append(str(exc))
            log.info("%s", exc)
            continue
        if all(_compare(r, o).passed for r, o in zip(references, outputs)):
            break
        log.info("the %s exporter's file does not match PyTorch; trying the next exporter", exporter)
    if outputs is None:
        raise ExportError("; ".join(errors))
    return outputs


def _export_onnx(model: nn.Module, config: ModelConfig, example: np.ndarray, target: Path,
                 opset: int, exporter: str) -> None:
    """Write `target` with the TorchScript-based ("torchscript") or torch.export-based exporter."""
    import onnx

    x = torch.from_numpy(example)
    try:
        if exporter == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (x,), str(target), input_names=["image"], output_names=["logits"],
                                  dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                                "logits": {0: "batch", 2: "height", 3: "width"}},
                                  dynamo=False, opset_version=min(opset, 17))
        else:
            _export_onnx_dynamo(model, x, target, config.divisor, opset)
    except Exception as exc:  # exporter failures come in many types
        raise ExportError(f"ONNX export of {config.arch} ({exporter} exporter) failed: {exc}") from exc
    proto = onnx.load(str(target))
    for key, value in onnx_metadata(config).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(target))


def _export_onnx_dynamo(model: nn.Module, x: torch.Tensor, target: Path, divisor: int, opset: int) -> None:
    from torch.export import Dim

    # H and W are declared multiples of the divisor, which is what the model assumes.
    shapes = {"x": {0: Dim("batch", min=1, max=256),
                    2: divisor * Dim("h_blocks", min=1, max=16384 // divisor),
                    3: divisor * Dim("w_blocks", min=1, max=16384 // divisor)}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(target), input_names=["image"], output_names=["logits"],
                          dynamic_shapes=shapes, dynamo=True, opset_version=opset,
                          external_data=False, verbose=False)


def onnx_metadata(config: ModelConfig) -> dict[str, str]:
    """metadata_props of an exported ONNX file: the whole config, plus its key parts apart."""
    data = config.to_dict()
    return {
        ONNX_CONFIG_KEY: json.dumps(data),
        "classes": json.dumps(data["classes"]),
        "output_class_ids": json.dumps(data["output_class_ids"]),
        "ignore_index": json.dumps(data["ignore_index"]),
        "normalization": json.dumps(data["normalization"]),
        "divisor": str(config.divisor),
        "input": "image: float32 NCHW RGB, (pixel / 255 - mean) / std, H and W multiples of divisor",
        "output": "logits: float32 N x num_classes x H x W; channel k = output_class_ids[k]",
        **({"bands": json.dumps(data["bands"]),
            "input": "image: float32 NCHW of the source bands `bands.indices` as raw values, "
                     "(pixel / 255 - mean) / std, H and W multiples of divisor"} if config.channels else {}),
    }


def _run_onnx(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), sess_options=onnx_session_options(),
                                       providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return [session.run(None, {name: x})[0] for x in inputs]
    except Exception as exc:  # onnxruntime's own exception types
        raise ExportError(f"ONNX Runtime cannot run the exported {path.name}: {exc}") from exc


def _write_bundle_extras(folder: Path, fmt: str, target: Path, config: ModelConfig) -> list[Path]:
    written: list[Path] = []
    if fmt != "safetensors":
        config_path = folder / "config.json"
        atomic_write_json(config_path, {"segstudio": config.to_dict()})
        written.append(config_path)
    readme = folder / "README.md"
    atomic_write_text(readme, bundle_readme(config, fmt, target.name))
    written.append(readme)
    return written


def bundle_readme(config: ModelConfig, fmt: str, model_name: str) -> str:
    """The deployment README: what goes in, what comes out, exactly."""
    mean = ", ".join(f"{v:.6g}" for v in config.mean)
    std = ", ".join(f"{v:.6g}" for v in config.std)
    rows = "\n".join(
        f"| {k} | {cls.id} | {cls.name} | {list(cls.color)} |" for k, cls in enumerate(config.classes.trainable)
    )
    ignore = config.classes.ignore_class
    ignore_line = (f"Class id {ignore.id} ('{ignore.name}') is the ignore/void class: the model never "
                   "predicts it." if ignore else "There is no ignore class.")
    size = f"{config.input_size[0]}x{config.input_size[1]}" if config.input_size else "unknown"
    loading = {
        "onnx": f"`onnxruntime.InferenceSession('{model_name}')`; input name `image`, output `logits`.",
        "torchscript": f"`torch.jit.load('{model_name}')`; call it on the input tensor.",
        "safetensors": "`segstudio predict --model <this folder> ...`, or `segstudio.engine.modelfile.load_model`"
                       + (" or `segmentation_models_pytorch.from_pretrained(<folder>)`"
                          if "_model_class" in _smp_hint(config) else "") + ".",
    }[fmt]
    return f"""# {config.arch} ({config.encoder}) segmentation model

Exported by segstudio {config.segstudio_version} as {fmt}. Load: {loading}
Metrics at export: {json.dumps(config.metrics) if config.metrics else "none recorded"}.
Trained at input size (H x W): {size}.

## Pre-processing (exactly)

1. Decode the image as 8-bit **RGB** (not BGR), shape H x W x {config.in_channels}.
2. Convert to float32 and divide by 255.
3. Per channel c: `x[c] = (x[c] - mean[c]) / std[c]` with mean = [{mean}], std = [{std}].
4. Transpose to C x H x W and add a batch axis: N x C x H x W.
5. Pad bottom and right (reflection padding) so H and W are multiples of **{config.divisor}**.
   Images much larger than the training size: run overlapping tiles and blend them.

## Post-processing (exactly)

1. The output is `logits`, float32 N x {config.num_classes} x H x W. Crop the padding away.
2. Probabilities: softmax over the class axis (axis 1).
3. Class index k = argmax over axis 1; the project class id is `output_class_ids[k]`,
   with output_class_ids = {list(config.output_class_ids)}.
4. Save masks as 8-bit PNG whose pixel values are class ids (a palette with the colours below).

| channel k | class id | name | colour (RGB) |
|---|---|---|---|
{rows}

{ignore_line}
"""


def _smp_hint(config: ModelConfig) -> dict[str, Any]:
    from segstudio.engine.models.registry import SMP_ARCHITECTURES

    return {"_model_class": True} if config.arch in SMP_ARCHITECTURES else {}


__all__ = ["ExportCheck", "ExportReport", "FORMATS", "export_model", "onnx_metadata"]
