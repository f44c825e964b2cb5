"""Background prediction: a QRunnable that predicts a list of images with progress and cancel.

The engine (and with it torch) is imported inside `run`, on the worker thread, so neither
the app's start nor the UI thread ever waits for it. Results are stored in the prediction
cache by the worker and handed to the UI thread through queued signals.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, Signal

from segstudio.core.classes import ClassTable
from segstudio.core.errors import SegstudioError
from segstudio.core.imageio import read_image_rgb
from segstudio.core.loop_store import PredictionCache


class PredictSignals(QObject):
    started = Signal(str)  # a note (model loaded, class mapping)
    predicted = Signal(str, object)  # image id, core Prediction
    progress = Signal(int, int)  # done, total
    failed = Signal(str)
    finished = Signal(bool)  # True when cancelled


class PredictJob(QRunnable):
    """Predict `items` ((image id, image path) pairs) with the model at `model_path`.

    Cached predictions are reused unless `force`; `cancel()` stops after the current image.
    """

    def __init__(self, model_path: Path, classes: ClassTable, items: Sequence[tuple[str, Path]],
                 cache: PredictionCache, slot: object, device: str, force: bool = False) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the controller holds it until `finished`
        self.signals = PredictSignals()
        self.model_path = Path(model_path)
        self.classes = classes
        self.items = list(items)
        self.cache = cache
        self.slot = slot
        self.device = device
        self.force = force
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:
        try:
            self._run()
        except SegstudioError as exc:
            self.signals.failed.emit(str(exc))
        except Exception as exc:  # a bug or a native library failure must not kill the app
            traceback.print_exc()
            self.signals.failed.emit(f"prediction failed: {type(exc).__name__}: {exc}")
        finally:
            self.signals.finished.emit(self.cancelled)

    def _run(self) -> None:
        from segstudio.ui.model import engine_bridge

        total = len(self.items)
        model = None
        for done, (image_id, path) in enumerate(self.items):
            if self.cancelled:
                return
            prediction = None if self.force else self.cache.get(image_id)
            if prediction is None:
                if model is None:
                    model = self.slot.get(self.model_path, self.classes, self.device)  # type: ignore[attr-defined]
                    self.signals.started.emit(model.note)
                image = read_image_rgb(path)
                prediction = engine_bridge.predict_image(model, image)
                self.cache.put(image_id, prediction)
            self.signals.predicted.emit(image_id, prediction)
            self.signals.progress.emit(done + 1, total)
