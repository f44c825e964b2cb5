"""`segstudio predict` and `segstudio export-model`: use and ship trained model files.

torch, onnxruntime and the engine are imported inside the command functions, so building
the parser (and `segstudio --help`) stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from segstudio.core.errors import ModelError
from segstudio.core.imageio import is_image_file

log = logging.getLogger(__name__)

PREDICT_FORMATS = ("masks", "color", "overlay", "prob")
EXPORT_FORMATS = ("safetensors", "torchscript", "onnx")


def register(subparsers: argparse._SubParsersAction) -> None:
    predict = subparsers.add_parser(
        "predict",
        help="segment images with a model file (folder, .safetensors or .onnx)",
        description="Predict masks for images. INPUT may be image files or folders of images. "
                    "Gigapixel TIFFs (a side over 12,000 px) are predicted block by block with "
                    "bounded memory into tiled TIFF masks with the source's georeferencing.",
    )
    predict.add_argument("--model", "-m", required=True, help="model folder, its config.json / model.safetensors, or a .onnx file")
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    predict.add_argument("--out", "-o", required=True, help="folder for the results")
    predict.add_argument("--format", choices=PREDICT_FORMATS, default="masks",
                         help="masks: palette PNGs of class ids (default); color: RGB class colours; "
                              "overlay: image blended with colours; prob: float16 .npy (C,H,W) probabilities")
    predict.add_argument("--mode", choices=("auto", "whole", "tiled"), default=None,
                         help="whole image, tiles, or auto: whole unless past the memory budget "
                              "(default: the model's own settings, as `eval` uses)")
    predict.add_argument("--tile", type=int, default=None,
                         help="tile side in pixels (0 = never tile; default: the model's, 1024)")
    predict.add_argument("--overlap", type=float, default=None, help="tile overlap fraction (default 0.25)")
    predict.add_argument("--tta", action="store_true", default=None, help="average with a horizontally flipped run")
    predict.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    predict.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="auto",
                         help="mixed precision on a GPU (default auto, as `eval`)")
    predict.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    predict.add_argument("--batch-size", type=int, default=None, help="tiles per forward pass (default 4)")
    predict.set_defaults(func=run_predict)

    export = subparsers.add_parser(
        "export-model",
        help="export a model file to safetensors, TorchScript or ONNX (verified against PyTorch)",
        description="Export a model and check the export reproduces PyTorch's outputs.",
    )
    export.add_argument("model", help="model folder, its config.json or model.safetensors")
    export.add_argument("--format", "-f", choices=EXPORT_FORMATS, required=True)
    export.add_argument("--out", "-o", required=True, help="output file (or folder with --bundle)")
    export.add_argument("--bundle", action="store_true",
                        help="write a deployment folder: model + config.json + README.md")
    export.add_argument("--sample", default=None, help="an image to run in the check (default: noise)")
    export.add_argument("--quantize", choices=("int8",), default=None,
                        help="ONNX only: INT8 (static QDQ) model, verified to agree with the float "
                             "model on >= 99%% of mask pixels")
    export.add_argument("--calibration", nargs="+", default=None, metavar="IMAGES",
                        help="images or folders (or a project folder) to calibrate INT8 with "
                             "(default: the project the model lives in, else the --sample image)")
    export.set_defaults(func=run_export)


def collect_inputs(items: Iterable[str]) -> list[Path]:
    """Image files named directly, plus the images directly inside named folders (sorted)."""
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.is_file() and is_image_file(p)))
        elif path.is_file():
            found.append(path)
        else:
            raise ModelError(f"input {path} does not exist; give image files or folders")
    if not found:
        raise ModelError("no images found in the inputs; give image files or folders holding images")
    return found


def _output_names(paths: Sequence[Path], suffix: str) -> list[str]:
    """Output file names after each input's stem; repeated stems get _2, _3, ..."""
    names: list[str] = []
    used: set[str] = set()
    for path in paths:
        name, count = f"{path.stem}{suffix}", 1
        while name in used:
            count += 1
            name = f"{path.stem}_{count}{suffix}"
        used.add(name)
        names.append(name)
    return names


def make_predictor(args: argparse.Namespace) -> object:
    """The predictor `predict` runs: the model's own inference settings (those `eval` uses),
    with the options given on the command line, on the device and AMP `eval` would pick."""
    from segstudio.engine.device import resolve_amp, resolve_device
    from segstudio.engine.inference import load_predictor

    is_onnx = str(args.model).lower().endswith(".onnx")
    if is_onnx:
        device, amp = ("cpu" if args.device == "auto" else args.device), "off"
    else:
        if args.threads:
            import torch

            torch.set_num_threads(int(args.threads))
        resolved = resolve_device(args.device)
        device, amp = str(resolved), resolve_amp(args.amp, resolved)
    predictor = load_predictor(args.model, device=device, amp=amp, threads=args.threads, tile=args.tile,
                               overlap=args.overlap, tta=args.tta, batch_size=args.batch_size)
    if args.mode is not None:
        predictor.settings = predictor.settings.replace(mode=args.mode)
    return predictor


