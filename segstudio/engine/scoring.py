"""`segstudio eval`: score a model file on a project split through the one inference path
(`engine.inference.infer`, image by image), so its figures are those of `predict`'s masks and
of the trainer's validation (which runs the same computation on batches)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from segstudio.core.errors import TrainingError
from segstudio.core.project import Project
from segstudio.engine.data import ClassMapping, ImageStore, eval_records
from segstudio.engine.inference import PredictorBase, load_predictor
from segstudio.engine.inference_settings import InferenceSettings
from segstudio.engine.metrics import ConfusionMatrix


def split_confusion(predictor: PredictorBase, project: Project, split: str) -> tuple[ConfusionMatrix, ClassMapping, int]:
    """The confusion matrix (model channel ids) of `predictor` over the split's labelled images."""
    mapping = ClassMapping.from_classes(predictor.config.classes)
    records = eval_records(project, split)
    if not records:
        raise TrainingError(f"project {project.name} has no labelled images in the {split} split to score")
    store = ImageStore(project, records, mapping)
    to_model = mapping.to_model_lut()
    matrix = ConfusionMatrix(mapping.num_classes)
    for index in range(len(store)):
        image, truth = store[index]
        predicted = to_model[predictor.predict(image).mask]
        matrix.update(torch.from_numpy(predicted), torch.from_numpy(np.ascontiguousarray(truth)))
    return matrix, mapping, len(store)


def evaluate_model_file(project: Project, path: Path, split: str, device: torch.device, amp: str,
                        batch_size: int | None = None,
                        settings: InferenceSettings | None = None) -> dict[str, Any]:
    """The eval report: miou, mean_dice, pixel_accuracy, mean_class_accuracy, per_class, ...,
    and `inference`: the settings it ran with (the model's own unless `settings` is given)."""
    predictor = load_predictor(path, device=str(device), amp=amp, settings=settings, batch_size=batch_size)
    matrix, mapping, images = split_confusion(predictor, project, split)
    metrics = matrix.compute()
    report = metrics.to_dict(mapping.names)
    report.update({"model": str(path), "split": split, "images": images, "pixels": metrics.pixels,
                   "inference": predictor.settings.to_dict(), "amp": amp})
    return report
