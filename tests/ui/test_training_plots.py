"""Plot axes stay readable: loss ticks on a log axis never overlap, at any range or size."""

from __future__ import annotations

import math

import pytest

from segstudio.ui.training.plots import LogAxis, log_ticks, make_plot


@pytest.mark.parametrize("low, high", [(0.35, 0.9), (0.05, 2.5), (1e-4, 3.0), (0.011, 0.013), (0.2, 40.0)])
@pytest.mark.parametrize("length", [60, 150, 400])
def test_log_ticks_keep_their_distance(low: float, high: float, length: int) -> None:
    lo, hi = math.log10(low), math.log10(high)
    ticks = log_ticks(lo, hi, length, 22)
    assert ticks, "an axis with no label at all"
    assert all(lo - 1e-9 <= t <= hi + 1e-9 for t in ticks)
    px = [(t - lo) / (hi - lo) * length for t in ticks]
    assert all(b - a >= 22 - 1e-6 for a, b in zip(px, px[1:]))
    if length >= 150:
        assert len(ticks) >= 2  # a tall enough axis always shows a scale


def test_loss_plot_prints_plain_numbers_on_its_log_axis(qtbot) -> None:  # noqa: ANN001
    plot = make_plot("Loss", "loss", log_y=True)
    qtbot.addWidget(plot)
    plot.resize(300, 180)
    plot.plot([1, 2, 3, 4], [0.9, 0.6, 0.45, 0.38])
    plot.show()
    qtbot.waitExposed(plot)
    axis = plot.getAxis("left")
    assert isinstance(axis, LogAxis) and axis.logMode
    low, high = plot.getViewBox().viewRange()[1]
    levels = axis.tickValues(low, high, axis.height())
    values = levels[0][1]
    labels = axis.tickStrings(values, 1.0, 1.0)
    assert len(labels) >= 2 and all("e" not in text for text in labels)
    shown = [float(text) for text in labels]
    assert all(10 ** low * 0.99 <= value <= 10 ** high * 1.01 for value in shown)
    assert shown == sorted(shown) and len(set(shown)) == len(shown)
