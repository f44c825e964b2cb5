"""The worker side of the loop: load a model and turn engine predictions into core ones.

Imported only inside predict/export workers (never on the UI thread), because importing the
engine imports torch, which takes seconds. No Qt here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.classes import ClassTable
from segstudio.core.loop import ImageScore, Prediction


@dataclass
class LoadedModel:
    """A predictor plus how its class ids map onto the project's."""

    path: Path
    predictor: Any
    lut: np.ndarray  # model class id -> project class id
    note: str


class ModelSlot:
    """Keeps the last loaded model between jobs (thread-safe), so predicting one image after
    another does not reload the weights each time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: LoadedModel | None = None

    def get(self, path: Path, classes: ClassTable, device: str) -> LoadedModel:
        with self._lock:
            if self._loaded is not None and self._loaded.path == path:
                return self._loaded
            self._loaded = None
        loaded = load(path, classes, device)
        with self._lock:
            self._loaded = loaded
        return loaded

    def clear(self) -> None:
        with self._lock:
            self._loaded = None


def class_lut(model_classes: ClassTable, project: ClassTable) -> tuple[np.ndarray, str]:
    """Model id -> project id, by class name when the tables differ; unknown -> unlabelled."""
    lut = np.full(256, project.unlabeled_id, dtype=np.uint8)
    project_by_name = {cls.name.lower(): cls.id for cls in project}
    missing = []
    for cls in model_classes.trainable:
        same = next((p for p in project if p.id == cls.id), None)
        if same is not None and same.name.lower() == cls.name.lower():
            lut[cls.id] = cls.id
        elif cls.name.lower() in project_by_name:
            lut[cls.id] = project_by_name[cls.name.lower()]
        else:
            missing.append(cls.name)
    note = ""
    if missing:
        note = (f"the model knows classes the project lacks ({', '.join(missing[:6])}); "
                "those pixels are left unlabelled")
    return lut, note


def load(path: Path, classes: ClassTable, device: str = "auto") -> LoadedModel:
    """The model with its own inference settings, device and AMP chosen as `eval` chooses them,
    so pre-labels are the masks the model's eval figures were computed from."""
    from segstudio.engine.inference import load_predictor

    amp = "off"
    if not str(path).lower().endswith(".onnx"):
        from segstudio.engine.device import resolve_amp, resolve_device

        resolved = resolve_device(device)
        device, amp = str(resolved), resolve_amp("auto", resolved)
    elif device == "auto":
        device = "cpu"
    predictor = load_predictor(path, device=device, amp=amp)
    lut, note = class_lut(predictor.config.classes, classes)
    return LoadedModel(Path(path), predictor, lut, note)


def to_core(result: Any, lut: np.ndarray) -> Prediction:
    """engine.inference.Prediction (C,H,W probabilities + id mask) -> core Prediction."""
    from segstudio.engine import uncertainty

    probs = result.probabilities
    return Prediction(
        labels=lut[np.asarray(result.mask, dtype=np.uint8)],
        max_prob=uncertainty.max_probability(probs),
        entropy=uncertainty.entropy(probs, normalized=True),
        margin=uncertainty.margin(probs),
        num_classes=int(probs.shape[0]),
    )


def predict_image(model: LoadedModel, image: np.ndarray) -> Prediction:
    return to_core(model.predictor.predict(image), model.lut)


def predict_tiled(model: LoadedModel, image: Any, store_path: Path, unlabeled_id: int,
                  progress: Callable[[int, int], None], cancelled: Callable[[], bool]) -> tuple[ImageScore, int]:
    """A gigapixel image (core GigapixelImage) predicted block by block into a chunk store at
    `store_path`, in project class ids; its review score and the blocks run."""
    from segstudio.core.tiled_mask import TiledMaskStore
    from segstudio.engine.tiled_predict import block_for, predict_gigapixel

    store = TiledMaskStore(store_path, image.shape, fill=unlabeled_id)
    store.ensure_header()
    result = predict_gigapixel(model.predictor, image, store, block=block_for(model.predictor),
                               label_map=lambda labels: model.lut[labels], progress=progress, cancelled=cancelled)
    return ImageScore(result.mean_entropy, result.low_margin_share), result.blocks


def default_device() -> str:
    """cuda when present, else cpu; SEGSTUDIO_DEVICE overrides (tests pin cpu)."""
    return os.environ.get("SEGSTUDIO_DEVICE", "auto")
