"""segstudio: a desktop studio for human-in-the-loop semantic segmentation."""

from __future__ import annotations

__version__ = "0.1.0"
