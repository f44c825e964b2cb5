"""The training data pipeline: which images, how class ids map to model outputs, datasets
with augmentation and an in-memory cache, loaders and class weights.

Images with status labeled or reviewed train; the val split validates, or, when a project
has none, a deterministic 15% holdout of the training images (chosen by a hash of the
image id, so adding images never reshuffles earlier choices). Images of the `unassigned`
split train too: a user who never assigned splits still gets a model.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from segstudio.core import gigapixel_project
from segstudio.core.classes import ClassTable, Color
from segstudio.core.errors import TrainingError
from segstudio.core.project import ImageRecord, Project
from segstudio.core.vocabulary import TRAIN_SPLITS, TRAINING_STATUSES
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
    records, missing, gigapixel = [], [], []
    for split in splits:
        for rec in project.images_where(split=split, statuses=TRAINING_STATUSES):
            if gigapixel_project.is_gigapixel_record(project, rec):
                gigapixel.append(rec)  # would be decoded whole below: not trained on yet
                continue
            (records if project.has_mask(rec) else missing).append(rec)
    notes = []
    if gigapixel:
        notes.append(
            f"{len(gigapixel)} gigapixel image(s) are left out (e.g. {gigapixel[0].id}): training "
            "on random crops of tiled images is not built yet; label crops saved as ordinary images"
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
    """(image RGB uint8, mask in model ids) pairs, decoded once into memory when they fit."""

    def __init__(self, project: Project, records: Sequence[ImageRecord], mapping: ClassMapping,
                 cache_mb: float = DEFAULT_CACHE_MB, threads: int = 4) -> None:
        self.project = project
        self.records = list(records)
        self.lut = mapping.to_model_lut()
        self.sizes = [self._size(rec) for rec in self.records]
        need_mb = sum(h * w * 4 for h, w in self.sizes) / 2**20
        self.cached = need_mb <= cache_mb
        self._cache: list[tuple[np.ndarray, np.ndarray]] | None = None
        if self.cached and self.records:
            with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:  # cv2 decodes without the GIL
                self._cache = list(pool.map(self._read, range(len(self.records))))

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

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is not None:
            return self._cache[index]
        return self._read(index)

    def channel_statistics(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per band mean and standard deviation over every pixel of these images (float64
        sums), for the fixed normalisation of a model over non-photo bands."""
        total, square, count = None, None, 0
        for index in range(len(self)):
            image = self[index][0]
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
        """Per class: pixel count, and pixel count of the images where the class occurs."""
        counts = np.zeros(num_classes, dtype=np.int64)
        present_total = np.zeros(num_classes, dtype=np.int64)
        for index in range(len(self)):
            mask = self[index][1]
            hist = np.bincount(mask.ravel(), minlength=256)[:num_classes]
            counts += hist
            present_total[hist > 0] += int(hist.sum())
        return counts, present_total


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
