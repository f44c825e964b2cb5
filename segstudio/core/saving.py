"""What a save did, and what a save should do: the Qt-free half of mask persistence.

`SaveResult` says honestly whether the mask is on disk (saved), on its way (queued on the
ordered writer), put off (deferred: mid-stroke, or an older write of it is in flight), or
failed (with the message). It has no truth value on purpose: `if session.save():` once
could not tell "saved" from "put off", so every caller now reads `.outcome` or `.ok`.
Image status moves are decided here too, so they follow one rule everywhere.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

BACKGROUND_SAVE_PIXELS = 4_000_000  # masks above this size autosave on the writer thread

_EDIT_MOVES_TO_IN_PROGRESS = ("unlabeled", "predicted")


class SaveOutcome(enum.Enum):
    SAVED = "saved"  # on disk now (or there was nothing unsaved)
    QUEUED = "queued"  # handed to the ordered writer; `saved` follows when it is written
    DEFERRED = "deferred"  # put off: a stroke is open or an older write is still in flight
    FAILED = "failed"  # could not be written; `error` says why


# the order in which one outcome outweighs another when several saves are summed up
_SEVERITY = (SaveOutcome.SAVED, SaveOutcome.QUEUED, SaveOutcome.DEFERRED, SaveOutcome.FAILED)


@dataclass(frozen=True)
class SaveResult:
    """The outcome of saving one mask (or, from `combine`, several)."""

    outcome: SaveOutcome
    error: str = ""

    @property
    def ok(self) -> bool:
        """Nothing failed (the mask is saved, or will be by a later write)."""
        return self.outcome is not SaveOutcome.FAILED

    @property
    def saved(self) -> bool:
        """The mask is on disk now."""
        return self.outcome is SaveOutcome.SAVED

    def __bool__(self) -> bool:
        raise TypeError("a SaveResult has no truth value: read .outcome, .ok or .saved")

    @classmethod
    def failed(cls, error: str) -> SaveResult:
        return cls(SaveOutcome.FAILED, error)

    @classmethod
    def combine(cls, results: Iterable[SaveResult]) -> SaveResult:
        """The weightiest outcome of several saves; failure messages joined."""
        results = list(results)
        if not results:
            return SAVED
        worst = max((r.outcome for r in results), key=_SEVERITY.index)
        errors = "; ".join(r.error for r in results if r.outcome is SaveOutcome.FAILED and r.error)
        return cls(worst, errors)


SAVED = SaveResult(SaveOutcome.SAVED)
QUEUED = SaveResult(SaveOutcome.QUEUED)
DEFERRED = SaveResult(SaveOutcome.DEFERRED)


class SaveAction(enum.Enum):
    NOTHING = "nothing"  # clean: the disk already holds it
    DEFER = "defer"
    QUEUE = "queue"  # copy the mask and write it on the ordered writer thread
    WRITE = "write"  # write it now, on this thread


def plan_save(*, dirty: bool, in_stroke: bool, pixels: int, background: bool, rejected: bool,
              in_flight: bool, threshold: int = BACKGROUND_SAVE_PIXELS) -> SaveAction:
    """How to save one document.

    A background (auto)save never cuts an open stroke in two, and sends a big mask to the
    writer thread unless its saved file was rejected (that file is copied aside first,
    synchronously) or a write of it is still in flight (the next try queues the newest).
    """
    if not dirty:
        return SaveAction.NOTHING
    if background and in_stroke:
        return SaveAction.DEFER
    if background and pixels >= threshold and not rejected:
        return SaveAction.DEFER if in_flight else SaveAction.QUEUE
    return SaveAction.WRITE


def status_after_edit(status: str) -> str | None:
    """The status an image moves to when its mask is edited; None when it stays."""
    return "in_progress" if status in _EDIT_MOVES_TO_IN_PROGRESS else None


def done_status(reviewed: bool) -> str:
    """The status of an image the user marks done."""
    return "reviewed" if reviewed else "labeled"
