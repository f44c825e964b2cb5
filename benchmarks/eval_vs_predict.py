"""Does `eval` score what `predict` writes? For a project and a model file (nothing is trained),
run `eval` (engine.scoring) and `predict` (cli.model_cmds.predict_files) over a split, score
predict's masks against the saved masks, and print per setting (whole image, tiled):

    eval_miou=...  predict_miou=...  miou_diff=...

    python benchmarks/eval_vs_predict.py --project PROJECT --model MODEL [--split val] [--tile 256]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def predict_miou(project: object, model: Path, split: str, settings: object, device: object, amp: str) -> float:
    """mIoU of the masks `predict` writes for the split's images, read back from disk."""
    import torch

    from segstudio.cli.model_cmds import predict_files
    from segstudio.core.imageio import read_mask
    from segstudio.engine.data import ClassMapping, eval_records
    from segstudio.engine.inference import load_predictor
    from segstudio.engine.metrics import ConfusionMatrix

    predictor = load_predictor(model, device=str(device), amp=amp, settings=settings)
    records = eval_records(project, split)  # type: ignore[arg-type]
    mapping = ClassMapping.from_classes(predictor.config.classes)
    lut = mapping.to_model_lut()
    paths = [project.image_path(r) for r in records]  # type: ignore[attr-defined]
    matrix = ConfusionMatrix(mapping.num_classes)
    with tempfile.TemporaryDirectory() as tmp:
        written = predict_files(predictor, paths, Path(tmp))
        for record, path in zip(records, written):
            predicted = lut[read_mask(path, predictor.config.classes)]
            truth = lut[project.read_mask(record)]  # type: ignore[attr-defined]
            matrix.update(torch.from_numpy(predicted), torch.from_numpy(np.ascontiguousarray(truth)))
    miou = matrix.compute().miou
    return float("nan") if miou is None else miou


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True, type=Path)
    parser.add_argument("--model", required=True, help="model folder/file or an id under PROJECT/models")
    parser.add_argument("--split", default="val", choices=("val", "test", "train"))
    parser.add_argument("--tile", type=int, default=256, help="tile side of the tiled setting (default 256)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    from segstudio.cli.engine_cmds import resolve_model_path
    from segstudio.core.project import Project
    from segstudio.engine.device import resolve_amp, resolve_device
    from segstudio.engine.inference_settings import InferenceSettings
    from segstudio.engine.scoring import evaluate_model_file

    project = Project.open(args.project)
    model = resolve_model_path(project.root, args.model)
    device = resolve_device(args.device)
    amp = resolve_amp("auto", device)
    for name, settings in (("whole", InferenceSettings(mode="whole")),
                           ("tiled", InferenceSettings(mode="tiled", tile=args.tile, overlap=0.25))):
        report = evaluate_model_file(project, model, args.split, device, amp, settings=settings)
        eval_miou = float(report["miou"]) if report["miou"] is not None else float("nan")
        pred_miou = predict_miou(project, model, args.split, settings, device, amp)
        print(f"setting={name} images={report['images']} eval_miou={eval_miou:.6f} "
              f"predict_miou={pred_miou:.6f} miou_diff={abs(eval_miou - pred_miou):.2e}")


if __name__ == "__main__":
    main()
