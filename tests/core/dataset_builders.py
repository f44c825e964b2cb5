"""Small generated datasets on disk, one builder per format, for the importer tests."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from segstudio.core.classes import ClassTable


def noise_image(h: int, w: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def write_image(path: Path, array: np.ndarray) -> Path:
    """Write via Pillow (any suffix it knows); RGB arrays stay RGB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def write_gray(path: Path, mask: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8)).save(path)
    return path


def write_palette(path: Path, mask: np.ndarray, classes: ClassTable) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(mask.astype(np.uint8), mode="P")
    im.putpalette(classes.palette())
    im.save(path)
    return path


def write_rgb_mask(path: Path, mask: np.ndarray, classes: ClassTable) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(classes.color_lut()[mask]).save(path)
    return path


def random_mask(h: int, w: int, ids: list[int], seed: int = 0) -> np.ndarray:
    """Blocky random class ids (8x8 cells), so masks compress and look like regions."""
    rng = np.random.default_rng(seed)
    cells = rng.choice(np.asarray(ids, dtype=np.uint8), size=(h // 8 + 1, w // 8 + 1))
    return np.kron(cells, np.ones((8, 8), dtype=np.uint8))[:h, :w]


def folders_dataset(
    root: Path,
    n: int = 4,
    h: int = 24,
    w: int = 32,
    ids: tuple[int, ...] = (0, 1, 2),
    kind: str = "gray",
    classes: ClassTable | None = None,
) -> dict[str, np.ndarray]:
    """root/images/*.png and root/masks/*.png; returns stem -> mask written."""
    masks = {}
    for i in range(n):
        stem = f"img_{i:02d}"
        write_image(root / "images" / f"{stem}.png", noise_image(h, w, seed=i))
        mask = random_mask(h, w, list(ids), seed=100 + i)
        target = root / "masks" / f"{stem}.png"
        if kind == "gray":
            write_gray(target, mask)
        elif kind == "palette":
            assert classes is not None
            write_palette(target, mask, classes)
        else:
            assert classes is not None
            write_rgb_mask(target, mask, classes)
        masks[stem] = mask
    return masks


def png_b64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def labelme_file(
    path: Path,
    shapes: list[dict[str, Any]],
    h: int,
    w: int,
    image: str | None = None,
    embed: np.ndarray | None = None,
) -> Path:
    data = {
        "version": "5.4.1",
        "flags": {},
        "shapes": [{"group_id": None, "description": "", "flags": {}, **s} for s in shapes],
        "imagePath": image,
        "imageData": None if embed is None else png_b64(embed),
        "imageHeight": h,
        "imageWidth": w,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def coco_file(
    path: Path,
    images: list[dict[str, Any]],
    annotations: list[dict[str, Any]],
    categories: list[dict[str, Any]],
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories}),
        encoding="utf-8",
    )
    return path


def exif_jpeg(path: Path, array: np.ndarray, orientation: int) -> Path:
    im = Image.fromarray(array)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format="JPEG", exif=exif.tobytes(), quality=95)
    return path


def huge_png_header(path: Path, w: int = 20000, h: int = 20000) -> Path:
    """A PNG whose header says w x h with (almost) no pixel data: only a header read survives it."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = zlib.compress(b"\x00" * (w * 3 + 1) * 4)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", raw)
        + chunk(b"IEND", b"")
    )
    return path


def sixteen_bit_png(path: Path, h: int = 20, w: int = 30) -> Path:
    data = (np.arange(h * w, dtype=np.uint16).reshape(h, w) * 97).astype(np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), data)
    return path


def project_state(root: Path) -> dict[str, bytes]:
    """Every file of a project folder with its bytes: compare before and after an import."""
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
