"""Reading images and masks, writing palette masks.

Images are decoded with OpenCV (fast, any bit depth) with the EXIF orientation taken from
Pillow's header read; sizes come from the header alone, so a 20000 x 20000 image is never
decoded just to be listed. Masks are 8-bit palette PNGs: pixel value = class id, palette =
class colours, so any image viewer shows them in colour.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from segstudio.core import rasters
from segstudio.core.atomic import atomic_write_with
from segstudio.core.classes import ClassTable
from segstudio.core.errors import ImageReadError, MaskError, SegstudioError

# A desktop tool for microscopy and satellite tiles opens huge images on purpose.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"})
# Images up to this many pixels are fully decoded when checked at import; larger ones are
# checked by header only (decoding a 400-Mpixel tile would take seconds and gigabytes).
VERIFY_MAX_PIXELS = 64_000_000
# Our own decompression-bomb checks on the header (Pillow's are off, above): no image or mask
# beyond OpenCV's decode ceiling (32768 x 32768), and none above VERIFY_MAX_PIXELS whose
# pixels outnumber its file bytes by more than BOMB_RATIO (a few-kB file claiming gigapixels).
MAX_PIXELS = 1 << 30
BOMB_RATIO = 2000

# EXIF orientation -> (transpose?, rotate code) applied after decoding.
_ORIENTATION_OPS: dict[int, tuple[int | None, int | None]] = {
    2: (1, None),  # mirror horizontal
    3: (None, cv2.ROTATE_180),
    4: (0, None),  # mirror vertical
    5: (None, None),  # transpose
    6: (None, cv2.ROTATE_90_CLOCKWISE),
    7: (None, None),  # transverse
    8: (None, cv2.ROTATE_90_COUNTERCLOCKWISE),
}


@dataclass(frozen=True)
class ImageInfo:
    """What the header says: displayed size (after EXIF rotation), mode, orientation, and
    (TIFF) bands, dtype and georeferencing (see core/rasters.py)."""

    width: int
    height: int
    mode: str
    orientation: int = 1
    channels: int = 0  # 0: not known (PNG/JPEG: 1 grey or 3 colour)
    dtype: str = ""
    channel_names: tuple[str, ...] = ()
    crs: str | None = None
    geotransform: tuple[float, ...] | None = None
    warnings: tuple[str, ...] = ()


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _open_pil(path: Path) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Image.open(path)
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path}: file not found; was it moved or deleted?") from exc
    except PermissionError as exc:
        raise ImageReadError(f"{path}: permission denied; check the file's read permission") from exc
    except UnidentifiedImageError as exc:
        raise ImageReadError(f"{path}: not a readable image (corrupt, or an unsupported format)") from exc
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be read ({exc})") from exc


def _load_pil(im: Image.Image, path: Path, error: type[SegstudioError], what: str) -> None:
    """Decode `im` fully; a corrupt or truncated file raises `error` naming the file."""
    try:
        im.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise error(f"{path}: {what} data is corrupt or truncated ({exc})") from exc


def _tiff_info(path: Path, verify: bool) -> ImageInfo | None:
    """TIFF headers through tifffile (bands, dtype, geo tags); None: not a TIFF after all."""
    if not rasters.is_tiff(path) or not _looks_like_tiff(path):
        return None
    raster = rasters.read_tiff_info(path)
    width, height = raster.width, raster.height
    if raster.orientation in (5, 6, 7, 8):
        width, height = height, width
    if verify and width * height <= VERIFY_MAX_PIXELS:
        rasters.read_tiff(path)
    mode = "RGB" if raster.channels == 3 and raster.dtype == "uint8" else (
        "L" if raster.channels == 1 and raster.dtype == "uint8" else f"{raster.channels}x{raster.dtype}")
    return ImageInfo(width, height, mode, raster.orientation, raster.channels, raster.dtype,
                     raster.channel_names, raster.crs, raster.geotransform, raster.warnings)


def _looks_like_tiff(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path}: file not found; was it moved or deleted?") from exc
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be read ({exc.strerror or exc})") from exc


_MODE_BANDS = {"1": (1, "uint8"), "L": (1, "uint8"), "P": (3, "uint8"), "RGB": (3, "uint8"),
               "RGBA": (3, "uint8"), "LA": (1, "uint8"), "I;16": (1, "uint16"),
               "I;16B": (1, "uint16"), "I;16L": (1, "uint16"), "I": (1, "int32"), "F": (1, "float32")}


def read_image_info(path: str | os.PathLike[str], verify: bool = False) -> ImageInfo:
    """Header facts; with `verify`, small enough images are decoded to catch truncation."""
    path = Path(path)
    tiff = _tiff_info(path, verify)
    if tiff is not None:
        return tiff
    im = _open_pil(path)
    with im:
        try:
            # Pillow's PNG getexif() decodes the whole image to look for a late eXIf chunk;
            # a header read must never do that (a 20000 x 20000 PNG), so PNGs use early EXIF only.
            late_png_exif = im.format == "PNG" and "exif" not in im.info
            orientation = 1 if late_png_exif else int(im.getexif().get(0x0112, 1) or 1)
        except Exception:  # a broken EXIF block must not make the image unusable
            orientation = 1
        width, height = im.size
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        if verify and im.size[0] * im.size[1] <= VERIFY_MAX_PIXELS:
            _load_pil(im, path, ImageReadError, "image")
        channels, dtype = _MODE_BANDS.get(im.mode, (3, "uint8"))
        return ImageInfo(width, height, im.mode, orientation, channels, dtype)


def check_pixel_budget(path: Path, width: int, height: int,
                       error: type[ImageReadError] | type[MaskError] = ImageReadError, ratio: bool = True) -> None:
    """Refuse, from the header alone, a size no real image has: over MAX_PIXELS, or (with
    `ratio`, before decoding) a big image packed implausibly tight (a decompression bomb)."""
    pixels = int(width) * int(height)
    if pixels > MAX_PIXELS:
        raise error(f"{path}: {width}x{height} is {pixels / 1e6:.0f} Mpixel, more than segstudio opens "
                    f"({MAX_PIXELS / 1e6:.0f} Mpixel); split it into tiles first")
    if ratio and pixels > VERIFY_MAX_PIXELS:
        try:
            size = path.stat().st_size
        except OSError:
            return
        if pixels > BOMB_RATIO * max(size, 1):
            raise error(f"{path}: a {size}-byte file claims {width}x{height} pixels; this looks like a "
                        "decompression bomb, so it is not opened")


def check_mask_header(path: Path, shape: tuple[int, int]) -> None:
    """Before decoding a mask: its header size must be the image's (and within budget)."""
    im = _open_pil(path)
    with im:
        width, height = im.size
    check_pixel_budget(path, width, height, MaskError)
    if (height, width) != tuple(shape):
        raise MaskError(
            f"{path}: mask is {width}x{height} but its image is {shape[1]}x{shape[0]}; "
            "delete or resize the mask"
        )


