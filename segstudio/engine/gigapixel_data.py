"""Training and validation samples of gigapixel images, read box by box (issue 12, point 4).

A gigapixel image (core/gigapixel.py) is never decoded whole, and its mask is a chunk store
whose files are exactly the 512 x 512 chunks that hold labels (core/tiled_mask.py): a slide
is mostly unlabelled, so the stored chunk keys say where training should look.

- Training (`random_box`): each sample is a window of the training crop's size read from the
  file, drawn anew every time. 1 - RANDOM_SHARE of them hold a labelled pixel: a stored chunk
  is drawn, then a labelled pixel in it, then the window's offset uniformly among those that
  hold that pixel (a window always centred on labels would teach that labels sit in the
  middle); the rest lie anywhere in the image.
- An epoch takes `epoch_crops` samples of an image: one per labelled chunk (a 512 x 512
  labelled area is about one crop's worth), at least 1 and at most EPOCH_CROPS_MAX, so a small
  labelled patch trains as much as its area and a fully labelled slide does not turn an
  epoch into thousands of steps.
- Validation and `segstudio eval` (`fixed_boxes`): the boxes of the labelled chunks
  themselves, which hold every labelled pixel of the image exactly once; above
  FIXED_CROPS_MAX chunks an evenly spaced, fixed subset. The same boxes every epoch, so the
  curves stay comparable.
- Statistics: per-band mean and std over the fixed boxes (the pixels training looks at);
  class pixel counts from the stored chunks (every one up to COUNT_CHUNKS_MAX, else an
  evenly spaced subset scaled up), never from the whole mask.

Memory follows the window: a read decodes only the file tiles under it (plus the image's
bounded tile cache, core/gigapixel.CACHE_BYTES) and the mask chunks under it.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

import numpy as np

from segstudio.core import channels, gigapixel_project
from segstudio.core.errors import SegstudioError, TrainingError
from segstudio.core.gigapixel import GigapixelImage
from segstudio.core.project import ImageRecord, Project
from segstudio.core.region import Region
from segstudio.engine.metrics import IGNORE_INDEX

EPOCH_CROPS_MAX = 256
RANDOM_SHARE = 0.1
FIXED_CROPS_MAX = 64
COUNT_CHUNKS_MAX = 1024
OPEN_IMAGES = 4  # file handles (each with its tile cache) kept open per process


def labelled_keys(project: Project, record: ImageRecord) -> list[tuple[int, int]]:
    """The stored (labelled) chunks of the image's mask; [] when it has no tiled mask."""
    if not gigapixel_project.has_tiled_mask(project, record):
        return []
    store = gigapixel_project.mask_store(project, record)
    return [key for key in store.stored_keys() if not store.chunk_box(key).empty]


