"""The corrected-pixel definition shared by the effort meter and the learning-loop benchmark."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segstudio.core.loop import corrected_mask, corrected_pixels
from segstudio.core.loop_store import EffortTracker

VOID = 11


def _pair() -> tuple[np.ndarray, np.ndarray]:
    prelabel = np.zeros((40, 60), np.uint8)
    prelabel[:, 30:] = 3
    final = prelabel.copy()
    final[0:5, 0:10] = 2      # 50 relabelled pixels
    final[10:12, 40:50] = 0   # 20 more
    final[30:40, 0:6] = VOID  # 60 left as void by the annotator
    return prelabel, final


def test_counts_relabelled_pixels_and_leaves_out_void() -> None:
    prelabel, final = _pair()
    assert corrected_pixels(prelabel, final, VOID) == 70
    mask = corrected_mask(prelabel, final, VOID)
    assert mask.dtype == bool and mask[0:5, 0:10].all() and not mask[30:40, 0:6].any()
    # without an ignore class every difference counts
    assert corrected_pixels(prelabel, final, None) == 130


def test_void_in_the_prelabel_is_a_correction_when_the_final_labels_it() -> None:
    prelabel = np.full((4, 4), VOID, np.uint8)
    final = np.full((4, 4), VOID, np.uint8)
    final[0, :] = 5
    assert corrected_pixels(prelabel, final, VOID) == 4


def test_identical_masks_need_no_correction() -> None:
    prelabel, _ = _pair()
    assert corrected_pixels(prelabel, prelabel.copy(), VOID) == 0


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError):
        corrected_pixels(np.zeros((3, 4), np.uint8), np.zeros((4, 3), np.uint8), VOID)


def test_effort_meter_uses_the_same_definition(tmp_path: Path) -> None:
    prelabel, final = _pair()
    blank = np.full(prelabel.shape, VOID, np.uint8)
    tracker = EffortTracker(tmp_path, VOID)
    tracker.model_wrote("a", blank, prelabel)
    entry = tracker.record("a", final)
    assert entry.source == "model"
    assert entry.changed == corrected_pixels(prelabel, final, VOID) == 70
    assert entry.labelled == final.size - 60
    # hand work between two model writes is counted by the same rule
    accepted = final.copy()
    accepted[20:22, 0:5] = 4
    tracker.model_wrote("a", final, accepted)
    edited = accepted.copy()
    edited[39, 59] = 1  # one more correction
    assert tracker.record("a", edited).changed == 71
