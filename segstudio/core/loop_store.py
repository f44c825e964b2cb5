"""Where the loop keeps its results: a per-model prediction cache and the effort meter.

Predictions live in PROJECT/.cache/predictions/<model-hash>/<image-id>.{labels,maps}.png
(class ids; max prob, entropy, margin as 8-bit channels) plus scores.json, behind a small
in-memory LRU; a different model file has a different hash, so its predictions never mix
with another model's. The effort meter records, per image, how many pixels the user
changed after the model wrote into the mask, against the pixels labelled from scratch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from segstudio.core.atomic import atomic_write_bytes, atomic_write_json
from segstudio.core.loop import ImageScore, Prediction, corrected_pixels

CACHE_DIR = ".cache"
MEMORY_ITEMS = 6


def model_hash(path: str | os.PathLike[str]) -> str:
    """A short content hash of a model file, or of every file in a model folder."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _safe_name(image_id: str) -> str:
    # image ids may hold characters a file system dislikes; keep them readable when possible
    if all(c.isalnum() or c in "-_.~" for c in image_id) and not image_id.startswith("."):
        return image_id
    return "id-" + hashlib.sha1(image_id.encode()).hexdigest()[:20]


def _write_png(target: Path, array: np.ndarray) -> None:
    """A fast-compressed PNG (cheap to write and read back), written atomically."""
    ok, data = cv2.imencode(".png", np.ascontiguousarray(array), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OSError(f"cannot encode {target.name} as PNG")
    atomic_write_bytes(target, data.tobytes())


class PredictionCache:
    """Predictions of one model for one project: memory LRU in front of PNG files.

    Thread-safe, because the predict worker stores while the UI thread reads.
    """

    def __init__(self, project_root: str | os.PathLike[str], model_key: str,
                 memory_items: int = MEMORY_ITEMS) -> None:
        self.model_key = model_key
        self.folder = Path(project_root) / CACHE_DIR / "predictions" / model_key
        self._memory: OrderedDict[str, Prediction] = OrderedDict()
        self._limit = max(1, memory_items)
        self._lock = threading.Lock()
        self._scores: dict[str, ImageScore] | None = None
        self._num_classes: int | None = None

    @property
    def scores_file(self) -> Path:
        return self.folder / "scores.json"

    def scores(self) -> dict[str, ImageScore]:
        """Uncertainty of every cached prediction (kept in scores.json, so a restart keeps
        the review queue without reading every prediction)."""
        with self._lock:
            if self._scores is None:
                self._scores = {}
                try:
                    data = json.loads(self.scores_file.read_text(encoding="utf-8"))
                    for image_id, item in data.items():
                        self._scores[image_id] = ImageScore(float(item["mean_entropy"]),
                                                            float(item["low_margin_share"]))
                except (OSError, ValueError, KeyError, TypeError, AttributeError):
                    pass
            return dict(self._scores)

    def path(self, image_id: str, suffix: str = ".labels.png") -> Path:
        return self.folder / f"{_safe_name(image_id)}{suffix}"

    def _read_meta(self) -> int | None:
        if self._num_classes is None:
            try:
                data = json.loads((self.folder / "meta.json").read_text(encoding="utf-8"))
                self._num_classes = int(data["num_classes"])
            except (OSError, ValueError, KeyError, TypeError):
                return None
        return self._num_classes

    def put(self, image_id: str, prediction: Prediction) -> None:
        """Store a prediction; maps are kept as uint8 (PNG on disk: fast to write and read)."""
        score = prediction.score()  # from the full-precision maps
        compact = prediction.compact()
        self.folder.mkdir(parents=True, exist_ok=True)
        maps = np.dstack([compact.max_prob, compact.entropy, compact.margin])
        for suffix, array in ((".maps.png", maps), (".labels.png", compact.labels)):
            _write_png(self.path(image_id, suffix), array)
        self._write_meta(compact.num_classes)
        self._remember(image_id, compact)
        self._set_score(image_id, score)

    # -- gigapixel images: labels as a chunk store, the score alone in scores.json ----------
    def tiled_path(self, image_id: str) -> Path:
        """Where a gigapixel image's predicted class ids go (a TiledMaskStore folder)."""
        return self.path(image_id, ".labels.zarr")

    def begin_tiled(self, image_id: str) -> Path:
        """Start a block-by-block prediction: any earlier one of this image is gone first,
        so a run stopped half-way is never taken for a finished one."""
        folder = self.tiled_path(image_id)
        self.path(image_id, ".tiled.json").unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        return folder

    def put_tiled(self, image_id: str, score: ImageScore, blocks: int) -> None:
        """A gigapixel prediction finished: its score joins the review queue."""
        atomic_write_json(self.path(image_id, ".tiled.json"), {"blocks": blocks, **asdict(score)})
        self._set_score(image_id, score)

    def _set_score(self, image_id: str, score: ImageScore) -> None:
        scores = self.scores()
        scores[image_id] = score
        with self._lock:
            self._scores = scores
        atomic_write_json(self.scores_file, {key: asdict(value) for key, value in scores.items()})

    def has_tiled(self, image_id: str) -> bool:
        """A finished block-by-block prediction of this image is stored."""
        return self.path(image_id, ".tiled.json").is_file() and (self.tiled_path(image_id) / ".zarray").is_file()

    def _write_meta(self, num_classes: int) -> None:
        if self._num_classes != num_classes:
            self._num_classes = num_classes
            atomic_write_json(self.folder / "meta.json", {"num_classes": num_classes})

    def _remember(self, image_id: str, prediction: Prediction) -> None:
        with self._lock:
            self._memory[image_id] = prediction
            self._memory.move_to_end(image_id)
            while len(self._memory) > self._limit:
                self._memory.popitem(last=False)

    def get(self, image_id: str) -> Prediction | None:
        with self._lock:
            hit = self._memory.get(image_id)
            if hit is not None:
                self._memory.move_to_end(image_id)
                return hit
        num_classes = self._read_meta()
        labels_path, maps_path = self.path(image_id), self.path(image_id, ".maps.png")
        if num_classes is None or not (labels_path.is_file() and maps_path.is_file()):
            return None
        labels = cv2.imread(str(labels_path), cv2.IMREAD_UNCHANGED)
        maps = cv2.imread(str(maps_path), cv2.IMREAD_UNCHANGED)
        if (labels is None or maps is None or labels.ndim != 2 or maps.ndim != 3
                or maps.shape[:2] != labels.shape or labels.dtype != np.uint8):
            return None  # a half-written or foreign file: predict again
        prediction = Prediction(labels, np.ascontiguousarray(maps[..., 0]), np.ascontiguousarray(maps[..., 1]),
                                np.ascontiguousarray(maps[..., 2]), num_classes)
        self._remember(image_id, prediction)
        return prediction

    def has(self, image_id: str) -> bool:
        with self._lock:
            if image_id in self._memory:
                return True
        return self.path(image_id).is_file() and self.path(image_id, ".maps.png").is_file()

    def drop(self, image_id: str) -> None:
        with self._lock:
            self._memory.pop(image_id, None)
            if self._scores is not None:
                self._scores.pop(image_id, None)
        self.path(image_id).unlink(missing_ok=True)
        self.path(image_id, ".maps.png").unlink(missing_ok=True)
        self.path(image_id, ".tiled.json").unlink(missing_ok=True)
        shutil.rmtree(self.tiled_path(image_id), ignore_errors=True)

    def clear(self) -> None:
        with self._lock:
            self._memory.clear()
            self._scores = {}
        shutil.rmtree(self.folder, ignore_errors=True)


def drop_other_models(project_root: str | os.PathLike[str], keep: str) -> int:
    """Delete cached predictions of every model but `keep`; returns how many folders went."""
    base = Path(project_root) / CACHE_DIR / "predictions"
    gone = 0
    if base.is_dir():
        for folder in base.iterdir():
            if folder.is_dir() and folder.name != keep:
                shutil.rmtree(folder, ignore_errors=True)
                gone += 1
    return gone


# -- effort meter ---------------------------------------------------------------------------
@dataclass(frozen=True)
class EffortEntry:
    """One image: `source` is "model" (pre-labelled or accepted) or "scratch".

    `changed` counts pixels the user changed after the model wrote; `labelled` the labelled
    pixels at the last save, so for scratch images all of them were the user's work.
    """

    source: str
    labelled: int
    changed: int
    total: int

    @property
    def hand_pixels(self) -> int:
        return self.changed if self.source == "model" else self.labelled

    @property
    def saved_pixels(self) -> int:
        return max(0, self.labelled - self.changed) if self.source == "model" else 0


@dataclass(frozen=True)
class EffortSummary:
    model_images: int
    scratch_images: int
    labelled: int
    hand_pixels: int
    saved_pixels: int

    @property
    def saved_share(self) -> float:
        """Share of the labelled pixels the model provided and the user kept."""
        return self.saved_pixels / self.labelled if self.labelled else 0.0


class EffortTracker:
    """Counts hand work per image: pixels corrected since the model's last write, plus hand
    changes made between earlier model writes (so several accepts still count truly).
    A corrected pixel is `core.loop.corrected_mask`'s: erasing to unlabelled is not one.

    The mask right after a model write is the baseline (kept as a PNG); saving compares the
    saved mask with it. Entries persist in PROJECT/.cache/effort.json.
    """

    def __init__(self, project_root: str | os.PathLike[str], unlabeled_id: int) -> None:
        self.folder = Path(project_root) / CACHE_DIR / "effort"
        self.file = Path(project_root) / CACHE_DIR / "effort.json"
        self.unlabeled_id = int(unlabeled_id)
        self.entries: dict[str, EffortEntry] = {}
        self._carried: dict[str, int] = {}
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        for image_id, item in data.get("images", {}).items():
            try:
                self._carried[image_id] = int(item.get("carried", 0))
                if "source" in item:
                    self.entries[image_id] = EffortEntry(str(item["source"]), int(item["labelled"]),
                                                         int(item["changed"]), int(item["total"]))
            except (KeyError, TypeError, ValueError, AttributeError):
                continue

    def _save(self) -> None:
        images: dict[str, dict[str, object]] = {}
        for image_id, carried in self._carried.items():
            images[image_id] = {"carried": carried}
        for image_id, entry in self.entries.items():
            images.setdefault(image_id, {}).update(asdict(entry))
        self.file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.file, {"version": 1, "images": images})

    def _baseline_path(self, image_id: str) -> Path:
        return self.folder / f"{_safe_name(image_id)}.png"

    def baseline(self, image_id: str) -> np.ndarray | None:
        path = self._baseline_path(image_id)
        if not path.is_file():
            return None
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        return mask if mask is not None and mask.ndim == 2 else None

    def model_wrote(self, image_id: str, before: np.ndarray, after: np.ndarray) -> None:
        """The model just changed the mask from `before` to `after` (pre-label or accept).

        The image is counted at its next `record` (the user's save or confirmation), so
        unchecked pre-labels never count as pixels the user kept."""
        old = self.baseline(image_id)
        if old is not None and old.shape == before.shape:
            self._carried[image_id] = self._carried.get(image_id, 0) + corrected_pixels(old, before, self.unlabeled_id)
        elif old is None:
            # hand labels made before the model's first write are scratch work too
            self._carried[image_id] = int(np.count_nonzero(np.asarray(before) != self.unlabeled_id))
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_png(self._baseline_path(image_id), np.asarray(after, dtype=np.uint8))
        self._save()  # the carried count; the entry itself waits for the user's save

    def record(self, image_id: str, mask: np.ndarray) -> EffortEntry:
        """Update the entry for a (saved) mask and persist the meter."""
        mask = np.asarray(mask)
        labelled = int(np.count_nonzero(mask != self.unlabeled_id))
        base = self.baseline(image_id)
        if base is not None and base.shape == mask.shape:
            changed = self._carried.get(image_id, 0) + corrected_pixels(base, mask, self.unlabeled_id)
            entry = EffortEntry("model", labelled, changed, int(mask.size))
        else:
            entry = EffortEntry("scratch", labelled, labelled, int(mask.size))
        self.entries[image_id] = entry
        self._save()
        return entry

    def forget(self, image_id: str) -> None:
        self.entries.pop(image_id, None)
        self._carried.pop(image_id, None)
        self._baseline_path(image_id).unlink(missing_ok=True)
        self._save()

    def summary(self) -> EffortSummary:
        entries = list(self.entries.values())
        return EffortSummary(
            model_images=sum(1 for e in entries if e.source == "model"),
            scratch_images=sum(1 for e in entries if e.source == "scratch"),
            labelled=sum(e.labelled for e in entries),
            hand_pixels=sum(e.hand_pixels for e in entries),
            saved_pixels=sum(e.saved_pixels for e in entries),
        )
