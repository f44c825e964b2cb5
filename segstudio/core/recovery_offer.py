"""The recovery offer on open: unsaved work left in the journals of apps that are gone.

Every app process journals into its own .recovery/<host>-<pid>/ folder. When a project is
opened, the journals whose owner is no longer running (a dead process on this host, or on
another host one whose presence heartbeat went stale: core/presence.py's rules) are collected,
together with this process's own leftovers and the single journal older versions wrote
directly in .recovery/. A live app's journal is never offered: it is that app's work.
"""

from __future__ import annotations

import os
from pathlib import Path

from segstudio.core import presence
from segstudio.core.locking import host_name, pid_alive
from segstudio.core.project import Project
from segstudio.core.recovery import (
    JOURNAL_NAME,
    RECOVERY_DIR,
    JournalOwner,
    RecoveredMask,
    RecoveryJournal,
    RecoveryReport,
    restore_masks,
)


def owner_alive(root: str | os.PathLike[str], owner: JournalOwner, now: float | None = None) -> bool:
    """Whether the app that owns a journal still runs: on this host, its process exists; on
    another host, its presence marker is there and its heartbeat is recent."""
    if owner.host == host_name():
        return pid_alive(owner.pid)
    return any(info.host == owner.host and info.pid == owner.pid for info in presence.others(root, now))


def left_journals(root: str | os.PathLike[str], include_own: bool = True,
                  now: float | None = None) -> list[RecoveryJournal]:
    """The journals under `root` whose owner is gone (and this process's own, unless told
    not to); the old single journal only when no other app has the project open, since it
    does not say whose it is."""
    folder = Path(root) / RECOVERY_DIR
    found: list[RecoveryJournal] = []
    try:
        subfolders = sorted(path for path in folder.iterdir() if path.is_dir())
    except OSError:
        return found
    for path in subfolders:
        owner = JournalOwner.read(path)
        if owner is None or path.name != owner.folder_name:
            continue  # a folder being set up right now, or not a journal at all
        if owner.is_current_process():
            if include_own:
                found.append(RecoveryJournal(root, owner))
        elif not owner_alive(root, owner, now):
            found.append(RecoveryJournal(root, owner))
    if (folder / JOURNAL_NAME).is_file() and not presence.others(root, now):
        found.append(RecoveryJournal(root, legacy=True))
    return found


class LeftoverWork:
    """The journals of gone apps as one offer: what differs from the saved masks, restored
    or dropped together. An image journalled by two of them comes back in its newest form."""

    def __init__(self, root: str | os.PathLike[str], include_own: bool = True,
                 now: float | None = None) -> None:
        self.journals = left_journals(root, include_own, now)

    def pending(self, project: Project) -> list[RecoveredMask]:
        newest: dict[str, RecoveredMask] = {}
        for journal in self.journals:
            for item in journal.pending(project):
                kept = newest.get(item.entry.image_id)
                if kept is None or item.entry.saved_at > kept.entry.saved_at:
                    newest[item.entry.image_id] = item
        return sorted(newest.values(), key=lambda item: item.entry.saved_at)

    def restore(self, project: Project, image_ids: list[str] | None = None) -> RecoveryReport:
        """Write the recovered masks into the project and clear every collected journal."""
        report = restore_masks(project, self.pending(project), image_ids)
        self.clear()
        return report

    def clear(self) -> None:
        for journal in self.journals:
            journal.clear()
