"""Reading an image and its mask for editing, without Qt: which loads go to a worker
thread, which load is still wanted, and salvaging a saved mask that is unreadable, of the
wrong size or holds unknown class ids (the image still opens; a note says what happened).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segstudio.core import gigapixel_project, imageio
from segstudio.core.errors import MaskError, SegstudioError
from segstudio.core.gigapixel import CancelCheck, GigapixelImage, ProgressFn
from segstudio.core.project import ImageRecord, Project

BACKGROUND_PIXELS = 12_000_000  # images above this size load on a worker thread


@dataclass(frozen=True)
class LoadedImage:
    """An image and its mask read from disk, plus what was wrong with the saved mask."""

    image_id: str
    image: np.ndarray | GigapixelImage  # a gigapixel image is read by tiles
    mask: np.ndarray
    note: str = ""
    mask_rejected: bool = False


def loads_in_background(record: ImageRecord, threshold: int = BACKGROUND_PIXELS) -> bool:
    """Whether reading this image would stall the UI long enough to need a worker thread."""
    return record.width * record.height > threshold


def load_image(project: Project, image_id: str, progress: ProgressFn | None = None,
               cancelled: CancelCheck | None = None) -> LoadedImage:
    """Read an image and its mask (thread-safe: reads files, changes nothing but caches).

    Raises MaskError when the image file was replaced by one of another size; a bad saved
    mask is salvaged instead (`mask_rejected`, with a note). A gigapixel image opened for
    the first time may build its pyramid: `progress(fraction)` hears how far that is and
    `cancelled()` can stop it (gigapixel.PyramidBuildCancelled; opening again resumes).
    """
    record = project.image(image_id)
    if gigapixel_project.is_gigapixel_record(project, record):
        # Read by tiles; its mask is a chunk store. A bad one is an error, not salvaged.
        image = gigapixel_project.open_image(project, record, progress=progress, cancelled=cancelled)
        try:
            return LoadedImage(image_id, image, gigapixel_project.read_mask(project, record))
        except BaseException:
            image.close()
            raise
    image = project.read_image(record)
    height, width = image.shape[:2]
    if record.width and (width, height) != (record.width, record.height):
        raise MaskError(
            f"{project.image_path(record)} is now {width}x{height} but the project "
            f"recorded {record.width}x{record.height}; the file was replaced. Re-add the image"
        )
    try:
        mask = project.read_mask(record)
        if mask is None:
            mask = project.blank_mask(record)
        return LoadedImage(image_id, image, mask)
    except SegstudioError as exc:
        classes = project.classes
        mask, note = salvage_mask(project.mask_path(record), (height, width), classes.valid_lut(),
                                  classes.unlabeled_id, str(exc))
        return LoadedImage(image_id, image, mask, note, mask_rejected=True)


def salvage_mask(path: Path, shape: tuple[int, int], valid: np.ndarray, unlabeled: int,
                 problem: str) -> tuple[np.ndarray, str]:
    """What can be kept of the mask at `path`: its known class ids if it has the right
    size (unknown ones become `unlabeled`), else a blank mask; and a note saying so."""
    kept = f"; the file is kept as {path.name}.rejected when you save"
    try:
        data, mode = imageio.read_mask_array(path)
    except SegstudioError:
        return np.full(shape, unlabeled, np.uint8), f"{problem}. Opened a blank mask{kept}"
    if mode == "RGB" or data.shape != shape:
        return np.full(shape, unlabeled, np.uint8), f"{problem}. Opened a blank mask{kept}"
    bad = ~valid[data]
    salvaged = np.where(bad, np.uint8(unlabeled), data).astype(np.uint8)
    return salvaged, f"{problem}. {int(bad.sum())} pixels are shown as unlabelled{kept}"


def keep_rejected(path: Path) -> Path | None:
    """Copy a rejected mask file aside (NAME.rejected, or NAME.<time>.rejected if that
    exists) before it is overwritten; None when there is no file."""
    if not path.is_file():
        return None
    target = path.with_name(path.name + ".rejected")
    if target.exists():
        target = path.with_name(f"{path.name}.{int(time.time())}.rejected")
    shutil.copy2(path, target)
    return target


class LoadRequests:
    """The image the user asked for last: a slower load that arrives after a later
    choice is dropped, never shown."""

    def __init__(self) -> None:
        self.pending: str | None = None

    def want(self, image_id: str) -> None:
        self.pending = image_id

    def forget(self) -> None:
        self.pending = None

    def arrived(self, image_id: str) -> bool:
        """A load of `image_id` finished: True if it is still the one wanted (then it is
        no longer pending)."""
        if image_id != self.pending:
            return False
        self.pending = None
        return True
