"""A project's gigapixel images: which images are read by tiles, where their pyramids and
tiled masks live, and how their masks are read and saved (issue 12, point 4).

Rule: a TIFF above the gigapixel size (core/gigapixel.py) opens as a GigapixelImage, its
pyramid (if the file lacks one) is built once into PROJECT/.cache/pyramids/, and its mask is
the chunk store masks/<id>.zarr beside the PNG masks of ordinary images (core/tiled_mask.py).
Everything else keeps today's whole-array path exactly.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from segstudio.core import display, gigapixel, imageio, rasters, tiled_mask
from segstudio.core.errors import MaskError, StorageError
from segstudio.core.project import ImageRecord, Project

PYRAMID_CACHE = Path(".cache") / "pyramids"


def _record(project: Project, record: ImageRecord | str) -> ImageRecord:
    return project.image(record) if isinstance(record, str) else record


def is_gigapixel_record(project: Project, record: ImageRecord | str) -> bool:
    """Whether this image is read by tiles (a TIFF above the gigapixel size)."""
    record = _record(project, record)
    return bool(record.width) and rasters.is_tiff(Path(record.path)) and gigapixel.is_gigapixel(
        record.height, record.width)


def store_path(project: Project, record: ImageRecord | str) -> Path:
    return project.tiled_mask_path(_record(project, record))


def mask_store(project: Project, record: ImageRecord | str) -> tiled_mask.TiledMaskStore:
    """The image's chunk store: as saved (its own fill value), or new, unlabelled."""
    record = _record(project, record)
    if has_tiled_mask(project, record):
        return tiled_mask.TiledMaskStore.open(store_path(project, record))
    return tiled_mask.TiledMaskStore(store_path(project, record), (record.height, record.width),
                                     fill=project.classes.unlabeled_id)


def has_tiled_mask(project: Project, record: ImageRecord | str) -> bool:
    return (store_path(project, record) / ".zarray").is_file()


def open_image(project: Project, record: ImageRecord | str, progress: gigapixel.ProgressFn | None = None,
               cancelled: gigapixel.CancelCheck | None = None) -> gigapixel.GigapixelImage:
    """The image for region reads, through the project's display mapping (if any).

    The first open of a file without a pyramid builds one into the cache: `progress` hears
    the fraction done and `cancelled` can stop it (gigapixel.PyramidBuildCancelled)."""
    record = _record(project, record)
    image = gigapixel.GigapixelImage(project.image_path(record), cache_dir=project.root / PYRAMID_CACHE,
                                     mapping=display.mapping_of(project.settings), progress=progress,
                                     cancelled=cancelled)
    if image.shape != (record.height, record.width):
        image.close()
        raise MaskError(f"{project.image_path(record)} is now {image.width}x{image.height} but the project "
                        f"recorded {record.width}x{record.height}; the file was replaced. Re-add the image")
    return image


def overview_raw(project: Project, record: ImageRecord | str) -> np.ndarray:
    """The image's smallest pyramid level in its own dtype (histograms, contrast limits)."""
    record = _record(project, record)
    return gigapixel.overview(project.image_path(record), cache_dir=project.root / PYRAMID_CACHE, raw=True)


def read_mask(project: Project, record: ImageRecord | str) -> np.ndarray:
    """The saved tiled mask, or a fresh unlabelled one; both allocated lazily."""
    record = _record(project, record)
    if has_tiled_mask(project, record):
        store = tiled_mask.TiledMaskStore.open(store_path(project, record))
        if store.shape != (record.height, record.width):
            raise MaskError(f"{store.path}: the tiled mask is {store.shape[1]}x{store.shape[0]} but its "
                            f"image is {record.width}x{record.height}; delete the folder")
        mask = store.read()
        _check_chunks(project, store, mask, store.stored_keys())
        return mask
    return tiled_mask.allocate(record.height, record.width, fill=project.classes.unlabeled_id)


def _check_chunks(project: Project, store: tiled_mask.TiledMaskStore, mask: np.ndarray,
                  keys: Iterable[tuple[int, int]]) -> None:
    """Class ids of the stored chunks only (reading the rest would touch the whole mask)."""
    c = store.chunk
    for ky, kx in keys:
        imageio.check_mask_values(mask[ky * c:(ky + 1) * c, kx * c:(kx + 1) * c], project.classes,
                                  source=f"{store.path} chunk {ky}.{kx}")


def save_chunks(project: Project, record: ImageRecord | str, mask: np.ndarray,
                keys: Iterable[tuple[int, int]]) -> int:
    """Write the given chunks of an open gigapixel mask (checked first); files written."""
    record = _record(project, record)
    keys = sorted(set(keys))
    if not project.root.is_dir():  # never recreate a vanished project (an unmounted drive)
        raise StorageError(f"{project.root}: the project folder is gone (an unmounted drive?); "
                           "nothing was saved. Reconnect it and save again")
    store = mask_store(project, record)
    _check_chunks(project, store, mask, keys)
    return store.write(mask, keys)


def is_unlabelled(project: Project, record: ImageRecord | str) -> bool:
    """No chunk of the saved mask holds a label (chunks without a file hold none)."""
    record = _record(project, record)
    if not has_tiled_mask(project, record):
        return True
    store = tiled_mask.TiledMaskStore.open(store_path(project, record))
    unlabeled = project.classes.unlabeled_id
    return all(not (store.read_region(store.chunk_box(key)) != unlabeled).any() for key in store.stored_keys())


def adopt_prediction(project: Project, record: ImageRecord | str, source: Path) -> int | None:
    """Make a predicted chunk store (class ids of this project) the image's mask: the chunk
    files are copied beside the masks and the folder moved into place in one rename, so a
    crash leaves either no mask or the whole prediction. Chunks written; None, and nothing
    written, when the mask holds labels (pre-labels never overwrite anyone's work)."""
    record = _record(project, record)
    predicted = tiled_mask.TiledMaskStore.open(source)
    if predicted.shape != (record.height, record.width):
        raise MaskError(f"{source}: the prediction is {predicted.shape[1]}x{predicted.shape[0]} but "
                        f"{record.id} is {record.width}x{record.height}; predict it again")
    if not is_unlabelled(project, record):
        return None
    target = store_path(project, record)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        copy = tiled_mask.TiledMaskStore(staging, predicted.shape, fill=predicted.fill, chunk=predicted.chunk)
        written = 0
        for key in predicted.stored_keys():
            box = predicted.chunk_box(key)
            if not box.empty:
                written += copy.write_region(box.y0, box.x0, predicted.read_region(box))
        copy.ensure_header()
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written


__all__ = ["adopt_prediction", "has_tiled_mask", "is_unlabelled", "is_gigapixel_record", "mask_store", "open_image", "overview_raw", "read_mask",
           "save_chunks", "store_path"]
