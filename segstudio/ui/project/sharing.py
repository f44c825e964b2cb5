"""The open project shared with other programs: follow their changes, answer mask conflicts,
and tell other windows that we are here (a presence marker with a heartbeat).

One SharedProject lives while a project is open. It turns the watcher's findings into what
the user sees: the image list, statuses and classes follow a refresh; a mask changed under
unsaved edits becomes a non-modal offer (keep mine / load theirs); a clean mask just follows.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer

from segstudio.core.presence import HEARTBEAT_S, PresenceMarker
from segstudio.ui import dialogs
from segstudio.ui.project.watcher import ManifestChange, ProjectWatcher

if TYPE_CHECKING:
    from segstudio.ui.project.workspace import Workspace


class SharedProject(QObject):
    """Watcher, presence marker and conflict offers of the workspace's open project."""

    def __init__(self, workspace: Workspace, read_only: bool = False, poll_ms: int | None = None) -> None:
        super().__init__(workspace)
        assert workspace.project is not None and workspace.session is not None
        self.workspace = workspace
        self.session = session = workspace.session
        kwargs = {} if poll_ms is None else {"poll_ms": poll_ms}
        self.watcher = ProjectWatcher(workspace.project, session, parent=self, **kwargs)
        self.marker = PresenceMarker(workspace.project.root, read_only)
        self.marker.announce()
        self._beat = QTimer(self)
        self._beat.setInterval(int(HEARTBEAT_S * 1000))
        self._beat.timeout.connect(self._on_beat_timeout)
        self._beat.start()
        self.offers: dict[str, dialogs.ConflictOffer] = {}
        self.watcher.manifest_changed.connect(self._on_watcher_manifest_changed)
        self.watcher.mask_changed.connect(self._on_watcher_mask_changed)
        session.conflict.connect(self._on_session_conflict)

    def close(self) -> None:
        """The project closes: stop watching, withdraw the marker, drop open offers."""
        self.watcher.stop()
        self._beat.stop()
        self.marker.withdraw()
        for offer in self.offers.values():
            offer.close()
            offer.deleteLater()
        self.offers.clear()

    def _on_beat_timeout(self) -> None:
        self.marker.beat()

    # -- others changed the project ----------------------------------------------------------------
    def _on_watcher_manifest_changed(self, change: ManifestChange) -> None:
        self.workspace.follow_refresh(change)

    def _on_watcher_mask_changed(self, image_id: str) -> None:
        if self.session.reload_clean(image_id):  # no unsaved edits: nothing to decide
            self.watcher.resolved(image_id)
            return
        self.offer(image_id, f"the mask of '{image_id}' changed on disk while you had unsaved edits")

    def _on_session_conflict(self, image_id: str, text: str) -> None:
        self.offer(image_id, text)

    # -- the offer ---------------------------------------------------------------------------------
    def offer(self, image_id: str, text: str) -> dialogs.ConflictOffer:
        """Show (once per image until answered) the keep-mine / load-theirs offer."""
        existing = self.offers.get(image_id)
        if existing is not None:
            return existing
        offer = dialogs.ConflictOffer(self.workspace.window, image_id, text,
                                      keep_mine=partial(self.answer, image_id, True),
                                      load_theirs=partial(self.answer, image_id, False))
        self.offers[image_id] = offer
        self.workspace.window.status.show_note(
            f"the mask of '{image_id}' changed on disk: keep yours or load theirs")
        offer.show()
        return offer

    def answer(self, image_id: str, keep_mine: bool) -> bool:
        """Resolve the conflict of `image_id`; True when it is settled."""
        offer = self.offers.pop(image_id, None)
        if offer is not None:
            offer.deleteLater()
        done = self.session.keep_mine(image_id).saved if keep_mine else self.session.load_theirs(image_id)
        self.watcher.resolved(image_id)
        return done
