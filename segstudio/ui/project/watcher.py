"""Following what other programs do to the open project: project.json and the open masks.

Two sources, one debounced check: a QFileSystemWatcher on the project folder and masks/
(instant on a local disk) and a poll every POLL_MS of a few file stamps (inotify and its
kin never hear of writes made by another machine on a network share, so the watcher alone
would miss the very case of a lab's shared drive). The check costs one stat of project.json
plus one per open mask; the manifest is read only when its stamp moved, and a change made
by our own save is recognised by Project.refresh (same digest) and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal

from segstudio.core.errors import SegstudioError
from segstudio.core.mask_guard import Stamp, file_stamp
from segstudio.core.project import Project

if TYPE_CHECKING:
    from segstudio.ui.project.session import EditingSession

POLL_MS = 1000
DEBOUNCE_MS = 150  # a writer replaces, then touches lock files: look once it settled


class ProjectWatcher(QObject):
    """Emits `manifest_changed` when another writer changed project.json (after refresh()
    merged it into the open Project) and `mask_changed(image_id)` when the mask of an open
    image is no longer the one this app last read or wrote."""

    manifest_changed = Signal(object)  # a ManifestChange
    mask_changed = Signal(str)

    def __init__(self, project: Project, session: EditingSession, poll_ms: int = POLL_MS,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project = project
        self.session = session
        self._stamp: Stamp | None = file_stamp(project.manifest_path)
        self._reported: set[str] = set()  # masks already reported; again once resolved
        self._fs = QFileSystemWatcher(self)
        for folder in (project.root, project.root / "masks"):
            if folder.is_dir():
                self._fs.addPath(str(folder))
        self._fs.directoryChanged.connect(self._on_fs_changed)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.check)
        self._poll = QTimer(self)
        self._poll.setInterval(max(50, poll_ms))
        self._poll.timeout.connect(self.check)
        self._poll.start()

    def stop(self) -> None:
        self._poll.stop()
        self._debounce.stop()
        paths = self._fs.directories() + self._fs.files()
        if paths:
            self._fs.removePaths(paths)

    def resolved(self, image_id: str) -> None:
        """The conflict of `image_id` was answered; report a later change again."""
        self._reported.discard(image_id)

    def _on_fs_changed(self, _path: str) -> None:
        self._debounce.start()

    def check(self) -> None:
        """Look at the manifest and the open masks now (the poll and the watcher call this)."""
        if not self.session.store.wait(0):
            # One of our own writes is in flight on the writer thread: its file stamp is not
            # recorded yet, and refresh() must not swap the image table under it. Next tick.
            return
        self._check_manifest()
        self._check_masks()

    def _check_manifest(self) -> None:
        stamp = file_stamp(self.project.manifest_path)
        if stamp == self._stamp:
            return
        before = _snapshot(self.project)
        try:
            changed = self.project.refresh()
        except SegstudioError as exc:  # unreadable for now (a drive gone): try again next tick
            self.session.message.emit(f"cannot follow changes to the project: {exc}")
            return
        self._stamp = stamp
        if changed:
            self.manifest_changed.emit(ManifestChange.between(before, _snapshot(self.project)))

    def _check_masks(self) -> None:
        for image_id in self.session.open_ids():
            if image_id in self._reported or image_id not in self.project:
                continue
            if self.project.mask_changed_on_disk(image_id):
                self._reported.add(image_id)
                self.mask_changed.emit(image_id)


_Snapshot = tuple[dict[str, tuple[str, str]], object]


def _snapshot(project: Project) -> _Snapshot:
    return {rec.id: (rec.status, rec.split) for rec in project.images}, project.classes


@dataclass(frozen=True)
class ManifestChange:
    """What a refresh brought in: added and removed image ids, ids whose status or split
    moved, and whether the class table changed."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    moved: tuple[str, ...]
    classes: bool

    @classmethod
    def between(cls, before: _Snapshot, after: _Snapshot) -> ManifestChange:
        old, new = before[0], after[0]
        return cls(
            added=tuple(image_id for image_id in new if image_id not in old),
            removed=tuple(image_id for image_id in old if image_id not in new),
            moved=tuple(image_id for image_id in new if image_id in old and old[image_id] != new[image_id]),
            classes=before[1] != after[1],
        )

    def describe(self) -> str:
        parts = []
        if self.added:
            parts.append(f"{len(self.added)} new image(s)")
        if self.removed:
            parts.append(f"{len(self.removed)} removed")
        if self.moved:
            parts.append(f"{len(self.moved)} status/split change(s)")
        if self.classes:
            parts.append("classes changed")
        return "another program changed the project: " + (", ".join(parts) or "settings changed")

