"""Typed errors a user can cause. Each message says what is wrong and what to do."""

from __future__ import annotations


class SegstudioError(Exception):
    """Base class for every error the user can cause and the app reports in words."""


class ProjectError(SegstudioError):
    """A project folder or its manifest is missing, unreadable or invalid."""


class ClassTableError(SegstudioError):
    """A class list (classes.json, labels.txt, manifest classes) is invalid."""


class ImageReadError(SegstudioError):
    """An image file is missing, corrupt, truncated or of an unsupported kind."""


class MaskError(SegstudioError):
    """A mask does not fit its image or its class table."""


class DatasetImportError(SegstudioError):
    """A dataset could not be imported (or, with --strict, not completely)."""


class ExportError(SegstudioError):
    """An export could not be written."""


class ModelError(SegstudioError):
    """A model name, encoder, model file or weights file is unknown, invalid or unreadable."""


class TrainingError(SegstudioError):
    """Training or evaluation cannot run: no labelled images, bad settings, missing device."""


class ToolError(SegstudioError):
    """An annotation tool could not do what was asked (e.g. GrabCut without background)."""


class StorageError(SegstudioError, OSError):
    """A file could not be written (disk full, I/O error, read-only or vanished folder).
    The previous file is intact. Also an OSError, so callers that caught the raw OS error
    before keep working."""


class ProjectLockedError(ProjectError):
    """Another live process holds the project's write lock longer than we may wait."""


class MaskConflictError(MaskError):
    """A mask changed on disk since this process read it: keep mine as a new save, or load theirs."""

    def __init__(self, message: str, conflict: object = None) -> None:
        super().__init__(message)
        self.conflict = conflict  # a core.mask_guard.MaskConflict: which image, which file
