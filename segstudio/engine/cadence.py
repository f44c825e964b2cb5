"""When an intermediate validation is due: by time, not by epoch.

Each validation's duration is measured; one is skipped while it would bring the time spent
validating above `share` of the time spent training and validating so far. The first one's
cost is estimated from the training throughput (scoring runs about FORWARD_SPEEDUP times
as many pixels a second as a training step: 4-11x measured on a CPU, U-Net/ResNet-18,
64-96 px images), later ones cost what the last one took; a wrong first guess costs at most
that one validation. The run's last epoch is
always validated (on the whole split), whatever this says.
"""

from __future__ import annotations

FORWARD_SPEEDUP = 5.0  # pixels/s of scoring over pixels/s of a training step, roughly


class ValCadence:
    def __init__(self, share: float) -> None:
        self.share = share
        self.train_s = 0.0
        self.val_s = 0.0
        self.last_val_s: float | None = None

    def trained(self, seconds: float) -> None:
        self.train_s += seconds

    def validated(self, seconds: float) -> None:
        self.val_s += seconds
        self.last_val_s = seconds

    def due(self, val_pixels: int, train_pixels_per_s: float | None) -> bool:
        """True when validating now keeps validation within its share of the time."""
        if self.share <= 0:
            return True
        if self.last_val_s is not None:
            cost = self.last_val_s
        elif train_pixels_per_s:
            cost = val_pixels / (FORWARD_SPEEDUP * train_pixels_per_s)
        else:
            cost = 0.0
        return self.val_s + cost <= self.share * (self.train_s + self.val_s + cost)