def _apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    if orientation in (5, 7):
        array = np.swapaxes(array, 0, 1)
        if orientation == 7:
            array = cv2.rotate(np.ascontiguousarray(array), cv2.ROTATE_180)
        return np.ascontiguousarray(array)
    flip, rotate = _ORIENTATION_OPS.get(orientation, (None, None))
    if flip is not None:
        array = cv2.flip(array, flip)
    if rotate is not None:
        array = cv2.rotate(array, rotate)
    return array


def read_image_raw(path: str | os.PathLike[str]) -> np.ndarray:
    """Decoded pixels in their own depth, gray HxW or HxWxC (RGB(A) for photos; a TIFF's
    bands in file order, any count and dtype)."""
    path = Path(path)
    info = read_image_info(path)
    check_pixel_budget(path, info.width, info.height)  # listing reads headers; decoding is checked
    if info.dtype and rasters.is_tiff(path) and _looks_like_tiff(path):
        return _apply_orientation(rasters.read_tiff(path), info.orientation)
    try:
        buffer = np.fromfile(path, dtype=np.uint8)  # fromfile + imdecode: non-ASCII paths too
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    array = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if array is None:
        array = _decode_with_pillow(path)
    elif array.ndim == 3:
        code = cv2.COLOR_BGRA2RGBA if array.shape[2] == 4 else cv2.COLOR_BGR2RGB
        array = cv2.cvtColor(array, code)
    array = _apply_orientation(array, info.orientation)
    if array.shape[:2] != (info.height, info.width):
        raise ImageReadError(f"{path}: decoded size {array.shape[1]}x{array.shape[0]} disagrees with its header")
    return array


def _decode_with_pillow(path: Path) -> np.ndarray:
    im = _open_pil(path)
    with im:
        _load_pil(im, path, ImageReadError, "image")
        if im.mode not in ("L", "RGB", "RGBA", "I;16", "I;16B", "I"):
            im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
        return np.asarray(im)


