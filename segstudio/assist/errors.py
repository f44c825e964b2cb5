"""Typed errors of the click assist; each message says what is wrong and what to do."""

from __future__ import annotations

from segstudio.core.errors import SegstudioError


class AssistError(SegstudioError):
    """A model file, prompt or model download for the click assist is unusable."""


class AssistCancelled(AssistError):
    """An image encode was cancelled because the user moved on; nothing to report."""


class DownloadError(AssistError):
    """A model download failed: offline, blocked, truncated or a checksum mismatch."""
