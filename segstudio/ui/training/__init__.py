"""Training in the app: panel, child process, live dashboard, runs history (issue #5).

A feature of the window: `install(context)` (ui/features.py) adds its dock and menu.
This module stays import-free: the device probe and the warm child run as
`python -m segstudio.ui.training.<module>` and must not load Qt widgets on the way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from segstudio.ui.features import FeatureContext
    from segstudio.ui.training.dock import TrainingHook


def install(context: FeatureContext) -> TrainingHook:
    """Add the Training dock and menu; the dock's insides are built on first use."""
    from segstudio.ui.training.dock import TrainingHook

    return TrainingHook(context)
