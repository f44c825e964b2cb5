"""Image and mask I/O: kinds and depths, EXIF, header-only reads, palette masks, colour maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dataset_builders import (
    exif_jpeg,
    huge_png_header,
    noise_image,
    sixteen_bit_png,
    write_image,
    write_rgb_mask,
)
from PIL import Image

from segstudio.core import imageio
from segstudio.core.classes import ClassTable
from segstudio.core.errors import ImageReadError, MaskError

CLASSES = ClassTable.from_names(["a", "b", "c"])


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((20, 30, 3), np.uint8)
    pixels[:, :10] = 255  # the left third white
    path = exif_jpeg(tmp_path / "r.jpg", pixels, orientation=6)  # shown rotated 90 deg clockwise
    info = imageio.read_image_info(path)
    assert (info.width, info.height, info.orientation) == (20, 30, 6)
    shown = imageio.read_image_rgb(path)
    assert shown.shape == (30, 20, 3)
    assert shown[:8].mean() > 200 and shown[12:].mean() < 50  # the white band is now on top


def test_header_only_for_huge_images(tmp_path: Path) -> None:
    path = huge_png_header(tmp_path / "huge.png")
    info = imageio.read_image_info(path, verify=True)  # would need 1.2 GB to decode
    assert (info.width, info.height) == (20000, 20000)


def test_depths_and_channels(tmp_path: Path) -> None:
    deep = imageio.read_image_raw(sixteen_bit_png(tmp_path / "d.png"))
    assert deep.dtype == np.uint16
    assert imageio.read_image_rgb(tmp_path / "d.png").dtype == np.uint8
    rgba = write_image(tmp_path / "a.png", noise_image(5, 6, channels=4))
    assert imageio.read_image_raw(rgba).shape == (5, 6, 4)
    assert imageio.read_image_rgb(rgba).shape == (5, 6, 3)


def test_corrupt_and_missing_images(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match="x.png"):
        imageio.read_image_info(tmp_path / "x.png")
    with pytest.raises(ImageReadError, match="not found"):
        imageio.read_image_info(tmp_path / "gone.png")
    good = write_image(tmp_path / "g.png", noise_image(30, 30)).read_bytes()
    (tmp_path / "t.png").write_bytes(good[: len(good) // 2])
    imageio.read_image_info(tmp_path / "t.png")  # the header alone is fine
    with pytest.raises(ImageReadError, match="truncated"):
        imageio.read_image_info(tmp_path / "t.png", verify=True)


def test_palette_masks_round_trip(tmp_path: Path) -> None:
    mask = np.random.default_rng(0).integers(0, 3, (9, 7)).astype(np.uint8)
    imageio.write_mask(tmp_path / "m.png", mask, CLASSES)
    with Image.open(tmp_path / "m.png") as im:
        assert im.mode == "P" and im.getpalette()[3:6] == list(CLASSES.by_id(1).color)
    np.testing.assert_array_equal(imageio.read_mask(tmp_path / "m.png", CLASSES), mask)
    imageio.write_mask(tmp_path / "bad.png", np.full((2, 2), 9, np.uint8), CLASSES)
    with pytest.raises(MaskError, match="9"):
        imageio.read_mask(tmp_path / "bad.png", CLASSES)


def test_rgb_masks_map_through_colours(tmp_path: Path) -> None:
    mask = np.array([[0, 1], [2, 1]], np.uint8)
    path = write_rgb_mask(tmp_path / "c.png", mask, CLASSES)
    np.testing.assert_array_equal(imageio.read_mask(path, CLASSES), mask)
    with pytest.raises(MaskError, match="class table"):
        imageio.read_mask(path)
    Image.fromarray(np.full((2, 2, 3), 33, np.uint8)).save(tmp_path / "u.png")
    with pytest.raises(MaskError, match=r"\[33, 33, 33\]"):
        imageio.read_mask(tmp_path / "u.png", CLASSES)
