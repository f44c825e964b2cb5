"""Background prediction: predicts a list of images on a pool thread (ui.jobs), with
progress and cancel.

The engine (and with it torch) is imported on the worker thread, so neither the app's
start nor the UI thread ever waits for it. Results are stored in the prediction cache by
the worker and handed to the UI thread one image at a time as job progress.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QObject, QThreadPool

from segstudio.core import gigapixel
from segstudio.core.classes import ClassTable
from segstudio.core.gigapixel import GigapixelImage
from segstudio.core.imageio import read_image_raw
from segstudio.core.loop import Prediction
from segstudio.core.loop_store import PredictionCache
from segstudio.ui.jobs import Job, JobCancelled


class PredictJob:
    """Predict `items` ((image id, image path) pairs) with the model at `model_path`.

    Cached predictions are reused unless `force`; `cancel()` stops after the current image
    (a gigapixel image, predicted block by block, stops after the current block). Gigapixel
    images are read through `open_gigapixel(image id)` and their class ids go to a chunk
    store in the cache (memory follows one block), reported as "tiled" progress.
    """

    def __init__(self, model_path: Path, classes: ClassTable, items: Sequence[tuple[str, Path]],
                 cache: PredictionCache, slot: object, device: str, force: bool = False,
                 open_gigapixel: Callable[[str], GigapixelImage] | None = None) -> None:
        self.model_path = Path(model_path)
        self.open_gigapixel = open_gigapixel
        self.classes = classes
        self.items = list(items)
        self.cache = cache
        self.slot = slot
        self.device = device
        self.force = force
        self._job: Job[int] | None = None
        self._cancelled = False

    def start(self, pool: QThreadPool, *, on_note: Callable[[str], None],
              on_predicted: Callable[[str, Prediction], None], on_progress: Callable[[int, int], None],
              on_done: Callable[[bool], None], on_error: Callable[[BaseException], None],
              on_tiled: Callable[[str, int], None] | None = None) -> None:
        """Run on `pool`. On the UI thread: `on_note(text)` once the model is loaded,
        `on_predicted(image id, prediction)` then `on_progress(done, total)` per image (for a
        gigapixel image `on_tiled(image id, blocks)`, its labels in cache.tiled_path), and
        finally either `on_done(cancelled)` or `on_error(exc)`."""

        def progress(kind: str, *values: object) -> None:
            if kind == "note":
                on_note(*values)  # type: ignore[arg-type]
            elif kind == "tiled":
                image_id, blocks, done, total = values
                if on_tiled is not None:
                    on_tiled(image_id, blocks)  # type: ignore[arg-type]
                on_progress(done, total)  # type: ignore[arg-type]
            else:
                image_id, prediction, done, total = values
                on_predicted(image_id, prediction)  # type: ignore[arg-type]
                on_progress(done, total)  # type: ignore[arg-type]

        def failed(exc: BaseException) -> None:
            if isinstance(exc, JobCancelled):
                on_done(True)
            else:
                on_error(exc)

        owner = getattr(on_done, "__self__", None)  # silent once the controller is gone
        self._job = Job(self._run, on_done=lambda _count: on_done(self.cancelled), on_error=failed,
                        on_progress=progress, owner=owner if isinstance(owner, QObject) else None)
        if self._cancelled:
            self._job.cancel()
        self._job.start(pool)

    def cancel(self) -> None:
        self._cancelled = True
        if self._job is not None:
            self._job.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def _run(self, job: Job[int]) -> int:
        """Worker thread: predict each image (or take it from the cache); returns how many."""
        from segstudio.ui.model import engine_bridge

        total = len(self.items)
        model = None
        for done, (image_id, path) in enumerate(self.items):
            job.check_cancelled()
            if gigapixel.is_gigapixel_file(path):
                if self.open_gigapixel is None:
                    job.progress("note", f"{image_id}: a gigapixel image needs its project to be predicted; skipped")
                    continue
                if self.force or not self.cache.has_tiled(image_id):
                    if model is None:
                        model = self.slot.get(self.model_path, self.classes, self.device)  # type: ignore[attr-defined]
                        job.progress("note", model.note)
                    blocks = self._predict_tiled(job, model, image_id)
                else:
                    blocks = 0  # predicted before by this model
                job.progress("tiled", image_id, blocks, done + 1, total)
                continue
            prediction = None if self.force else self.cache.get(image_id)
            if prediction is None:
                if model is None:
                    model = self.slot.get(self.model_path, self.classes, self.device)  # type: ignore[attr-defined]
                    job.progress("note", model.note)
                image = read_image_raw(path)  # the model takes its own view (RGB8 or its bands)
                prediction = engine_bridge.predict_image(model, image)
                self.cache.put(image_id, prediction)
            job.progress("predicted", image_id, prediction, done + 1, total)
        return total


    def _predict_tiled(self, job: Job[int], model: object, image_id: str) -> int:
        """Worker thread: one gigapixel image block by block (progress per block); blocks run."""
        from segstudio.engine.tiled_predict import PredictionCancelled
        from segstudio.ui.model import engine_bridge

        assert self.open_gigapixel is not None
        folder = self.cache.begin_tiled(image_id)
        last = [-1]

        def step(done: int, total: int) -> None:
            percent = 100 * done // max(1, total)
            if percent != last[0]:  # whole percents only: the UI thread is not flooded
                last[0] = percent
                job.progress("note", f"predicting '{image_id}' block by block: {percent}% ({done}/{total})")

        image = self.open_gigapixel(image_id)
        try:
            score, blocks = engine_bridge.predict_tiled(
                model, image, folder, self.classes.unlabeled_id,  # type: ignore[arg-type]
                progress=step, cancelled=lambda: self._cancelled)
        except PredictionCancelled as exc:
            raise JobCancelled() from exc
        finally:
            image.close()
        self.cache.put_tiled(image_id, score, blocks)
        return blocks

