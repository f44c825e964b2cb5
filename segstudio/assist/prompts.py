"""What the user asked for: clicks (positive or negative) and an optional box, in image pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segstudio.assist.errors import AssistError

# Point labels every SAM-family decoder understands.
LABEL_NEGATIVE = 0
LABEL_POSITIVE = 1
LABEL_BOX_TOP_LEFT = 2
LABEL_BOX_BOTTOM_RIGHT = 3
LABEL_PADDING = -1


@dataclass(frozen=True)
class Point:
    """A click at (x, y) in image pixels; positive adds to the object, negative cuts out."""

    x: float
    y: float
    positive: bool = True


@dataclass(frozen=True)
class Box:
    """A box around the object, corners in image pixels (any order)."""

    x0: float
    y0: float
    x1: float
    y1: float

    def normalised(self) -> Box:
        return Box(min(self.x0, self.x1), min(self.y0, self.y1),
                   max(self.x0, self.x1), max(self.y0, self.y1))


@dataclass(frozen=True)
class Prompt:
    """Points and/or a box; at least one of them."""

    points: tuple[Point, ...] = ()
    box: Box | None = None

    def with_point(self, point: Point) -> Prompt:
        return Prompt((*self.points, point), self.box)

    def without_last_point(self) -> Prompt:
        return Prompt(self.points[:-1], self.box)

    @property
    def is_empty(self) -> bool:
        return not self.points and self.box is None

    @property
    def is_ambiguous(self) -> bool:
        """One click and no box: SAM's rule shows the best of the alternatives then."""
        return len(self.points) == 1 and self.box is None

    def check(self, height: int, width: int) -> None:
        """Raise AssistError for an empty prompt or one outside the image."""
        if self.is_empty:
            raise AssistError("the assist needs at least one click or a box")
        coords = [(p.x, p.y) for p in self.points]
        if self.box is not None:
            coords += [(self.box.x0, self.box.y0), (self.box.x1, self.box.y1)]
        for x, y in coords:
            if not (-0.5 <= x <= width + 0.5 and -0.5 <= y <= height + 0.5):
                raise AssistError(
                    f"point ({x:g}, {y:g}) lies outside the {width}x{height} image; "
                    "give x in 0..width and y in 0..height (image pixels)"
                )

    def arrays(self, pad: bool) -> tuple[np.ndarray, np.ndarray]:
        """(coords [N,2] x,y in image pixels, labels [N]) with the box as labels 2/3 after
        the points; `pad` appends SAM's (0,0)/-1 padding point when there is no box."""
        coords = [(p.x, p.y) for p in self.points]
        labels = [LABEL_POSITIVE if p.positive else LABEL_NEGATIVE for p in self.points]
        if self.box is not None:
            box = self.box.normalised()
            coords += [(box.x0, box.y0), (box.x1, box.y1)]
            labels += [LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT]
        elif pad:
            coords.append((0.0, 0.0))
            labels.append(LABEL_PADDING)
        return (np.asarray(coords, dtype=np.float32).reshape(-1, 2),
                np.asarray(labels, dtype=np.float32))


def parse_point(text: str) -> Point:
    """'X,Y' or 'X,Y,LABEL' (LABEL 1 positive, 0 negative) as the CLI takes it."""
    parts = [part.strip() for part in text.split(",")]
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    if len(values) not in (2, 3) or (len(values) == 3 and values[2] not in (0.0, 1.0)):
        raise AssistError(f"--point {text!r}: write X,Y or X,Y,LABEL with LABEL 1 (positive) or 0 (negative)")
    return Point(values[0], values[1], positive=len(values) == 2 or values[2] == 1.0)


def parse_box(text: str) -> Box:
    """'X0,Y0,X1,Y1' in image pixels."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or values[0] == values[2] or values[1] == values[3]:
        raise AssistError(f"--box {text!r}: write X0,Y0,X1,Y1 (two opposite corners, image pixels)")
    return Box(*values)
