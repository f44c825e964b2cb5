"""Box to mask with the project's model, the numpy part: the crop around a box, which class
is kept inside it, and how model class ids map onto the project's."""

from __future__ import annotations

import numpy as np

from segstudio.assist import Box
from segstudio.core.classes import ClassDef, ClassTable
from segstudio.core.region import Region
from segstudio.ui.annotate.assist_box_model import box_proposal, class_map, crop_region

CLASSES = ClassTable((
    ClassDef(0, "road", (128, 64, 128)), ClassDef(1, "car", (64, 0, 128)),
    ClassDef(2, "tree", (128, 128, 0)), ClassDef(255, "unlabeled", (0, 0, 0), ignore=True),
))


def test_crop_region_adds_a_margin_and_stays_in_the_image() -> None:
    # longer side 200 -> margin 0.15 * 200 = 30
    assert crop_region(Box(100, 50, 300, 150), 400, 500) == Region(20, 70, 180, 330)
    # small box -> at least 16 px; clipped at the image's edges; corners in any order
    assert crop_region(Box(30, 20, 5, 2), 40, 50) == Region(0, 0, 36, 46)


def _labels(shape: tuple[int, int], fill: int) -> np.ndarray:
    return np.full(shape, fill, np.uint8)


def test_the_majority_class_inside_the_box_is_kept_and_only_there() -> None:
    crop = Region(10, 10, 70, 90)  # rows 10-69, columns 10-89 of a 100x120 image
    labels = _labels((60, 80), 0)  # road everywhere in the crop
    labels[20:45, 25:60] = 1  # a car: rows 30-54, columns 35-69 of the image
    labels[22:24, 30:32] = 255  # ignore pixels are never the answer
    box = Box(30, 25, 75, 60)  # columns 30-74, rows 25-59
    proposal = box_proposal(labels, crop, box, (100, 120), CLASSES, active_class=2)
    assert proposal is not None and proposal.class_id == 1
    want = np.zeros((100, 120), bool)
    want[30:55, 35:70] = True
    want[32:34, 40:42] = False  # the ignore pixels inside the car stay out
    np.testing.assert_array_equal(proposal.mask(), want)
    assert abs(proposal.share - want.sum() / (35 * 45)) < 1e-9
    assert len(proposal.candidates) == 1 and proposal.feedback() is None


def test_the_active_class_wins_when_it_covers_enough_of_the_box() -> None:
    crop = Region(0, 0, 50, 50)
    labels = _labels((50, 50), 0)
    labels[10:14, 10:14] = 2  # 16 px of tree in a 20x20 = 400 px box: 4 % -> road wins
    box = Box(5, 5, 25, 25)
    assert box_proposal(labels, crop, box, (50, 50), CLASSES, active_class=2).class_id == 0
    labels[10:15, 10:14] = 2  # 20 px: 5 % -> the active class
    proposal = box_proposal(labels, crop, box, (50, 50), CLASSES, active_class=2)
    assert proposal.class_id == 2 and proposal.mask().sum() == 20


def test_nothing_but_ignore_in_the_box_is_no_proposal() -> None:
    labels = _labels((30, 30), 255)
    assert box_proposal(labels, Region(0, 0, 30, 30), Box(2, 2, 20, 20), (30, 30), CLASSES, 1) is None


def test_class_map_by_name() -> None:
    model = ClassTable((ClassDef(0, "Car", (1, 1, 1)), ClassDef(1, "sky", (2, 2, 2)),
                        ClassDef(2, "road", (3, 3, 3))))
    lut = class_map(model, CLASSES)
    assert lut[0] == 1 and lut[2] == 0, "same names, other ids"
    assert lut[1] == CLASSES.unlabeled_id, "a class the project lacks"
