"""The training data pipeline: which images, how class ids map to model outputs, datasets
with augmentation and an in-memory cache, loaders and class weights.

Images with status labeled or reviewed train; the val split validates, or, when a project
has none, a deterministic 15% holdout of the training images (chosen by a hash of the
image id, so adding images never reshuffles earlier choices). Images of the `unassigned`
split train too: a user who never assigned splits still gets a model. A gigapixel image
trains and validates on crops read box by box, never decoded whole (engine/gigapixel_data.py).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from segstudio.core import gigapixel_project
from segstudio.core.classes import ClassTable, Color
from segstudio.core.errors import SegstudioError, TrainingError
from segstudio.core.project import ImageRecord, Project
from segstudio.core.region import Region
from segstudio.core.vocabulary import TRAIN_SPLITS, TRAINING_STATUSES
from segstudio.engine import gigapixel_data
from segstudio.engine.augment import pad_to_multiple
from segstudio.engine.metrics import IGNORE_INDEX

HOLDOUT_FRACTION = 0.15
DEFAULT_CACHE_MB = 3072


# -- class ids --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassMapping:
    """Project class ids <-> model output channels: the one place that maps them.

    Channel i predicts trainable class `ids[i]`; the ignore class and any id that names no
    trainable class become IGNORE_INDEX (255) on the model side.
    """

    ids: tuple[int, ...]
    names: tuple[str, ...]
    colors: tuple[Color, ...]
    unlabeled_id: int

    @classmethod
    def from_classes(cls, classes: ClassTable) -> ClassMapping:
        trainable = classes.trainable
        if not trainable:
            raise TrainingError("the project has no trainable classes; add at least one class")
        if len(trainable) >= IGNORE_INDEX:
            raise TrainingError(f"{len(trainable)} trainable classes; at most {IGNORE_INDEX - 1} are supported")
        return cls(
            ids=tuple(c.id for c in trainable),
            names=tuple(c.name for c in trainable),
            colors=tuple(tuple(int(v) for v in c.color) for c in trainable),  # type: ignore[misc]
            unlabeled_id=classes.unlabeled_id,
        )

    @property
    def num_classes(self) -> int:
        return len(self.ids)

    def to_model_lut(self) -> np.ndarray:
        lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        lut[list(self.ids)] = np.arange(self.num_classes, dtype=np.uint8)
        return lut

    def to_project_lut(self) -> np.ndarray:
        lut = np.full(256, self.unlabeled_id, dtype=np.uint8)
        lut[: self.num_classes] = np.asarray(self.ids, dtype=np.uint8)
        return lut

    def encode(self, mask: np.ndarray) -> np.ndarray:
        """Project ids -> model ids (ignore 255)."""
        return self.to_model_lut()[mask]

    def decode(self, prediction: np.ndarray) -> np.ndarray:
        """Model ids -> project ids (255 -> the project's unlabeled id)."""
        return self.to_project_lut()[prediction]

    def color_lut(self) -> np.ndarray:
        """Model id -> RGB, ignore black: for previews."""
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[: self.num_classes] = np.asarray(self.colors, dtype=np.uint8).reshape(-1, 3)
        return lut


# -- which images -----------------------------------------------------------------------------
def _hash_key(image_id: str) -> str:
    return hashlib.sha1(image_id.encode("utf-8")).hexdigest()


def holdout(records: Sequence[ImageRecord], fraction: float = HOLDOUT_FRACTION
            ) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """Split off a deterministic `fraction` (at least one image when there are two or more)."""
    if len(records) < 2:
        return list(records), []
    count = min(len(records) - 1, max(1, round(len(records) * fraction)))
    chosen = {rec.id for rec in sorted(records, key=lambda r: _hash_key(r.id))[:count]}
    return [r for r in records if r.id not in chosen], [r for r in records if r.id in chosen]


@dataclass(frozen=True)
class TrainData:
    """What one run trains and validates on (a snapshot of the project's lists)."""

    project: Project
    mapping: ClassMapping
    train: tuple[ImageRecord, ...]
    val: tuple[ImageRecord, ...]
    val_source: str  # "val" or "holdout"
    warnings: tuple[str, ...] = field(default=())


def _labelled(project: Project, splits: Sequence[str]) -> tuple[list[ImageRecord], list[str]]:
    records, missing, unlabelled = [], [], []
    for split in splits:
        for rec in project.images_where(split=split, statuses=TRAINING_STATUSES):
            if gigapixel_project.is_gigapixel_record(project, rec):
                # sampled by crops (engine/gigapixel_data.py): only where its mask has chunks
                if not gigapixel_project.has_tiled_mask(project, rec):
                    missing.append(rec)
                elif not gigapixel_data.labelled_keys(project, rec):
                    unlabelled.append(rec)
                else:
                    records.append(rec)
                continue
            (records if project.has_mask(rec) else missing).append(rec)
    notes = []
    if unlabelled:
        notes.append(
            f"{len(unlabelled)} gigapixel image(s) marked labelled have no labelled pixels and are left "
            f"out (e.g. {unlabelled[0].id}); paint some labels on them or set their status back"
        )
    if missing:
        notes.append(
            f"{len(missing)} image(s) marked labelled have no mask file and are left out "
            f"(e.g. {missing[0].id}); label them again or set their status back"
        )
    return sorted(records, key=lambda r: r.id), notes


def prepare_data(project: Project, mapping: ClassMapping | None = None) -> TrainData:
    """Pick the training and validation images of `project`."""
    mapping = mapping or ClassMapping.from_classes(project.classes)
    train, notes = _labelled(project, TRAIN_SPLITS)
    val, val_notes = _labelled(project, ("val",))
    notes += val_notes
    source = "val"
    if not val:
        train, val = holdout(train)
        source = "holdout"
    if not train:
        raise TrainingError(
            f"project {project.name} has no labelled training images; label some images "
            "(status labeled or reviewed) in the train split"
        )
    if not val:
        raise TrainingError("one labelled image is not enough to train and validate; label at least two")
    return TrainData(project, mapping, tuple(train), tuple(val), source, tuple(notes))


def eval_records(project: Project, split: str) -> list[ImageRecord]:
    """The images `segstudio eval` scores: the split's labelled images, or for `val` on a
    project without a val split the same holdout the trainer used."""
    if split == "val":
        val, _ = _labelled(project, ("val",))
        if val:
            return val
        train, _ = _labelled(project, TRAIN_SPLITS)
        return holdout(train)[1]
    records, _ = _labelled(project, (split,))
    return records


# -- decoded samples --------------------------------------------------------------------------
class ImageStore:
    """(image, mask in model ids) samples: an ordinary image is one sample, decoded once into
    memory when the images fit `cache_mb` (uint8 RGB for a photo project; the model's bands
    as float32 raw values otherwise).

    A gigapixel image is never decoded whole and never cached: it gives crops read box by
    box (engine/gigapixel_data.py). With `crops="random"` (training) it is `epoch_crops`
    samples, each a window of `window` (h, w) drawn anew on every read, mostly over its
    labelled chunks; with "fixed" (validation, eval) the boxes of its labelled chunks, the
    same every time. `sizes` are the samples' sizes, `extents` the images' own.
    """

    def __init__(self, project: Project, records: Sequence[ImageRecord], mapping: ClassMapping,
                 cache_mb: float = DEFAULT_CACHE_MB, threads: int = 4, *, crops: str = "fixed",
                 window: tuple[int, int] = (512, 512)) -> None:
        if crops not in ("fixed", "random"):
            raise ValueError(f"crops must be 'fixed' or 'random', not {crops!r}")
        self.project = project
        self.records = list(records)
        self.lut = mapping.to_model_lut()
        self.crops = crops
        self.window = (int(window[0]), int(window[1]))  # the trainer sets it to its crop
        self._gigapixel = {index: gigapixel_data.GigapixelSource(project, rec, self.lut)
                           for index, rec in enumerate(self.records)
                           if gigapixel_project.is_gigapixel_record(project, rec)}
        self._images = gigapixel_data.OpenImages(project)
        self.extents = [self._size(rec) for rec in self.records]
        # (record index, fixed box or None: the whole image, or a random window)
        self.items: list[tuple[int, Region | None]] = []
        for index in range(len(self.records)):
            source = self._gigapixel.get(index)
            if source is None:
                self.items.append((index, None))
            elif crops == "random":
                self.items += [(index, None)] * source.epoch_crops()
            else:
                self.items += [(index, box) for box in source.fixed_boxes()]
        ordinary = [i for i in range(len(self.records)) if i not in self._gigapixel]
        need_mb = sum(self.extents[i][0] * self.extents[i][1] * 4 for i in ordinary) / 2**20
        self.cached = need_mb <= cache_mb
        self._cache: list[tuple[np.ndarray, np.ndarray] | None] | None = None
        if self.cached and ordinary:
            self._cache = [None] * len(self.records)
            with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:  # cv2 decodes without the GIL
                for index, pair in zip(ordinary, pool.map(self._read, ordinary)):
                    self._cache[index] = pair

    def _size(self, rec: ImageRecord) -> tuple[int, int]:
        if rec.width > 0 and rec.height > 0:
            return rec.height, rec.width
        h, w = self.project.read_image(rec).shape[:2]
        return h, w

    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rec = self.records[index]
        # uint8 RGB for a photo project; the model's bands as float32 raw values otherwise
        image = self.project.read_model_input(rec)
        mask = self.project.read_mask(rec)
        if mask is None:
            raise TrainingError(f"the mask of image {rec.id} disappeared during training; label it again")
        if mask.shape != image.shape[:2]:
            raise TrainingError(f"image {rec.id} is {image.shape[1]}x{image.shape[0]} but its mask is "
                                f"{mask.shape[1]}x{mask.shape[0]}; fix or delete the mask")
        return image, self.lut[mask]

    def _whole(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """An ordinary image by record index, from the cache when it is there."""
        if self._cache is not None:
            pair = self._cache[index]
            if pair is not None:
                return pair
        return self._read(index)

    def _crop(self, index: int, box: Region) -> tuple[np.ndarray, np.ndarray]:
        source = self._gigapixel[index]
        try:
            return source.read(self._images.get(source.record), box)
        except SegstudioError as exc:
            raise TrainingError(f"image {source.record.id} could not be read at rows {box.y0}-{box.y1}, "
                                f"columns {box.x0}-{box.x1} ({exc}); restore the file, or set the image's "
                                "status back to leave it out of training") from exc

    @property
    def sizes(self) -> list[tuple[int, int]]:
        out = []
        for index, box in self.items:
            if box is not None:
                out.append(box.shape)
            elif index in self._gigapixel:
                out.append(self._gigapixel[index].window(self.window))
            else:
                out.append(self.extents[index])
        return out

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        record_index, box = self.items[index]
        source = self._gigapixel.get(record_index)
        if source is None:
            return self._whole(record_index)
        return self._crop(record_index, box if box is not None else source.random_box(self.window))

    def _statistics_images(self) -> Iterator[np.ndarray]:
        """Every ordinary image whole, and each gigapixel image's fixed crops (bounded)."""
        for index in range(len(self.records)):
            source = self._gigapixel.get(index)
            if source is None:
                yield self._whole(index)[0]
            else:
                for box in source.fixed_boxes():
                    yield self._crop(index, box)[0]

    def channel_statistics(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per band mean and standard deviation over every pixel of these images (a gigapixel
        image: over its fixed crops) with float64 sums, for the fixed normalisation of a model
        over non-photo bands."""
        total, square, count = None, None, 0
        for image in self._statistics_images():
            bands = image.reshape(-1, image.shape[2] if image.ndim == 3 else 1).astype(np.float64)
            total = bands.sum(axis=0) + (0.0 if total is None else total)
            square = (bands * bands).sum(axis=0) + (0.0 if square is None else square)
            count += bands.shape[0]
        if total is None or square is None or count == 0:
            raise TrainingError("no training pixels to compute the channel statistics from")
        mean = total / count
        std = np.sqrt(np.maximum(square / count - mean * mean, 0.0))
        std = np.where(std > 1e-12 * np.maximum(np.abs(mean), 1.0), std, 1.0)
        return tuple(float(v) for v in mean), tuple(float(v) for v in std)

    def pixel_counts(self, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """Per class: pixel count, and pixel count of the images where the class occurs (a
        gigapixel image counted from its mask's stored chunks, never read whole)."""
        counts = np.zeros(num_classes, dtype=np.int64)
        present_total = np.zeros(num_classes, dtype=np.int64)
        for index in range(len(self.records)):
            source = self._gigapixel.get(index)
            if source is None:
                mask = self._whole(index)[1]
                hist = np.bincount(mask.ravel(), minlength=256)[:num_classes]
            else:
                hist = source.class_counts(num_classes)
            counts += hist
            present_total[hist > 0] += int(hist.sum())
        return counts, present_total

    def close(self) -> None:
        """Close the gigapixel files this process opened (they reopen on the next read)."""
        self._images.close()


def median_frequency_weights(store: ImageStore, num_classes: int) -> list[float]:
    """SegNet's median frequency balancing: freq(c) = pixels of c / pixels of the images
    holding c; weight(c) = median(freq) / freq(c). Absent classes get weight 0 (no pixels)."""
    counts, present_total = store.pixel_counts(num_classes)
    freq = np.where(present_total > 0, counts / np.maximum(present_total, 1), 0.0)
    present = freq[freq > 0]
    if present.size == 0:
        return [1.0] * num_classes
    median = float(np.median(present))
    return [float(median / f) if f > 0 else 0.0 for f in freq]


# -- datasets ---------------------------------------------------------------------------------
def to_tensors(image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 CHW image and uint8 HW mask: 4x less to copy than float; normalised on device.
    (Raw bands come as float32; OpenCV transforms drop a single band's axis: restored here.)"""
    if image.ndim == 2:
        image = image[:, :, None]
    return (torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            torch.from_numpy(np.ascontiguousarray(mask)))


class TrainDataset(Dataset):
    """Augmented random crops of the training images."""

    def __init__(self, store: ImageStore, transform: Callable[..., dict[str, Any]]) -> None:
        self.store = store
        self.transform = transform

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.store[index]
        out = self.transform(image=image, mask=mask)
        return to_tensors(out["image"], out["mask"])


class EvalDataset(Dataset):
    """Whole images padded bottom/right to a multiple of the model's divisor (no crop)."""

    def __init__(self, store: ImageStore, divisor: int) -> None:
        self.store = store
        self.divisor = divisor

    def __len__(self) -> int:
        return len(self.store)

    def padded_size(self, index: int) -> tuple[int, int]:
        h, w = self.store.sizes[index]
        return math.ceil(h / self.divisor) * self.divisor, math.ceil(w / self.divisor) * self.divisor

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.store[index]
        image, mask = pad_to_multiple(image, mask, self.divisor)
        assert mask is not None
        return to_tensors(image, mask)


class SizeGroupedBatches(Sampler[list[int]]):
    """Batches of images with equal padded size, in a fixed order: every image is scored at
    its own padded size, so metrics do not depend on the batch size."""

    def __init__(self, dataset: EvalDataset, batch_size: int, indices: Sequence[int] | None = None) -> None:
        groups: dict[tuple[int, int], list[int]] = {}
        for index in (range(len(dataset)) if indices is None else indices):
            groups.setdefault(dataset.padded_size(index), []).append(index)
        self.batches = [members[i:i + batch_size] for members in groups.values()
                        for i in range(0, len(members), batch_size)]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def crop_for(sizes: Sequence[tuple[int, int]], crop_size: int, divisor: int) -> tuple[int, int]:
    """The training crop (h, w): `crop_size` or the whole (padded) image when smaller,
    rounded down to the divisor."""
    max_h = max(h for h, _ in sizes)
    max_w = max(w for _, w in sizes)

    def fit(limit: int, extent: int) -> int:
        padded = math.ceil(extent / divisor) * divisor
        return max(divisor, (min(limit, padded) // divisor) * divisor)

    return fit(crop_size, max_h), fit(crop_size, max_w)


def _seed_worker(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    if info is None:
        return
    seed = info.seed % 2**32
    np.random.seed(seed)
    import random

    random.seed(seed)
    transform = getattr(info.dataset, "transform", None)
    if hasattr(transform, "set_random_seed"):
        transform.set_random_seed(seed)


def make_loader(dataset: Dataset, *, batch_size: int | None = None, shuffle: bool = False,
                drop_last: bool = False, workers: int = 0, pin_memory: bool = False,
                sampler: Sampler | None = None, batch_sampler: Sampler | None = None,
                generator: torch.Generator | None = None) -> DataLoader:
    """A loader; with workers they persist across epochs and prefetch ahead."""
    extra: dict[str, Any] = {}
    if workers > 0:
        extra.update(persistent_workers=True, prefetch_factor=4, worker_init_fn=_seed_worker)
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=workers,
                          pin_memory=pin_memory, **extra)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None,
                      sampler=sampler, drop_last=drop_last, num_workers=workers,
                      pin_memory=pin_memory, generator=generator, **extra)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (or float32 raw-valued) NCHW -> float32, divided by 255 then standardised per
    channel. A float batch is never changed in place: it may be a cached image's memory."""
    mean_t = torch.tensor(mean, device=images.device, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=images.device, dtype=torch.float32).view(1, -1, 1, 1)
    if images.dtype == torch.float32:
        return (images.div(255.0) - mean_t).div_(std_t)
    return (images.float().div_(255.0) - mean_t).div_(std_t)
