"""The click assist inside the window: the chosen model (Tools > Assist models..., remembered
in QSettings), its embeddings kept in the project (PROJECT/.cache/assist), the next images
of the list encoded ahead, and the choice between Segment Anything and the project's model.

It follows the project through the workspace's signals only, like the window's features.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject

from segstudio.assist.errors import AssistError
from segstudio.assist.store import ModelStore
from segstudio.core.errors import SegstudioError
from segstudio.core.imageio import to_rgb8
from segstudio.core.project import Project
from segstudio.ui.annotate.assist_box_model import ProjectBoxAssist
from segstudio.ui.annotate.assist_models_dialog import AssistModelsDialog
from segstudio.ui.annotate.assist_session import AssistSession, ImageLoader
from segstudio.ui.annotate.assist_tool import SAM

if TYPE_CHECKING:
    from segstudio.ui.actions import Actions
    from segstudio.ui.annotate.tool_bar import ToolBar
    from segstudio.ui.features import FeatureContext
    from segstudio.ui.settings import AppSettings

AHEAD = 2  # images after the open one that are encoded ahead of time
CACHE_FOLDER = Path(".cache") / "assist"


def cache_folder(project: Project) -> Path:
    return project.root / CACHE_FOLDER


class AssistController(QObject):
    """Owns the canvas's assist session and the project-model runner; see the module doc."""

    def __init__(self, context: FeatureContext, actions: Actions, tool_bar: ToolBar,
                 settings: AppSettings) -> None:
        super().__init__(context.canvas)
        self.workspace = context.workspace
        self.canvas = context.canvas
        self.tool_bar = tool_bar
        self.settings = settings
        self.notify = context.notify
        self.store_folder: Path | None = None  # tests point it elsewhere; None: the user's folder
        self.dialog: AssistModelsDialog | None = None
        self.box_assist = ProjectBoxAssist(self)
        # read by AssistTool through its host (the canvas)
        self.canvas.assist_box = self.box_assist  # type: ignore[attr-defined]
        self.canvas.assist_mode = SAM  # type: ignore[attr-defined]
        actions["assist_models"].triggered.connect(self.open_dialog)
        tool_bar.assist_mode_changed.connect(self._on_tool_bar_assist_mode_changed)
        self.canvas.tool_changed.connect(self._on_canvas_tool_changed)
        self.workspace.project_changed.connect(self._on_workspace_project_changed)
        self.workspace.active_model_changed.connect(self._on_workspace_active_model_changed)
        self.workspace.image_opened.connect(self._on_workspace_image_opened)
        tool_bar.set_project_model_available(False)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._on_app_about_to_quit)

    # -- the model --------------------------------------------------------------------------------
    def store(self) -> ModelStore:
        return ModelStore(self.store_folder)

    @property
    def session(self) -> AssistSession | None:
        return self.canvas.assist_session

    def ensure_session(self, name: str | None = None) -> AssistSession | None:
        """The canvas's assist session, loading the chosen model first if none is loaded;
        None (and the tool says why on first use) when no usable model is registered."""
        if self.session is not None and name is None:
            return self.session
        try:
            models = self.store().models()
            wanted = name or self.settings.assist_model()
            if not models:
                raise AssistError("no assist model is registered yet: open Tools > Assist models... "
                                  "to download or add one")
            wanted = wanted if wanted in models else sorted(models)[0]
            model = models[wanted]
            # ONNX Runtime reads and optimises the model on a pool thread: the window stays live
            session = AssistSession.from_files(model.encoder, model.decoder, self.canvas, wanted, background=True)
        except SegstudioError as exc:
            if name is not None:
                self.notify(f"Assist: {exc}")
            return None
        self._drop_session()
        project = self.workspace.project
        session.set_cache_folder(cache_folder(project) if project is not None else None)
        session.ready.connect(self._on_session_ready)
        session.loaded.connect(lambda: self._on_session_loaded(session))
        session.load_failed.connect(lambda message: self._on_session_load_failed(session, message))
        self.canvas.assist_session = session
        self.notify(f"Assist: loading {wanted}...")
        return session

    def _on_session_loaded(self, session: AssistSession) -> None:
        if session is not self.session:
            return
        self.notify(f"Assist: {session.describe()}")
        if self.dialog is not None:
            self.dialog.runs_on.setText(f"In use: {session.describe()}")

    def _on_session_load_failed(self, session: AssistSession, message: str) -> None:
        if session is not self.session:
            return
        self._drop_session()  # picking the tool again retries (after the user fixes the files)
        self.notify(f"Assist: {message}. Check the files in Tools > Assist models...")
        if self.dialog is not None:
            self.dialog.runs_on.setText(f"Not loaded: {message}")

    def use_model(self, name: str) -> AssistSession | None:
        """Make `name` the assist's model now and in later runs."""
        self.settings.set_assist_model(name)
        return self.ensure_session(name)

    def _drop_session(self) -> None:
        old = self.canvas.assist_session
        if old is None:
            return
        old.cancel_ahead()
        old.set_image(None)
        old.setParent(None)  # freed once the tool lets go of it (it reconnects to the new one)
        self.canvas.assist_session = None

    def _on_dialog_model_removed(self, name: str) -> None:
        if self.settings.assist_model() == name:
            self.settings.set_assist_model(None)
        if self.session is not None and self.session.name == name:
            self._drop_session()
            self.canvas.viewport().update()

    def open_dialog(self) -> AssistModelsDialog:
        """Tools > Assist models...: non-modal, one at a time."""
        if self.dialog is not None:
            self.dialog.close()
            self.dialog.deleteLater()
        session = self.session
        runs_on = f"In use: {session.describe()}" if session is not None else (
            "No model loaded yet; the one you use is loaded when the Assist tool is picked.")
        in_use = session.name if session is not None else self.settings.assist_model()
        self.dialog = AssistModelsDialog(self.store(), in_use, runs_on, self.canvas.window())
        self.dialog.model_chosen.connect(self._on_dialog_model_chosen)
        self.dialog.model_removed.connect(self._on_dialog_model_removed)
        self.dialog.show()
        return self.dialog

    def _on_dialog_model_chosen(self, name: str) -> None:
        session = self.use_model(name)
        if self.dialog is not None and session is not None:
            self.dialog.runs_on.setText(f"In use: {session.describe()}")  # "(loading)" until it is

    # -- which assist runs ------------------------------------------------------------------------
    def _on_tool_bar_assist_mode_changed(self, mode: str) -> None:
        self.canvas.assist_mode = mode  # type: ignore[attr-defined]
        if mode == SAM and self.canvas.tool == "assist":
            self.ensure_session()
        self.canvas.viewport().update()

    def _on_canvas_tool_changed(self, name: str) -> None:
        self.tool_bar.set_assist_choice_visible(name == "assist")
        if name == "assist" and self.tool_bar.assist_mode == SAM:
            self.ensure_session()
        elif self.session is not None:
            self.session.cancel_ahead()  # another tool: the CPU is the user's again

    def _follow_active_model(self) -> None:
        active = self.workspace.active_model
        self.box_assist.set_model(active)
        self.tool_bar.set_project_model_available(active is not None)

    def _on_workspace_active_model_changed(self, _path: object) -> None:
        self._follow_active_model()

    def _on_workspace_project_changed(self, project: Project | None) -> None:
        if self.session is not None:
            self.session.cancel_ahead()
            self.session.set_cache_folder(cache_folder(project) if project is not None else None)
        self._follow_active_model()

    # -- encoding ahead ---------------------------------------------------------------------------
    def _on_app_about_to_quit(self) -> None:
        if self.session is not None:  # no encode may outlive the window
            self.session.cancel_ahead()
            self.session.set_image(None)

    def _on_workspace_image_opened(self, _image_id: str) -> None:
        if self.session is not None:
            self.session.cancel_ahead()  # the user moved on: that order is stale

    def _on_session_ready(self) -> None:
        """The open image is encoded: encode the next AHEAD images of the list meanwhile."""
        session, project, ws = self.session, self.workspace.project, self.workspace
        if session is None or project is None or ws.session is None or self.canvas.tool != "assist":
            return
        ids = ws.listed_ids()
        current = ws.session.current_id
        if current not in ids:
            return
        start = ids.index(current) + 1
        session.encode_ahead([_loader(project, image_id) for image_id in ids[start:start + AHEAD]])


def _loader(project: Project, image_id: str) -> ImageLoader:
    def load() -> np.ndarray:
        image = project.read_image(image_id)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            image = to_rgb8(image)  # as the canvas shows it: the same pixels give the same key
        return image

    return load


def install(context: FeatureContext, actions: Actions, tool_bar: ToolBar, settings: AppSettings) -> AssistController:
    return AssistController(context, actions, tool_bar, settings)
