"""The words a project's manifest uses for an image's split and status, and the named groups
of them that the engine, the exporters and the app select by.

One place, so that "which images does training use" or "which images may a model overwrite"
is answered the same way everywhere; the manifest accepts exactly `SPLITS` and `STATUSES`.
"""

from __future__ import annotations

from typing import Literal, get_args

Split = Literal["train", "val", "test", "unassigned"]
Status = Literal["unlabeled", "in_progress", "labeled", "predicted", "reviewed"]

SPLITS: tuple[Split, ...] = get_args(Split)
STATUSES: tuple[Status, ...] = get_args(Status)

# A person confirmed the mask: training, evaluation and dataset export use these by default.
TRAINING_STATUSES: tuple[Status, ...] = ("labeled", "reviewed")
# No person has edited the mask yet (empty, or a model's proposal): a first edit, or a
# recovered autosave, makes the image `in_progress`.
UNEDITED_STATUSES: tuple[Status, ...] = ("unlabeled", "predicted")
# Not yet confirmed: what the model-in-the-loop queue walks through.
OPEN_STATUSES: tuple[Status, ...] = ("unlabeled", "in_progress", "predicted")
# Splits training learns from; `val` is held out for validation, `test` is never trained on.
TRAIN_SPLITS: tuple[Split, ...] = ("train", "unassigned")