def predict_gigapixel_file(predictor: object, path: Path, target: Path) -> None:
    """A gigapixel image block by block into a tiled class-id TIFF at `target` (the model's
    class colours, the source's georeferencing, overviews): memory follows one block."""
    import shutil
    import tempfile

    from segstudio.core import rasters
    from segstudio.core.exporters.tiled import write_tiled_mask
    from segstudio.core.gigapixel import GigapixelImage
    from segstudio.core.tiled_mask import TiledMaskStore
    from segstudio.engine.tiled_predict import block_for, predict_gigapixel

    classes = predictor.config.classes  # type: ignore[attr-defined]
    staging = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", suffix=".zarr", dir=target.parent))
    try:
        with GigapixelImage(path) as image:
            store = TiledMaskStore(staging, image.shape, fill=classes.unlabeled_id)

            def step(done: int, total: int) -> None:
                log.info("%s: block %d of %d", path.name, done, total)

            result = predict_gigapixel(predictor, image, store, block=block_for(predictor), progress=step)  # type: ignore[arg-type]
        write_tiled_mask(target, store, classes, rasters.geo_tags(path))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("%s -> %s (%d blocks, mean entropy %.3f)", path.name, target.name, result.blocks, result.mean_entropy)


def predict_files(predictor: object, paths: Sequence[Path], out: Path, fmt: str = "masks") -> list[Path]:
    """Predict each image file and write `fmt` files named after it into `out`; the paths.
    Gigapixel TIFFs are predicted block by block into tiled TIFF masks (`masks` only)."""
    import numpy as np

    from segstudio.core.imageio import (
        colorize,
        overlay,
        read_image_raw,
        to_rgb8,
        write_mask,
        write_rgb_png,
    )

    out.mkdir(parents=True, exist_ok=True)
    classes = predictor.config.classes  # type: ignore[attr-defined]
    from segstudio.core.gigapixel import is_gigapixel_file

    huge = {path for path in paths if is_gigapixel_file(path)}
    if huge and fmt != "masks":
        raise ModelError(f"{sorted(huge)[0]} is a gigapixel image: it is predicted block by block into a "
                         f"tiled TIFF mask, which only --format masks writes; run it with --format masks")
    written = []
    for path, name in zip(paths, _output_names(paths, ".npy" if fmt == "prob" else ".png")):
        target = out / name
        if path in huge:
            target = target.with_suffix(".tif")
            predict_gigapixel_file(predictor, path, target)
            written.append(target)
            continue
        raw = read_image_raw(path)  # the model takes its own view: RGB8, or its raw bands
        result = predictor.predict(raw)  # type: ignore[attr-defined]
        if fmt == "masks":
            write_mask(target, result.mask, classes)
        elif fmt == "color":
            write_rgb_png(target, colorize(result.mask, classes))
        elif fmt == "overlay":
            write_rgb_png(target, overlay(to_rgb8(raw), result.mask, classes))
        else:
            np.save(target, result.probabilities.astype(np.float16))
        if log.isEnabledFor(logging.INFO):  # the softmax is only paid for when it is shown
            log.info("%s -> %s (mean entropy %.3f)", path.name, target.name, result.uncertainty().mean_entropy)
        written.append(target)
    return written


def run_predict(args: argparse.Namespace) -> int:
    paths = collect_inputs(args.inputs)
    out = Path(args.out)
    predictor = make_predictor(args)
    predict_files(predictor, paths, out, args.format)
    print(f"wrote {len(paths)} {args.format} file(s) to {out}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from segstudio.core.imageio import read_image_rgb
    from segstudio.engine.export import export_model

    sample = read_image_rgb(args.sample) if args.sample else None
    if args.quantize and args.format != "onnx":
        raise ModelError(f"--quantize {args.quantize} needs --format onnx (ONNX Runtime runs the INT8 model)")
    calibration = None
    if args.quantize:
        from segstudio.engine.quantize import calibration_images

        calibration = calibration_images(args.calibration, Path(args.model), sample)
    report = export_model(args.model, args.format, args.out, bundle=args.bundle, sample_image=sample,
                          quantize=args.quantize, calibration=calibration)
    print(report.summary())
    for path in report.files:
        print(f"wrote {path}")
    if not report.passed:
        print(f"error: {report.failure()}; do not deploy it", file=sys.stderr)
        return 1
    return 0
