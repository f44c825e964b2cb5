"""The app's numpy-to-QImage helpers: same pixels, copy or live view as promised."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QColor, QImage

from segstudio.ui.qimages import rgb_qimage, wrap_array


def test_rgb_qimage_owns_a_copy_with_the_same_pixels() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    image = rgb_qimage(pixels[:, ::-1])  # a non-contiguous view is copied first
    flipped = pixels[:, ::-1].copy()
    pixels[:] = 0  # the image must not share memory with the array
    assert (image.width(), image.height()) == (7, 5)
    for y, x in [(0, 0), (2, 3), (4, 6)]:
        assert QColor(image.pixel(x, y)).getRgb()[:3] == tuple(int(v) for v in flipped[y, x])


def test_wrap_array_is_a_live_view_of_the_buffer() -> None:
    buffer = np.zeros((3, 4), dtype=np.uint32)
    image = wrap_array(buffer, QImage.Format.Format_ARGB32_Premultiplied)
    buffer[1, 2] = 0xFF102030
    assert image.pixel(2, 1) == 0xFF102030
    with pytest.raises(ValueError, match="non-contiguous"):
        wrap_array(np.zeros((4, 6), np.uint32)[:, ::2], QImage.Format.Format_ARGB32_Premultiplied)
