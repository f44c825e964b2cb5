"""The workspace: the open project and what happens to it (open, recover, navigate, save).

It owns the Project, the EditingSession and the Autosaver, and keeps the window's parts
(canvas, docks, status bar, welcome screen) in step with them. Errors the user can cause
end in a message, never in a crash; nothing saved is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QDialog, QFileDialog

from segstudio.core import presence
from segstudio.core.errors import MaskError, SegstudioError
from segstudio.core.presence import Presence
from segstudio.core.project import Project
from segstudio.core.recovery import RecoveredMask, RecoveryJournal
from segstudio.core.recovery_offer import LeftoverWork
from segstudio.core.runs import active_model, set_active_model
from segstudio.ui import dialogs
from segstudio.ui.project import dialogs as project_dialogs
from segstudio.ui.project.autosave import Autosaver
from segstudio.ui.project.session import EditingSession
from segstudio.ui.project.sharing import SharedProject
from segstudio.ui.project.watcher import ManifestChange
from segstudio.ui.resources import sample_project_path

if TYPE_CHECKING:
    from segstudio.ui.main_window import MainWindow

# Actions that need an open project (the others work from the welcome screen too).
PROJECT_ACTIONS = (
    "save", "close_project", "undo", "redo", "brush_bigger", "brush_smaller", "protect",
    "zoom_in", "zoom_out", "zoom_fit", "zoom_100", "toggle_overlay", "outline_mode",
    "next_image", "prev_image", "next_unlabeled", "mark_labeled", "mark_reviewed", "add_class",
)
# ...of which these change the project, so a read-only window turns them off.
READ_ONLY_OFF = ("save", "undo", "redo", "protect", "mark_labeled", "mark_reviewed", "add_class")


class Workspace(QObject):
    """Project lifecycle and navigation for one MainWindow.

    Its signals are the one channel through which features (training, model) follow the
    open project; they never reach into the session or the window for it.
    """

    # the project opened (session ready, before its first image opens) or closed (None)
    project_changed = Signal(object)
    image_opened = Signal(str)  # the image now on the canvas
    image_edited = Signal(str)  # a stroke or another edit changed this image's mask
    status_changed = Signal(str, str)  # image id, new status
    mask_saved = Signal(str)  # image id; its mask is on disk now
    # the open project's active model (a Path, or None) was set; on open read `active_model`
    active_model_changed = Signal(object)
    # another program changed project.json and the open Project merged it (a ManifestChange)
    project_refreshed = Signal(object)

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.project: Project | None = None
        self.session: EditingSession | None = None
        self.autosaver: Autosaver | None = None
        # Replaceable so tests (and a future non-modal banner) can answer the offer.
        self.ask_restore: Callable[[Sequence[RecoveredMask]], bool] = (
            lambda found: dialogs.ask_restore(self.window, found)
        )
        # Another window has the project open: "write", "read_only" or "cancel" (replaceable).
        self.ask_shared: Callable[[Sequence[Presence]], str] = (
            lambda holders: dialogs.ask_shared(self.window, holders)
        )
        self.shared: SharedProject | None = None
        self.read_only = False
        self._sheet: dialogs.ShortcutSheet | None = None
        self._history_state: tuple[bool, bool, str | None] | None = None
        window.status.cancel_requested.connect(self.cancel_loading)

    # -- project lifecycle ---------------------------------------------------------------------
    def show_welcome(self) -> None:
        w = self.window
        w.welcome.set_recent(w.settings.recent_projects())
        w.stack.setCurrentWidget(w.welcome)
        w.dataset_dock.hide()
        w.classes_dock.hide()
        w.tool_bar.hide()
        w.status.set_project_fields_visible(False)
        self._enable_project_actions(False)
        w.setWindowTitle("segstudio")

    def _enable_project_actions(self, on: bool) -> None:
        self._history_state = None  # undo/redo are set here too; recompute next time
        for name in PROJECT_ACTIONS:
            self.window.commands[name].setEnabled(on)
        for action in [*self.window.commands.tool_actions(), *self.window.commands.class_actions()]:
            action.setEnabled(on)

    def _lock_editing(self) -> None:
        """Read-only: the canvas only pans and zooms; saving, undo and class edits are off."""
        assert self.autosaver is not None
        self.autosaver.stop()
        self.autosaver.set_intervals(save_delay_ms=0)
        for name in READ_ONLY_OFF:
            self.window.commands[name].setEnabled(False)
        for action in [*self.window.commands.tool_actions(), *self.window.commands.class_actions()]:
            action.setEnabled(False)
        self.window.canvas.set_tool("pan")
        self.window.classes_dock.setEnabled(False)
        self.window.status.show_note("opened read-only: another window is writing this project")

    def follow_refresh(self, change: ManifestChange) -> None:
        """Another program changed project.json (already merged into the Project): the image
        list, statuses, classes and title follow, and features hear of it."""
        w, session = self.window, self.session
        if session is None or self.project is None:
            return
        if change.added or change.removed:
            w.dataset_dock.reload()
        for image_id in change.moved:
            w.dataset_dock.refresh(image_id)
            status = self.project.image(image_id).status
            if image_id == session.current_id:
                self._on_title_status(image_id, status)
            self.status_changed.emit(image_id, status)
        w.dataset_dock.update_counts()
        if change.classes:
            for _image_id, document in session.documents():
                document.set_classes(self.project.classes)
            session.classes_changed.emit()
        w.status.show_note(change.describe())
        self.project_refreshed.emit(change)

    def open_project(self, path: Path | str) -> bool:
        """Open a project folder (saving and closing the current one); False on failure."""
        path = Path(path)
        if not self.close_project(show_welcome=False):
            return False
        try:
            project = Project.open(path)
        except SegstudioError as exc:
            dialogs.show_error(self.window, "Cannot open the project", str(exc))
            if not (path / "project.json").is_file():
                self.window.settings.remove_recent_project(path)
            self.show_welcome()
            return False
        holders = presence.others(project.root)
        answer = self.ask_shared(holders) if holders else dialogs.SHARED_WRITE
        if answer == dialogs.SHARED_CANCEL:
            self.show_welcome()
            return False
        if answer != dialogs.SHARED_READ_ONLY:  # gone apps' journals only, never a live one's
            self._offer_recovery(project, LeftoverWork(project.root))
        journal = RecoveryJournal(project.root)  # this process's own, read after the offer
        self._attach(project, journal, read_only=answer == dialogs.SHARED_READ_ONLY)
        return True

    def _offer_recovery(self, project: Project, journal: LeftoverWork) -> None:
        found = journal.pending(project)
        if not found:
            journal.clear()
            return
        if self.ask_restore(found):
            report = journal.restore(project)
            note = f"restored unsaved work of {len(report.restored)} image(s)"
            if report.skipped:
                note += f"; could not restore {', '.join(report.skipped)}"
            self.window.status.show_note(note)
        else:
            journal.clear()

    def _attach(self, project: Project, journal: RecoveryJournal, read_only: bool = False) -> None:
        w = self.window
        self.project = project
        self.read_only = read_only
        self.session = session = EditingSession(project, journal, parent=self)
        session.set_read_only(read_only)
        self.autosaver = Autosaver(session, parent=self)
        self.shared = SharedProject(self, read_only)
        session.image_opened.connect(self._on_session_image_opened)
        session.loading.connect(lambda image_id: w.status.show_note(f"loading {image_id}..."))
        session.load_progress.connect(self._on_session_load_progress)
        session.load_ended.connect(lambda _image_id: w.status.clear_busy())
        session.edited.connect(self._on_session_edited)
        session.status_changed.connect(self._on_session_status_changed)
        session.saved.connect(self.mask_saved)
        session.dirty_changed.connect(self._on_session_dirty_changed)
        session.classes_changed.connect(self._on_session_classes_changed)
        session.message.connect(w.status.show_note)
        w.dataset_dock.set_project(project)
        w.classes_dock.set_session(session)
        w.status.set_classes(project.classes)
        w.status.set_unsaved(False)
        w.stack.setCurrentWidget(w.canvas)
        w.dataset_dock.show()
        w.classes_dock.show()
        w.tool_bar.show()
        w.status.set_project_fields_visible(True)
        self._enable_project_actions(True)
        if read_only:
            self._lock_editing()
        self._set_title(project.name)
        w.settings.add_recent_project(project.root)
        self.project_changed.emit(project)  # features follow it before its first image opens
        ids = w.dataset_dock.visible_ids()
        if ids:
            self.open_image(ids[0])
        self._update_history_actions()
        w.apply_default_layout()

    def close_project(self, show_welcome: bool = True) -> bool:
        """Save everything and close; False if the user chose to keep it open."""
        if self.session is not None:
            assert self.autosaver is not None
            self.autosaver.stop()
            if self.read_only:
                self.session.close_all()  # nothing may be written; unsaved looks are dropped
            elif not self.session.close_all().saved and not dialogs.ask(
                self.window, "Unsaved masks",
                "Some masks could not be saved (see the status bar). Their unsaved edits stay in "
                "the recovery journal and are offered back next time. Close anyway?",
            ):
                return False
            self.window.canvas.set_document(None, None)
            if self.shared is not None:
                self.shared.close()
                self.shared.deleteLater()
            self.session.deleteLater()
            self.autosaver.deleteLater()
        had_project = self.project is not None
        self.session = self.autosaver = self.project = self.shared = None
        self.read_only = False
        self.window.dataset_dock.set_project(None)
        self.window.classes_dock.set_session(None)
        if show_welcome:
            self.show_welcome()
        if had_project:
            self.project_changed.emit(None)
        return True

    def choose_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Open a segstudio project folder")
        if folder:
            self.open_project(Path(folder))

    def open_sample(self) -> bool:
        try:
            path = sample_project_path()
        except SegstudioError as exc:
            dialogs.show_error(self.window, "Cannot open the sample project", str(exc))
            return False
        return self.open_project(path)

    def new_project(self) -> None:
        dialog = project_dialogs.NewProjectDialog(self.window)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        try:
            classes = dialog.class_table()
            images, root = Path(dialog.images.text()), Path(dialog.project.text())
            report = project_dialogs.run_job(
                self.window, "Adding images",
                lambda progress: project_dialogs.create_project_from_folder(
                    images, root, classes, dialog.copy.isChecked(), progress),
            )
        except SegstudioError as exc:
            dialogs.show_error(self.window, "Cannot create the project", str(exc))
            return
        project_dialogs.ReportDialog(report, self.window).exec()
        self.open_project(root)

    def import_dataset(self) -> None:
        current = self.project.root if self.project else None
        dialog = project_dialogs.ImportDialog(current, self.window)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        root, options, fmt = dialog.project_root(), dialog.options(), dialog.format.currentText()
        # The importer writes the manifest itself: save and close ours first, reopen after.
        if not self.close_project(show_welcome=False):
            return
        try:
            from segstudio.core.importers import import_dataset

            report = project_dialogs.run_job(
                self.window, "Importing", lambda progress: import_dataset(root, fmt, options, progress))
        except SegstudioError as exc:
            dialogs.show_error(self.window, "Import failed", str(exc))
            if current is not None:
                self.open_project(current)
            else:
                self.show_welcome()
            return
        project_dialogs.ReportDialog(report, self.window).exec()
        self.open_project(root)

    # -- the active model ------------------------------------------------------------------------
    @property
    def active_model(self) -> Path | None:
        """The model training made active for the open project (None: none, or no project)."""
        return active_model(self.project) if self.project is not None else None

    def set_active_model(self, model_dir: Path | None) -> None:
        """Write the project's active-model setting and tell the features; the one way it changes."""
        if self.project is None:
            return
        set_active_model(self.project, model_dir)
        self.active_model_changed.emit(self.active_model)

    # -- images and navigation ------------------------------------------------------------------
    def listed_ids(self) -> list[str]:
        """The image ids the image list shows now, in its order (its filters applied)."""
        return self.window.dataset_dock.visible_ids()

    def open_image(self, image_id: str) -> bool:
        return self.session.open_image(image_id) if self.session else False

    def cancel_loading(self) -> bool:
        """Stop the image load in flight (the status bar's Cancel button)."""
        return self.session.cancel_loading() if self.session else False

    def _on_session_load_progress(self, image_id: str, fraction: float) -> None:
        self.window.status.show_busy(
            f"building the overview pyramid of {image_id}: {int(fraction * 100)}%",
            "Stop opening this image; what is built so far is kept and used when you open it again")

    def _on_session_image_opened(self, image_id: str) -> None:
        w, session = self.window, self.session
        assert session is not None
        try:
            w.canvas.set_document(session.image, session.document)
        except MaskError as exc:
            w.status.show_note(str(exc))
        w.dataset_dock.select(image_id)
        w.dataset_dock.thumbnails.retry(image_id)  # a gigapixel image's: its pyramid exists now
        if w.status.currentMessage() == f"loading {image_id}...":
            w.status.clearMessage()
        w.status.set_unsaved(session.has_unsaved())
        record = session.project.image(image_id)
        self._on_title_status(image_id, record.status)
        self._update_history_actions()
        self.image_opened.emit(image_id)

    def go(self, step: int) -> bool:
        if self.session is None:
            return False
        target = self.session.neighbor_id(step, self.listed_ids())
        if target is None:
            self.window.status.show_note("no more images this way")
            return False
        return self.open_image(target)

    def go_next_unlabeled(self) -> bool:
        if self.session is None:
            return False
        target = self.session.next_unlabeled_id()
        if target is None:
            self.window.status.show_note("every image is labelled")
            return False
        return self.open_image(target)

    def mark_done(self, reviewed: bool) -> bool:
        return self.session.mark_done(reviewed) if self.session else False

    def save(self) -> bool:
        return self.session.save().saved if self.session else False

    def undo(self) -> None:
        if self.session is not None and self.session.undo():
            self._update_history_actions()

    def redo(self) -> None:
        if self.session is not None and self.session.redo():
            self._update_history_actions()

    def step_brush(self, direction: int) -> None:
        canvas = self.window.canvas
        step = max(1, round(canvas.brush_size * 0.1))
        canvas.set_brush_size(canvas.brush_size + direction * step)

    def on_canvas_tool_changed(self, name: str) -> None:
        for action in self.window.commands.tool_actions():
            if action.data() == name:
                action.setChecked(True)

    # -- session signals ----------------------------------------------------------------------------
    def _on_session_edited(self, image_id: str) -> None:
        self._update_history_actions()
        self.image_edited.emit(image_id)

    def _update_history_actions(self) -> None:
        document = self.session.document if self.session else None
        commands = self.window.commands
        state = (
            document is not None and document.can_undo,
            document is not None and document.can_redo,
            document.undo_label if document is not None else None,
        )
        if state == self._history_state:  # runs on every brush dab; menus need no churn
            return
        self._history_state = state
        commands["undo"].setEnabled(state[0])
        commands["redo"].setEnabled(state[1])
        commands["undo"].setText(f"&Undo {state[2]}" if state[2] else "&Undo")

    def _on_session_status_changed(self, image_id: str, status: str) -> None:
        self.window.dataset_dock.refresh(image_id)
        if image_id == (self.session.current_id if self.session else None):
            self._on_title_status(image_id, status)
        self.status_changed.emit(image_id, status)

    def _on_title_status(self, image_id: str, status: str) -> None:
        assert self.project is not None
        self._set_title(f"{image_id} ({status.replace('_', ' ')}) — {self.project.name}")

    def _set_title(self, text: str) -> None:
        mode = " — read-only" if self.read_only else ""
        self.window.setWindowTitle(f"{text}{mode} — segstudio")

    def _on_session_dirty_changed(self, dirty: bool) -> None:
        self.window.status.set_unsaved(dirty)

    def _on_session_classes_changed(self) -> None:
        assert self.project is not None
        self.window.status.set_classes(self.project.classes)
        self.window.canvas.refresh_classes()

    # -- help --------------------------------------------------------------------------------------
    def show_shortcuts(self) -> dialogs.ShortcutSheet:
        if self._sheet is not None:
            self._sheet.deleteLater()
        # rebuilt each time: other parts may have added menus since
        rows = self.window.commands.shortcut_rows(self.window.menuBar())
        self._sheet = dialogs.ShortcutSheet(rows, self.window)
        self._sheet.show()
        self._sheet.raise_()
        return self._sheet

    def show_about(self) -> None:
        dialogs.show_about(self.window)
