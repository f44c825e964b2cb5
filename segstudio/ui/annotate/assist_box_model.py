"""Box to mask with the project's own model: crop the box (with a margin), predict the crop,
keep the class the model gives inside the box as the proposal.

The engine (and torch) is imported only inside the worker job, never on the UI thread; the
loaded model is kept between boxes. The numpy part (`crop_region`, `box_proposal`) is pure.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject

from segstudio.assist import Box
from segstudio.core.classes import ClassTable
from segstudio.core.errors import SegstudioError
from segstudio.core.region import Region
from segstudio.ui.jobs import Job, run_in_background

MARGIN_FRACTION = 0.15  # context around the box, as a share of its longer side
MIN_MARGIN = 16
ACTIVE_SHARE = 0.05  # the active class wins when it covers at least this share of the box


@dataclass(frozen=True)
class BoxProposal:
    """The project model's answer for a box, shaped like the click assist's result (one
    candidate, nothing to feed back) so the tool shows and accepts it the same way."""

    class_id: int
    share: float  # of the box the kept class covers
    full_mask: np.ndarray = field(repr=False, compare=False)

    @property
    def candidates(self) -> tuple[BoxProposal, ...]:
        return (self,)

    @property
    def iou(self) -> float:
        return self.share

    def mask(self, rank: int = 0) -> np.ndarray:
        return self.full_mask

    def feedback(self, rank: int = 0) -> None:
        return None


def crop_region(box: Box, height: int, width: int) -> Region:
    """The box grown by a margin (MARGIN_FRACTION of its longer side, at least MIN_MARGIN),
    clipped to the image: the model sees the object with some of its surroundings."""
    b = box.normalised()
    margin = max(MIN_MARGIN, int(round(MARGIN_FRACTION * max(b.x1 - b.x0, b.y1 - b.y0))))
    return Region(max(0, int(b.y0) - margin), max(0, int(b.x0) - margin),
                  min(height, int(np.ceil(b.y1)) + margin), min(width, int(np.ceil(b.x1)) + margin))


def box_proposal(labels: np.ndarray, crop: Region, box: Box, shape: tuple[int, int],
                 classes: ClassTable, active_class: int) -> BoxProposal | None:
    """From the project-id labels of the crop, the pixels inside the box of one class: the
    active class where it covers ACTIVE_SHARE of the box, else the most frequent class that
    is not the ignore or unlabelled class. None when the model finds nothing there."""
    b = box.normalised()
    y0, x0 = max(int(b.y0), crop.y0), max(int(b.x0), crop.x0)
    y1, x1 = min(int(np.ceil(b.y1)), crop.y1), min(int(np.ceil(b.x1)), crop.x1)
    if y1 <= y0 or x1 <= x0:
        return None
    inside = labels[y0 - crop.y0:y1 - crop.y0, x0 - crop.x0:x1 - crop.x0]
    counts = np.bincount(inside.ravel(), minlength=256)
    skip = {classes.unlabeled_id}
    if classes.ignore_index is not None:
        skip.add(classes.ignore_index)
    if active_class not in skip and counts[active_class] >= ACTIVE_SHARE * inside.size:
        chosen = active_class
    else:
        for class_id in skip:
            counts[class_id] = 0
        if not counts.any():
            return None
        chosen = int(np.argmax(counts))
    full = np.zeros(shape, bool)
    full[y0:y1, x0:x1] = inside == chosen
    return BoxProposal(chosen, float(counts[chosen]) / inside.size, full)


def class_map(model_classes: ClassTable, project: ClassTable) -> np.ndarray:
    """Model class id -> project class id: the same id where the names agree, else by name;
    classes the project lacks map to its unlabelled id."""
    lut = np.full(256, project.unlabeled_id, np.uint8)
    by_name = {cls.name.lower(): cls.id for cls in project}
    for cls in model_classes.trainable:
        if cls.name.lower() in by_name:
            lut[cls.id] = by_name[cls.name.lower()]
    return lut


class ProjectBoxAssist(QObject):
    """Runs box -> mask with the model at `model_path` on a pool thread; the predictor is
    loaded in the first job and kept while the path stays the same."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model_path: Path | None = None
        self._lock = threading.Lock()
        self._loaded: tuple[Path, Any] | None = None
        self._job: Job[BoxProposal | None] | None = None

    @property
    def available(self) -> bool:
        return self.model_path is not None

    def set_model(self, path: Path | None) -> None:
        self.model_path = Path(path) if path is not None else None

    def _predictor(self, path: Path) -> Any:
        with self._lock:
            if self._loaded is not None and self._loaded[0] == path:
                return self._loaded[1]
        from segstudio.engine.inference import load_predictor  # torch: only on the worker

        device = os.environ.get("SEGSTUDIO_DEVICE", "auto")
        if str(path).lower().endswith(".onnx") and device == "auto":
            device = "cpu"
        predictor = load_predictor(path, device=device)
        with self._lock:
            self._loaded = (path, predictor)
        return predictor

    def propose(self, image: np.ndarray, box: Box, classes: ClassTable, active_class: int,
                on_done: Callable[[BoxProposal | None], None],
                on_error: Callable[[BaseException], None]) -> Job[BoxProposal | None]:
        """Predict the crop around `box` in the background; `on_done(proposal or None)` on
        the UI thread. A new call cancels the answer of the last one."""
        if self.model_path is None:
            raise SegstudioError("the project has no active model yet: train one (or pick one in the Model menu)")
        if self._job is not None:
            self._job.cancel()
        path = self.model_path
        height, width = image.shape[:2]
        crop = crop_region(box, height, width)
        pixels = np.ascontiguousarray(image[crop.slices])

        def work(job: Job[BoxProposal | None]) -> BoxProposal | None:
            predictor = self._predictor(path)
            job.check_cancelled()
            predicted = np.asarray(predictor.predict(pixels).mask, dtype=np.uint8)
            labels = class_map(predictor.config.classes, classes)[predicted]
            return box_proposal(labels, crop, box, (height, width), classes, active_class)

        self._job = run_in_background(work, on_done, on_error, owner=self)
        return self._job
