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
        description="Predict masks for images. INPUT may be image files or folders of images.",
    )
    predict.add_argument("--model", "-m", required=True, help="model folder, its config.json / model.safetensors, or a .onnx file")
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    predict.add_argument("--out", "-o", required=True, help="folder for the results")
    predict.add_argument("--format", choices=PREDICT_FORMATS, default="masks",
                         help="masks: palette PNGs of class ids (default); color: RGB class colours; "
                              "overlay: image blended with colours; prob: float16 .npy (C,H,W) probabilities")
    predict.add_argument("--tile", type=int, default=None,
                         help="tile side in pixels for large images (0 = never tile; default: training size)")
    predict.add_argument("--overlap", type=float, default=0.25, help="tile overlap fraction (default 0.25)")
    predict.add_argument("--tta", action="store_true", help="average with a horizontally flipped run")
    predict.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    predict.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    predict.add_argument("--batch-size", type=int, default=4, help="tiles or images per forward pass")
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


def run_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from segstudio.core.imageio import colorize, overlay, read_image_rgb, write_mask, write_rgb_png
    from segstudio.engine.inference import load_predictor

    paths = collect_inputs(args.inputs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    options = {"tile": args.tile, "overlap": args.overlap, "tta": args.tta, "batch_size": args.batch_size}
    is_onnx = str(args.model).lower().endswith(".onnx")
    if is_onnx:
        options["threads"] = args.threads
    elif args.threads:
        import torch

        torch.set_num_threads(int(args.threads))
    device = ("cpu" if args.device == "auto" else args.device) if is_onnx else args.device
    predictor = load_predictor(args.model, device=device, **options)
    classes = predictor.config.classes
    suffix = ".npy" if args.format == "prob" else ".png"
    for path, name in zip(paths, _output_names(paths, suffix)):
        image = read_image_rgb(path)
        result = predictor.predict(image)
        target = out / name
        if args.format == "masks":
            write_mask(target, result.mask, classes)
        elif args.format == "color":
            write_rgb_png(target, colorize(result.mask, classes))
        elif args.format == "overlay":
            write_rgb_png(target, overlay(image, result.mask, classes))
        else:
            np.save(target, result.probabilities.astype(np.float16))
        summary = result.uncertainty()
        log.info("%s -> %s (mean entropy %.3f)", path.name, target.name, summary.mean_entropy)
    print(f"wrote {len(paths)} {args.format} file(s) to {out}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from segstudio.core.imageio import read_image_rgb
    from segstudio.engine.export import export_model

    sample = read_image_rgb(args.sample) if args.sample else None
    report = export_model(args.model, args.format, args.out, bundle=args.bundle, sample_image=sample)
    print(report.summary())
    for path in report.files:
        print(f"wrote {path}")
    if not report.passed:
        print("error: the exported model does not reproduce PyTorch's outputs; do not deploy it",
              file=sys.stderr)
        return 1
    return 0