def to_rgb8(array: np.ndarray) -> np.ndarray:
    """Any decoded image as HxWx3 uint8 RGB; 16-bit data is stretched to its 0.1-99.9 percentiles."""
    if array.dtype != np.uint8:
        data = array.astype(np.float32)
        low, high = np.percentile(data, (0.1, 99.9))
        if high <= low:
            high = low + 1.0
        array = np.clip((data - low) * (255.0 / (high - low)), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
    if array.shape[2] >= 4:  # RGBA, or a multi-band TIFF outside a display mapping: first three
        return np.ascontiguousarray(array[:, :, :3])
    if array.shape[2] == 1:
        return cv2.cvtColor(array[:, :, 0], cv2.COLOR_GRAY2RGB)
    if array.shape[2] == 2:
        return np.ascontiguousarray(np.dstack([array, array[:, :, :1]]))
    return np.ascontiguousarray(array)


def read_image_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """The image as HxWx3 uint8 RGB, the form shown on the canvas and fed to models."""
    return to_rgb8(read_image_raw(path))


# -- masks ---------------------------------------------------------------------------------
def read_mask_array(path: str | os.PathLike[str]) -> tuple[np.ndarray, str]:
    """The mask file's pixels and PIL mode: 'P'/'L' give HxW ids, 'RGB' gives HxWx3 colours."""
    path = Path(path)
    im = _open_pil(path)
    with im:
        check_pixel_budget(path, im.size[0], im.size[1], MaskError)
        _load_pil(im, path, MaskError, "mask")
        mode = im.mode
        if mode in ("P", "L"):
            return np.asarray(im, dtype=np.uint8), mode
        if mode in ("1",):
            return np.asarray(im, dtype=np.uint8), "L"
        if mode in ("I", "I;16", "I;16B", "I;16L"):
            data = np.asarray(im)
            if data.size and int(data.max()) > 255:
                raise MaskError(
                    f"{path}: 16-bit mask holds value {int(data.max())}; class ids must be 0-255"
                )
            return data.astype(np.uint8), "L"
        if mode in ("RGB", "RGBA", "LA", "PA"):
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
            return rgb, "RGB"
        raise MaskError(f"{path}: mask mode {mode} is not supported; save it as 8-bit PNG")


def colors_to_ids(rgb: np.ndarray, classes: ClassTable, source: str = "mask") -> np.ndarray:
    """Map an RGB colour-coded mask to class ids; an unknown colour is an error naming it."""
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    values, inverse = np.unique(packed.ravel(), return_inverse=True)
    table = classes.color_to_id()
    lut = np.zeros(len(values), dtype=np.uint8)
    for i, value in enumerate(values):
        color = (int(value >> 16) & 255, int(value >> 8) & 255, int(value) & 255)
        if color not in table:
            count = int(np.count_nonzero(inverse == i))
            raise MaskError(
                f"{source}: colour {list(color)} ({count} pixels) matches no class colour; "
                "add a class with that colour or fix the mask"
            )
        lut[i] = table[color]
    return lut[inverse].reshape(packed.shape)


def check_mask_values(mask: np.ndarray, classes: ClassTable, source: str = "mask") -> None:
    """Raise MaskError naming the ids that are not in the class table."""
    valid = classes.valid_lut()
    # A table lookup per pixel is ~10x cheaper than counting on an 8k mask (bincount widens
    # every pixel to 64 bits); count only to explain a failure.
    if mask.dtype == np.uint8 and mask.ndim == 2 and mask.size:
        flags = cv2.LUT(np.ascontiguousarray(mask), valid.astype(np.uint8))
        if cv2.countNonZero(flags) == mask.size:
            return
    counts = np.bincount(mask.ravel(), minlength=256)
    bad = np.flatnonzero((counts > 0) & ~valid)
    if bad.size:
        listed = ", ".join(f"{int(v)} ({int(counts[v])} px)" for v in bad[:8])
        raise MaskError(
            f"{source}: values {listed} are not class ids of this project; "
            f"valid ids are {list(classes.ids)}. Add the classes or remap the mask"
        )


def read_mask(path: str | os.PathLike[str], classes: ClassTable | None = None) -> np.ndarray:
    """A mask as HxW uint8 class ids; colour masks are mapped through `classes`."""
    data, mode = read_mask_array(path)
    if mode == "RGB":
        if classes is None:
            raise MaskError(f"{path}: an RGB colour mask needs a class table with colours to map it")
        return colors_to_ids(data, classes, source=str(path))
    if classes is not None:
        check_mask_values(data, classes, source=str(path))
    return data


def encode_mask_png(mask: np.ndarray, classes: ClassTable, compress_level: int = 1) -> bytes:
    buffer = io.BytesIO()
    _save_palette_png(mask, classes, buffer, compress_level)
    return buffer.getvalue()


def _save_palette_png(mask: np.ndarray, classes: ClassTable, handle: object, compress_level: int) -> None:
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise MaskError(f"a mask must be a 2-D uint8 array of class ids, got {mask.dtype} {mask.shape}")
    im = Image.fromarray(mask, mode="P")
    im.putpalette(classes.palette())
    im.save(handle, format="PNG", compress_level=compress_level)


def write_mask(path: str | os.PathLike[str], mask: np.ndarray, classes: ClassTable, compress_level: int = 1) -> None:
    """Write an indexed PNG atomically (a fast zlib level: autosave writes often)."""
    atomic_write_with(path, lambda handle: _save_palette_png(mask, classes, handle, compress_level))


def write_rgb_png(path: str | os.PathLike[str], rgb: np.ndarray) -> None:
    """Write an RGB uint8 array as PNG atomically (colour masks, overlays, previews)."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ImageReadError(f"{path}: PNG encoding failed")
    atomic_write_with(path, lambda handle: handle.write(encoded.tobytes()))


def colorize(mask: np.ndarray, classes: ClassTable) -> np.ndarray:
    return classes.color_lut()[mask]


def overlay(image_rgb: np.ndarray, mask: np.ndarray, classes: ClassTable, alpha: float = 0.5) -> np.ndarray:
    """Image blended with the mask's colours; ignore pixels show the plain image."""
    colors = colorize(mask, classes).astype(np.float32)
    blended = image_rgb.astype(np.float32) * (1 - alpha) + colors * alpha
    ignore = classes.ignore_index
    if ignore is not None:
        keep = mask == ignore
        blended[keep] = image_rgb[keep]
    return blended.round().astype(np.uint8)