def _spread(items: list[Any], count: int) -> list[Any]:
    """At most `count` items evenly spaced over the list (all of them when it is shorter)."""
    if len(items) <= count:
        return list(items)
    return [items[(i * len(items)) // count] for i in range(count)]


class GigapixelSource:
    """One gigapixel training image: its labelled chunks, sample boxes and their pixels."""

    def __init__(self, project: Project, record: ImageRecord, lut: np.ndarray) -> None:
        self.project = project
        self.record = record
        self.lut = lut
        self.shape = (int(record.height), int(record.width))
        try:
            self.store = gigapixel_project.mask_store(project, record)
        except SegstudioError as exc:
            raise TrainingError(f"the tiled mask of image {record.id} cannot be read ({exc})") from exc
        if self.store.shape != self.shape:
            raise TrainingError(f"image {record.id} is {self.shape[1]}x{self.shape[0]} but its tiled mask is "
                                f"{self.store.shape[1]}x{self.store.shape[0]}; delete {self.store.path} "
                                "and label it again")
        self.keys = [key for key in self.store.stored_keys() if not self.chunk_box(key).empty]
        table = channels.table_of(project.settings)
        self.bands = table.model_indices if table is not None else None

    def chunk_box(self, key: tuple[int, int]) -> Region:
        return self.store.chunk_box(key)

    def epoch_crops(self) -> int:
        return min(EPOCH_CROPS_MAX, max(1, len(self.keys)))

    def fixed_boxes(self, limit: int = FIXED_CROPS_MAX) -> list[Region]:
        return [self.chunk_box(key) for key in _spread(self.keys, limit)]

    def window(self, size: tuple[int, int]) -> tuple[int, int]:
        return min(int(size[0]), self.shape[0]), min(int(size[1]), self.shape[1])

    def random_box(self, size: tuple[int, int], rng: Any = np.random) -> Region:
        """A training window of `size` (clipped to the image); `rng` draws like np.random
        (the default: the process's generator, seeded per loader worker)."""
        h, w = self.window(size)
        height, width = self.shape
        if self.keys and rng.random_sample() >= RANDOM_SHARE:
            y, x = self._labelled_pixel(self.keys[rng.randint(len(self.keys))], rng)
            y0 = rng.randint(max(0, y - h + 1), min(y, height - h) + 1)
            x0 = rng.randint(max(0, x - w + 1), min(x, width - w) + 1)
        else:
            y0, x0 = rng.randint(height - h + 1), rng.randint(width - w + 1)
        return Region(int(y0), int(x0), int(y0) + h, int(x0) + w)

    def _labelled_pixel(self, key: tuple[int, int], rng: Any) -> tuple[int, int]:
        """A pixel of a trainable class in the chunk (any pixel of it when it holds none)."""
        box = self.chunk_box(key)
        trainable = np.flatnonzero(self.lut[self.store.read_region(box)].ravel() != IGNORE_INDEX)
        if trainable.size:
            dy, dx = divmod(int(trainable[rng.randint(trainable.size)]), box.width)
        else:
            dy, dx = rng.randint(box.height), rng.randint(box.width)
        return box.y0 + dy, box.x0 + dx

    def read(self, image: GigapixelImage, box: Region) -> tuple[np.ndarray, np.ndarray]:
        """(model input, mask in model ids) of the box: the image as project.read_model_input
        gives an ordinary image (RGB8 through the display mapping, or the model's bands as
        float32 raw values), the mask from the chunks under the box."""
        if self.bands is None:
            pixels = image.read_region(0, box.y0, box.y1, box.x0, box.x1)
        else:
            pixels = channels.model_input(image.read_raw(0, box.y0, box.y1, box.x0, box.x1), self.bands)
        return pixels, self.lut[self.store.read_region(box)]

    def class_counts(self, num_classes: int) -> np.ndarray:
        """Pixels per model class over the image's labelled chunks (scaled up from an evenly
        spaced subset past COUNT_CHUNKS_MAX), plus the unstored area if its fill trains."""
        hist = np.zeros(256, dtype=np.int64)
        used = _spread(self.keys, COUNT_CHUNKS_MAX)
        for key in used:
            hist += np.bincount(self.lut[self.store.read_region(self.chunk_box(key))].ravel(), minlength=256)
        if used and len(used) < len(self.keys):
            hist = np.rint(hist * (len(self.keys) / len(used))).astype(np.int64)
        stored = sum(self.chunk_box(key).area for key in self.keys)
        hist[int(self.lut[self.store.fill])] += self.shape[0] * self.shape[1] - stored
        return hist[:num_classes]


class OpenImages:
    """GigapixelImage handles of this process, opened on first use, at most OPEN_IMAGES (the
    least recently used is closed). A forked loader worker sees the parent's pid and opens its
    own: inherited handles share their file offset with the parent's."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._pid = os.getpid()
        self._open: OrderedDict[str, GigapixelImage] = OrderedDict()

    def get(self, record: ImageRecord) -> GigapixelImage:
        if self._pid != os.getpid():
            self._pid, self._open = os.getpid(), OrderedDict()  # the parent's: leave them be
        image = self._open.get(record.id)
        if image is None:
            image = gigapixel_project.open_image(self.project, record)
            self._open[record.id] = image
            while len(self._open) > OPEN_IMAGES:
                self._open.popitem(last=False)[1].close()
        self._open.move_to_end(record.id)
        return image

    def close(self) -> None:
        if self._pid == os.getpid():
            for image in self._open.values():
                image.close()
        self._open = OrderedDict()


__all__ = ["COUNT_CHUNKS_MAX", "EPOCH_CROPS_MAX", "FIXED_CROPS_MAX", "GigapixelSource", "OpenImages",
           "RANDOM_SHARE", "labelled_keys"]
