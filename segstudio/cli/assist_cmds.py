"""`segstudio assist` (a click or a box to a mask, headless) and `segstudio assist-models`
(list, add, download, remove the Segment-Anything-family models the assist uses).

onnxruntime is imported inside the command functions, so `segstudio --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from segstudio.assist.errors import AssistError


def register(subparsers: argparse._SubParsersAction) -> None:
    assist = subparsers.add_parser(
        "assist",
        help="turn clicks or a box into a mask with a Segment-Anything-family ONNX model",
        description="Run the click assist on one image and write the mask as an 8-bit PNG "
                    "(255 inside, 0 outside). X,Y are image pixels.",
    )
    assist.add_argument("image", help="the image file")
    assist.add_argument("--encoder", help="the model's encoder .onnx")
    assist.add_argument("--decoder", help="the model's decoder .onnx")
    assist.add_argument("--model", help="a registered assist model (see `assist-models list`) instead of --encoder/--decoder")
    assist.add_argument("--point", action="append", default=[], metavar="X,Y[,LABEL]",
                        help="a click; LABEL 1 positive (default) or 0 negative; repeatable")
    assist.add_argument("--box", metavar="X0,Y0,X1,Y1", help="a box around the object")
    assist.add_argument("--multimask-index", type=int, default=None, metavar="K",
                        help="write the decoder's mask K (0 = its single-mask answer) instead of the one shown first")
    assist.add_argument("--out", "-o", required=True, help="the mask PNG to write")
    assist.add_argument("--device", default="auto", help="auto (default), cpu, cuda, coreml or directml")
    assist.add_argument("--json", action="store_true", help="print predicted IoU, family and timings as JSON")
    assist.set_defaults(func=run_assist)

    models = subparsers.add_parser("assist-models", help="list, add, download or remove click-assist models",
                                   description="Models live in the user's data folder, not in projects.")
    actions = models.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the catalogue and the registered models")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=run_models_list)
    add = actions.add_parser("add", help="register an encoder/decoder pair you already have")
    add.add_argument("name")
    add.add_argument("--encoder", required=True)
    add.add_argument("--decoder", required=True)
    add.add_argument("--licence", default="unknown", help="its licence, shown where the model is picked")
    add.set_defaults(func=run_models_add)
    download = actions.add_parser("download", help="fetch a catalogue model (resumes, checks sha256)")
    download.add_argument("name")
    download.set_defaults(func=run_models_download)
    remove = actions.add_parser("remove", help="unregister a model (deletes downloaded files)")
    remove.add_argument("name")
    remove.set_defaults(func=run_models_remove)


def _model_files(args: argparse.Namespace) -> tuple[str, str]:
    if args.model:
        if args.encoder or args.decoder:
            raise AssistError("give either --model or --encoder and --decoder, not both")
        from segstudio.assist.store import ModelStore

        model = ModelStore().get(args.model)
        return model.encoder, model.decoder
    if not (args.encoder and args.decoder):
        raise AssistError("give --encoder ENC.onnx and --decoder DEC.onnx (or --model NAME)")
    return args.encoder, args.decoder


def run_assist(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from segstudio.assist.predictor import ClickAssistant
    from segstudio.assist.prompts import Prompt, parse_box, parse_point
    from segstudio.core.atomic import atomic_write_with
    from segstudio.core.imageio import read_image_rgb

    prompt = Prompt(tuple(parse_point(p) for p in args.point), parse_box(args.box) if args.box else None)
    if prompt.is_empty:
        raise AssistError("give at least one --point X,Y or a --box X0,Y0,X1,Y1")
    encoder, decoder = _model_files(args)
    started = time.perf_counter()
    assistant = ClickAssistant(encoder, decoder, device=args.device)
    load_s = time.perf_counter() - started
    image = read_image_rgb(args.image)
    started = time.perf_counter()
    embedding = assistant.embed(image)
    encode_s = time.perf_counter() - started
    result = assistant.predict(embedding, prompt)
    rank = 0 if args.multimask_index is None else result.by_output(args.multimask_index)
    mask = result.mask(rank)
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise AssistError(f"--out {out}: the mask is written as PNG; give a .png path")
    picture = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L")
    atomic_write_with(out, lambda handle: picture.save(handle, format="PNG"))
    chosen = result.candidates[rank]
    if args.json:
        print(json.dumps({
            "family": assistant.family, "provider": assistant.provider,
            "iou": round(chosen.iou, 4), "output_index": chosen.output_index,
            "candidates": [{"output_index": c.output_index, "iou": round(c.iou, 4)} for c in result.candidates],
            "mask_pixels": int(mask.sum()), "width": int(mask.shape[1]), "height": int(mask.shape[0]),
            "load_s": round(load_s, 4), "encode_s": round(encode_s, 4), "decode_ms": round(result.decode_ms, 2),
            "out": str(out),
        }))
    else:
        print(f"{out}: {int(mask.sum())} pixels, predicted IoU {chosen.iou:.3f} "
              f"({assistant.family} on {assistant.provider}; encode {encode_s:.2f} s, decode {result.decode_ms:.0f} ms)")
    return 0


def run_models_list(args: argparse.Namespace) -> int:
    from segstudio.assist.catalogue import CATALOGUE
    from segstudio.assist.store import ModelStore

    store = ModelStore()
    registered = store.models()
    if args.json:
        print(json.dumps({
            "folder": str(store.folder),
            "registered": {n: {"family": m.family, "encoder": m.encoder, "decoder": m.decoder,
                               "licence": m.licence, "source": m.source} for n, m in registered.items()},
            "catalogue": [{"name": e.name, "title": e.title, "family": e.family, "size_mb": e.size_mb,
                           "licence": e.licence, "source_page": e.source_page,
                           "commercial_use": e.commercial_use, "downloadable": e.downloadable,
                           "sha256": {"encoder": e.encoder.sha256 or "not known",
                                      "decoder": e.decoder.sha256 or "not known"}} for e in CATALOGUE],
        }, indent=2))
        return 0
    print(f"models folder: {store.folder}")
    print("catalogue:")
    for entry in CATALOGUE:
        mark = "*" if entry.name in registered else " "
        licence = entry.licence + ("" if entry.commercial_use else "  NOT FOR COMMERCIAL USE")
        how = "download" if entry.downloadable else "add from files"
        print(f" {mark} {entry.name:16} {entry.size_mb:6.0f} MB  {entry.family:12} {licence}  [{how}] {entry.source_page}")
    extra = [m for n, m in registered.items() if all(e.name != n for e in CATALOGUE)]
    if extra:
        print("added:")
        for model in extra:
            print(f" * {model.name:16} {model.family:12} {model.licence}  {model.encoder}")
    return 0


def run_models_add(args: argparse.Namespace) -> int:
    from segstudio.assist.predictor import ClickAssistant
    from segstudio.assist.store import ModelStore, RegisteredModel

    encoder, decoder = Path(args.encoder).resolve(), Path(args.decoder).resolve()
    assistant = ClickAssistant(encoder, decoder, device="cpu")  # checks the pair belongs together
    ModelStore().register(RegisteredModel(args.name, assistant.family, str(encoder), str(decoder), args.licence))
    print(f"registered {args.name}: {assistant.family} ({encoder.name}, {decoder.name})")
    return 0


def run_models_download(args: argparse.Namespace) -> int:
    from segstudio.assist.catalogue import CATALOGUE, catalogue_entry
    from segstudio.assist.download import download_model

    entry = catalogue_entry(args.name)
    if entry is None:
        names = ", ".join(e.name for e in CATALOGUE)
        raise AssistError(f"{args.name!r} is not in the catalogue ({names}); use `assist-models add` for other files")
    if not entry.commercial_use:
        print(f"note: {entry.title} is licensed {entry.licence}", file=sys.stderr)
    last = [-1]

    def progress(done: int, total: int, item: str) -> None:
        percent = int(100 * done / total) if total else -1
        if percent != last[0] and (percent % 5 == 0 or percent < 0):
            last[0] = percent
            shown = f"{percent}%" if percent >= 0 else f"{done >> 20} MB"
            print(f"{item}: {shown}", file=sys.stderr, flush=True)

    model, digests = download_model(entry, progress=progress)
    for role, remote in (("encoder", entry.encoder), ("decoder", entry.decoder)):
        if not remote.sha256:
            print(f"warning: no published sha256 for the {role}; not verified (sha256 {digests[role]})", file=sys.stderr)
    print(f"downloaded {entry.name} into {Path(model.encoder).parent}")
    return 0


def run_models_remove(args: argparse.Namespace) -> int:
    from segstudio.assist.store import ModelStore

    model = ModelStore().remove(args.name)
    kept = "" if model.source == "catalogue" else f" (its files stay in {Path(model.encoder).parent})"
    print(f"removed {args.name}{kept}")
    return 0
