"""The model-in-the-loop controller: model choice, background predictions, layers, accepts.

It follows the open project through the workspace's signals (`follow`), keeps one model's
predictions (cache + review scores), draws the prediction / confidence / disagreement layers through the canvas's extra
layers, applies accepts as single undoable edits and feeds the effort meter on every save.
No widgets here; the dock and the menu only call its methods and listen to its signals.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal

from segstudio.core import gigapixel_project, loop
from segstudio.core.errors import SegstudioError
from segstudio.core.loop import AcceptEdit, ImageScore, Prediction
from segstudio.core.loop_store import (
    EffortSummary,
    EffortTracker,
    PredictionCache,
    drop_other_models,
    model_hash,
)
from segstudio.core.project import Project
from segstudio.core.vocabulary import OPEN_STATUSES, TRAINING_STATUSES, UNEDITED_STATUSES
from segstudio.ui.annotate.canvas import Canvas
from segstudio.ui.jobs import error_text
from segstudio.ui.model.predict_worker import PredictJob
from segstudio.ui.project.session import EditingSession

if TYPE_CHECKING:
    from segstudio.ui.project.workspace import Workspace

LAYER_PREDICTION, LAYER_CONFIDENCE, LAYER_DISAGREEMENT = "prediction", "confidence", "disagreement"
QUEUE_STATUSES = OPEN_STATUSES
PRELABEL_STATUSES = ("unlabeled",)
REFRESH_MS = 120  # disagreement follows painting, at most this often


class _Slot:
    """Placeholder until the engine bridge is imported inside the first job."""

    def __init__(self) -> None:
        self._inner: object | None = None

    def get(self, path: Path, classes: object, device: str) -> object:
        if self._inner is None:
            from segstudio.ui.model.engine_bridge import ModelSlot

            self._inner = ModelSlot()
        return self._inner.get(path, classes, device)  # type: ignore[attr-defined]

    def clear(self) -> None:
        if self._inner is not None:
            self._inner.clear()  # type: ignore[attr-defined]


class LoopController(QObject):
    """Model in the loop for one window; `attach(session)` when a project opens."""

    model_changed = Signal(str)  # the model path ("" when none)
    busy_changed = Signal(bool)
    progress = Signal(int, int)
    prediction_ready = Signal(str)  # image id
    queue_changed = Signal()
    effort_changed = Signal()
    message = Signal(str)

    def __init__(self, canvas: Canvas, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self.session: EditingSession | None = None
        self.model_path: Path | None = None
        self.cache: PredictionCache | None = None
        self.effort: EffortTracker | None = None
        self.device = ""
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)  # one model, one job at a time, in order
        self._slot = _Slot()
        self._job: PredictJob | None = None
        self._prelabel = False
        self._adopted: Path | None = None  # the project's active model the current one came from
        self._pending_active: tuple[Path | None] | None = None  # came while a job ran
        self._workspace: Workspace | None = None
        # view settings
        self.show_prediction = True
        self.style = "outline"
        self.opacity = 0.55
        self.confidence_kind: str | None = None
        self.show_disagreement = False
        self.review_key = "mean_entropy"
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_MS)
        self._refresh_timer.timeout.connect(self.refresh_layers)
        self.busy_changed.connect(self._on_self_busy_changed)

    # -- session ------------------------------------------------------------------------------
    @property
    def project(self) -> Project | None:
        return None if self.session is None else self.session.project

    def follow(self, workspace: Workspace) -> None:
        """Follow the open project through the workspace's signals, its one channel."""
        self._workspace = workspace
        workspace.project_changed.connect(self._on_workspace_project_changed)
        workspace.active_model_changed.connect(self.follow_active_model)
        workspace.image_opened.connect(self._on_workspace_image_opened)
        workspace.image_edited.connect(self._on_workspace_image_edited)
        workspace.mask_saved.connect(self._on_workspace_mask_saved)
        workspace.status_changed.connect(self._on_workspace_status_changed)
        self._on_workspace_project_changed(workspace.project)

    def attach(self, session: EditingSession | None, active: Path | None = None) -> None:
        """Work on a newly opened project's session, starting with its active model `active`
        (session None: the project closed)."""
        if session is self.session:
            return
        self.cancel()
        self.session = session
        self.model_path, self.cache, self.effort = None, None, None
        self._adopted, self._pending_active = None, None
        self._slot.clear()
        if session is not None:
            self.effort = EffortTracker(session.project.root, session.project.classes.unlabeled_id)
            self.follow_active_model(active, drop_others=False)
        self.model_changed.emit(str(self.model_path or ""))
        self.queue_changed.emit()
        self.effort_changed.emit()

    # -- model --------------------------------------------------------------------------------
    def set_model(self, path: str | Path, drop_others: bool = True, adopted: Path | None = None) -> bool:
        """Use the model file at `path`; predictions of any other model are dropped.

        `adopted`: the project's active model this came from (then later training runs are
        followed); None for a model the user opened by hand.
        """
        if self.session is None:
            return False
        path = Path(path)
        try:
            key = model_hash(path)
        except OSError as exc:
            self.message.emit(f"cannot read the model {path}: {exc.strerror or exc}")
            return False
        self.cancel()
        if drop_others:
            drop_other_models(self.session.project.root, keep=key)
        self.model_path = path
        self._adopted = adopted
        self.cache = PredictionCache(self.session.project.root, key)
        self._slot.clear()
        self.model_changed.emit(str(path))
        self.queue_changed.emit()
        self.refresh_layers()
        return True

    def follow_active_model(self, active: Path | None, drop_others: bool = True) -> bool:
        """The project's active model became `active` (training made it so): switch to it,
        unless the user opened another model file by hand; True when the model changed.
        While a prediction runs, the switch waits for its end."""
        if self.session is None:
            return False
        if self._job is not None:
            self._pending_active = (active,)
            return False
        if active == self._adopted or (self.model_path is not None and self._adopted is None):
            return False
        self._adopted = active
        if active is None or not active.exists():
            return False
        return self.set_model(active, drop_others=drop_others, adopted=active)

    def _on_self_busy_changed(self, busy: bool) -> None:
        if not busy and self._pending_active is not None:
            (active,), self._pending_active = self._pending_active, None
            self.follow_active_model(active)

    @property
    def busy(self) -> bool:
        return self._job is not None

    # -- predicting ---------------------------------------------------------------------------
    def predict(self, image_ids: list[str], prelabel: bool = False, force: bool = False) -> bool:
        """Predict images in the background; with `prelabel`, unlabelled ones get the
        prediction written as their mask (status predicted)."""
        if self.session is None or self.cache is None or self.model_path is None:
            self.message.emit("open a model first (Model > Open model...)")
            return False
        if self._job is not None:
            self.message.emit("a prediction is already running; cancel it or wait")
            return False
        project = self.session.project
        items = [(image_id, project.image_path(image_id)) for image_id in image_ids if image_id in project]
        if not items:
            self.message.emit("no images to predict")
            return False
        from segstudio.ui.model.engine_bridge import default_device  # light: no engine import

        job = PredictJob(self.model_path, project.classes, items, self.cache, self._slot,
                         self.device or default_device(), force=force,
                         open_gigapixel=lambda image_id: gigapixel_project.open_image(project, image_id))
        self._job, self._prelabel = job, prelabel
        self.busy_changed.emit(True)
        job.start(self.pool, on_note=self._on_job_started, on_predicted=self._on_job_predicted,
                  on_progress=self.progress.emit, on_done=self._on_job_finished, on_error=self._on_job_failed,
                  on_tiled=self._on_job_tiled)
        return True

    def predict_current(self) -> bool:
        current = self.session.current_id if self.session else None
        return current is not None and self.predict([current], force=False)

    def prelabel_all(self) -> bool:
        """Predict every unlabelled image and write its prediction as its mask."""
        if self.session is None:
            return False
        ids = [r.id for r in self.session.project.images_where(statuses=PRELABEL_STATUSES)]
        return self.predict(ids, prelabel=True)

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()

    def wait(self, msecs: int = -1) -> bool:
        """Block until the running job ends (tests, closing the window)."""
        return self.pool.waitForDone(msecs)

    def _on_job_started(self, note: str) -> None:
        if note:
            self.message.emit(note)

    def _on_job_predicted(self, image_id: str, prediction: Prediction) -> None:
        if self.session is None or self._job is None or self._job.cancelled:
            return  # cancelled, or its project closed meanwhile: the result stays only cached
        if self._prelabel:
            self._write_prelabel(image_id, prediction)
        if image_id == self.session.current_id:
            self.refresh_layers()
        self.prediction_ready.emit(image_id)
        self.queue_changed.emit()

    def _on_job_tiled(self, image_id: str, blocks: int) -> None:
        """A gigapixel image was predicted block by block into the cache's chunk store."""
        if self.session is None or self._job is None or self._job.cancelled or self.cache is None:
            return
        if self._prelabel:
            self._write_tiled_prelabel(image_id)
        elif blocks:
            self.message.emit(f"predicted '{image_id}' block by block ({blocks} blocks); its review score is "
                              "in the queue. Prediction layers are not drawn on gigapixel images: "
                              "pre-label writes the prediction as its mask")
        self.prediction_ready.emit(image_id)
        self.queue_changed.emit()

    def _write_tiled_prelabel(self, image_id: str) -> None:
        """Pre-label of a gigapixel image: the predicted chunk store becomes its mask on disk
        when nobody labelled it. The open image is left alone (its document is the mask that
        counts while it is open)."""
        session = self.session
        assert session is not None and self.cache is not None
        project = session.project
        record = project.image(image_id)
        if record.status not in PRELABEL_STATUSES:
            return
        if image_id in dict(session.documents()):
            self.message.emit(f"'{image_id}' is open, so its pre-label was not written; open another "
                              "image and pre-label again (the prediction is kept and not run twice)")
            return
        try:
            if gigapixel_project.adopt_prediction(project, record, self.cache.tiled_path(image_id)) is None:
                return  # labelled meanwhile: the prediction stays in the cache
            session.set_status("predicted", image_id)
        except (SegstudioError, OSError) as exc:
            self.message.emit(f"could not pre-label '{image_id}': {error_text(exc)}")
            return
        # The effort meter compares whole masks: gigapixel pre-labels are not counted in it.
        self.message.emit(f"pre-labelled '{image_id}' block by block")

    def _on_job_failed(self, exc: BaseException) -> None:
        known = isinstance(exc, SegstudioError)
        self.message.emit(error_text(exc) if known else f"prediction failed: {error_text(exc)}")
        self._on_job_finished(False)

    def _on_job_finished(self, cancelled: bool) -> None:
        self._job = None
        self.busy_changed.emit(False)
        if cancelled:
            self.message.emit("prediction cancelled")

    def _write_prelabel(self, image_id: str, prediction: Prediction) -> None:
        """Pre-label: an image nobody labelled gets the prediction as mask, status predicted."""
        session = self.session
        assert session is not None and self.effort is not None
        project = session.project
        record = project.image(image_id)
        if record.status not in PRELABEL_STATUSES:
            return  # labelled meanwhile: the prediction stays a layer
        unlabeled = project.classes.unlabeled_id
        open_docs = dict(session.documents())
        try:
            if image_id in open_docs:
                document = open_docs[image_id]
                if (document.mask != unlabeled).any():
                    return
                before = document.mask.copy()
                document.replace_all("Pre-label", loop.prelabel_mask(prediction.labels, unlabeled))
                self.effort.model_wrote(image_id, before, document.mask)
                session.set_status("predicted", image_id)
            else:
                existing = project.read_mask(record)
                if existing is not None and (existing != unlabeled).any():
                    return
                before = project.blank_mask(record)
                after = loop.prelabel_mask(prediction.labels, unlabeled)
                if not session.store.write_closed(image_id, after, "predicted").saved:
                    return  # the session's message says why
                self.effort.model_wrote(image_id, before, after)
        except SegstudioError as exc:
            self.message.emit(f"could not pre-label '{image_id}': {exc}")
            return
        self.effort_changed.emit()

    # -- the current image's prediction -----------------------------------------------------------
    def prediction(self, image_id: str | None = None) -> Prediction | None:
        if self.cache is None or self.session is None:
            return None
        image_id = image_id or self.session.current_id
        if image_id is None:
            return None
        prediction = self.cache.get(image_id)
        if prediction is not None and self.session.document is not None \
                and image_id == self.session.current_id and prediction.shape != self.session.document.shape:
            return None  # the image was replaced since: predict again
        return prediction

    def refresh_layers(self) -> None:
        """Draw (or remove) the three layers for the current image."""
        session = self.session
        prediction = self.prediction()
        document = session.document if session is not None else None
        if prediction is None or document is None:
            for name in (LAYER_PREDICTION, LAYER_CONFIDENCE, LAYER_DISAGREEMENT):
                self.canvas.set_extra_layer(name, None)
            return
        classes = document.classes
        # order matters: the canvas draws extra layers in the order they were first added
        self.canvas.set_extra_layer(LAYER_CONFIDENCE, None if self.confidence_kind is None else
                                    loop.confidence_rgba(loop.uncertainty_bytes(prediction, self.confidence_kind)))
        self.canvas.set_extra_layer(LAYER_PREDICTION, loop.prediction_rgba(
            prediction.labels, classes, self.style, self.opacity) if self.show_prediction else None)
        self.canvas.set_extra_layer(LAYER_DISAGREEMENT, loop.disagreement_rgba(
            document.mask, prediction.labels, classes.unlabeled_id) if self.show_disagreement else None)

    def set_view(self, *, show_prediction: bool | None = None, style: str | None = None,
                 opacity: float | None = None, confidence: str | None | bool = False,
                 disagreement: bool | None = None) -> None:
        """Change what is shown; `confidence` takes a kind, None (off) or False (unchanged)."""
        if show_prediction is not None:
            self.show_prediction = show_prediction
        if style is not None:
            self.style = style
        if opacity is not None:
            self.opacity = opacity
        if confidence is not False:
            self.confidence_kind = confidence  # type: ignore[assignment]
        if disagreement is not None:
            self.show_disagreement = disagreement
        self.refresh_layers()

    # -- accepting ----------------------------------------------------------------------------------
    def _accept(self, make: str, x: int = 0, y: int = 0) -> bool:
        session = self.session
        document = session.document if session is not None else None
        prediction = self.prediction()
        if session is None or document is None or prediction is None:
            self.message.emit("no prediction for this image; predict it first")
            return False
        unlabeled = document.classes.unlabeled_id
        edit: AcceptEdit
        if make == "all":
            edit = loop.accept_all(document.mask, prediction.labels, unlabeled)
        elif make == "unlabeled":
            edit = loop.accept_unlabeled(document.mask, prediction.labels, unlabeled)
        else:
            edit = loop.accept_region(document.mask, prediction.labels, x, y, unlabeled)
        before = document.mask.copy()
        if not edit.apply(document):
            self.message.emit("the prediction adds nothing here")
            return False
        assert self.effort is not None
        self.effort.model_wrote(session.current_id or "", before, document.mask)
        # model content awaits the user's check again, whatever the status was
        session.set_status("predicted", session.current_id)
        self.message.emit(f"{edit.label}: {edit.pixels} pixels (undo with Ctrl+Z)")
        self.effort_changed.emit()
        return True

    def accept_all(self) -> bool:
        return self._accept("all")

    def accept_unlabeled(self) -> bool:
        return self._accept("unlabeled")

    def accept_region(self, x: int, y: int) -> bool:
        return self._accept("region", int(x), int(y))

    def confirm_reviewed(self) -> bool:
        """The user checked the image: save it with status reviewed."""
        return self.session.mark_done(reviewed=True) if self.session else False

    # -- review queue ---------------------------------------------------------------------------------
    def scores(self) -> dict[str, ImageScore]:
        return {} if self.cache is None else self.cache.scores()

    def review_queue(self) -> list[str]:
        """Predicted images still to look at, most uncertain first."""
        if self.session is None:
            return []
        project = self.session.project
        pending = [r.id for r in project.images_where(statuses=QUEUE_STATUSES)]
        return loop.review_order(self.scores(), self.review_key, only=pending)

    def set_review_key(self, key: str) -> None:
        self.review_key = key
        self.queue_changed.emit()

    def next_uncertain(self) -> str | None:
        """Open the most uncertain image after the current one; its id, or None."""
        if self.session is None:
            return None
        target = loop.next_in_queue(self.review_queue(), self.session.current_id)
        if target is None:
            self.message.emit("no predicted image left to review")
            return None
        self.session.open_image(target)
        return target

    # -- effort ---------------------------------------------------------------------------------------
    def effort_summary(self) -> EffortSummary | None:
        return None if self.effort is None else self.effort.summary()

    # -- workspace signals ----------------------------------------------------------------------------
    def _on_workspace_project_changed(self, _project: Project | None) -> None:
        assert self._workspace is not None
        self.attach(self._workspace.session, self._workspace.active_model)

    def _on_workspace_image_opened(self, _image_id: str) -> None:
        self.refresh_layers()
        self.effort_changed.emit()  # the meter names the open image's share

    def _on_workspace_image_edited(self, image_id: str) -> None:
        if self.show_disagreement and self.session is not None and image_id == self.session.current_id:
            self._refresh_timer.start()

    def _record_effort(self, image_id: str) -> None:
        """Count an image the user worked on or confirmed; an image still "predicted" holds
        unchecked model output and is not counted yet."""
        if self.session is None or self.effort is None:
            return
        project = self.session.project
        if image_id not in project or project.image(image_id).status in UNEDITED_STATUSES:
            return
        document = dict(self.session.documents()).get(image_id)
        try:
            mask = document.mask if document is not None else project.read_mask(image_id)
        except SegstudioError:
            return
        if mask is not None:
            self.effort.record(image_id, mask)
            self.effort_changed.emit()

    def _on_workspace_mask_saved(self, image_id: str) -> None:
        self._record_effort(image_id)

    def _on_workspace_status_changed(self, image_id: str, status: str) -> None:
        if status in TRAINING_STATUSES:  # confirmed, maybe without a new save
            self._record_effort(image_id)
        self.queue_changed.emit()
