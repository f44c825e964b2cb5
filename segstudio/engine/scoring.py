"""`segstudio eval`: score a model file on a project split exactly as the trainer validates
(whole images padded to the model's divisor, one confusion matrix over the split)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from segstudio.core.errors import TrainingError
from segstudio.core.project import Project
from segstudio.engine.data import (
    ClassMapping,
    EvalDataset,
    ImageStore,
    SizeGroupedBatches,
    eval_records,
    make_loader,
)
from segstudio.engine.evaluate import evaluate


def evaluate_model_file(project: Project, path: Path, split: str, device: torch.device, amp: str,
                        batch_size: int | None = None) -> dict[str, Any]:
    """The eval report: miou, mean_dice, pixel_accuracy, mean_class_accuracy, per_class, ..."""
    from segstudio.engine.modelfile import load_model

    model, config = load_model(path, device)
    mapping = ClassMapping.from_classes(config.classes)
    records = eval_records(project, split)
    if not records:
        raise TrainingError(f"project {project.name} has no labelled images in the {split} split to score")
    store = ImageStore(project, records, mapping)
    dataset = EvalDataset(store, config.divisor)
    # The trainer's validation batch by default: same batches, same kernels, same figures.
    batch_size = batch_size or int(config.training.get("val_batch_size") or 4)
    loader = make_loader(dataset, batch_sampler=SizeGroupedBatches(dataset, max(1, batch_size)))
    model = model.to(device)
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True  # as in training
    result = evaluate(model, loader, mapping.num_classes, device, amp=amp,
                      mean=config.mean, std=config.std,
                      channels_last=channels_last)
    report = result.metrics.to_dict(mapping.names)
    report.update({"model": str(path), "split": split, "images": result.images,
                   "pixels": result.metrics.pixels})
    return report
