"""What every exporter shares: choosing the images, split lists, copying images, the report."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from segstudio.core import imageio
from segstudio.core.atomic import atomic_write_json, atomic_write_text, atomic_write_with
from segstudio.core.classes import ClassTable
from segstudio.core.errors import ExportError, SegstudioError
from segstudio.core.exporters.tiled import left_out_reason, tiled_store, write_tiled_mask
from segstudio.core.progress import ProgressCallback
from segstudio.core.project import SPLITS, ImageRecord, Project, check_split, check_status
from segstudio.core.tiled_mask import TiledMaskStore
from segstudio.core.vocabulary import TRAINING_STATUSES

DEFAULT_STATUSES = TRAINING_STATUSES  # confirmed masks; add "predicted" to export proposals too
CLASSES_FILE = "classes.json"
# Writes one gigapixel image's mask from its chunk store (see ExportRun.masks).
TiledWriter = Callable[[ImageRecord, TiledMaskStore], None]


@dataclass(frozen=True)
class ExportReport:
    """What was written: image count, the output folder, and every image left out and why."""

    out: Path
    format: str
    images: int
    splits: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: tuple[str, ...] = ()  # exported, but worth knowing (masks without georeferencing)

    def lines(self) -> list[str]:
        per_split = ", ".join(f"{k} {v}" for k, v in self.splits.items() if v)
        out = [f"exported {self.images} images ({self.format}) to {self.out}" + (f" [{per_split}]" if per_split else "")]
        out.extend(f"note: {note}" for note in self.notes)
        if self.skipped:
            out.append(f"left out {len(self.skipped)} image(s):")
            out.extend(f"  {name}: {reason}" for name, reason in self.skipped)
        return out


@dataclass
class ExportRun:
    """One export in progress: the chosen images and the running tally."""

    project: Project
    out: Path
    format: str
    records: list[ImageRecord]
    progress: ProgressCallback | None = None
    done: list[ImageRecord] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def masks(self, need_image: bool = True, tiled: TiledWriter | None = None
              ) -> Iterator[tuple[ImageRecord, np.ndarray]]:
        """Each chosen image with its checked mask; a missing image or an unreadable mask is
        reported and left out, not fatal.

        A gigapixel image's mask (a chunk store, never read whole) is not yielded: it goes
        to `tiled(record, store)`, which writes it tile by tile, or, for a format without
        one, is left out with a reason naming the format that takes it."""
        for index, record in enumerate(self.records):
            if need_image and not self.project.image_path(record).is_file():
                self.skipped.append((record.id, f"image {self.project.image_path(record)} is missing; relink or remove it"))
                continue
            try:
                store = tiled_store(self.project, record)
                if store is not None:
                    if tiled is None:
                        self.skipped.append((record.id, left_out_reason(self.format, record)))
                        continue
                    tiled(record, store)
                    self._done(index, record)
                    continue
                mask = self.project.read_mask(record)
            except SegstudioError as exc:
                self.skipped.append((record.id, str(exc)))
                continue
            if mask is None:
                self.skipped.append((record.id, "no mask file"))
                continue
            yield record, mask
            self._done(index, record)

    def _done(self, index: int, record: ImageRecord) -> None:
        self.done.append(record)
        if self.progress is not None:
            self.progress(index + 1, len(self.records), record.id)

    def report(self) -> ExportReport:
        counts = {s: sum(1 for r in self.done if r.split == s) for s in SPLITS}
        return ExportReport(self.out, self.format, len(self.done), {k: v for k, v in counts.items() if v},
                            list(self.skipped), tuple(self.notes))


def select_records(project: Project, split: str | None, statuses: tuple[str, ...]) -> list[ImageRecord]:
    if split is not None:
        check_split(split)
    for status in statuses:
        check_status(status)
    return project.images_where(split=split, statuses=statuses)


def prepare_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create output folder {out}: {exc.strerror or exc}") from exc
    if not out.is_dir():
        raise ExportError(f"{out} is not a folder; choose an output folder")


def copy_image(project: Project, record: ImageRecord, dest: Path) -> None:
    """Copy the image file's bytes as they are (no re-encoding: exports lose nothing)."""
    source = project.image_path(record)
    if not source.is_file():
        raise ExportError(f"image {source} of '{record.id}' is missing; relink or remove it")
    with open(source, "rb") as handle:
        atomic_write_with(dest, lambda target: shutil.copyfileobj(handle, target))


def write_image_mask_pairs(run: ExportRun, image_dir: str, mask_dir: str, tiled_masks: bool = False) -> None:
    """Each exported image copied as it is into OUT/image_dir and its mask as an indexed PNG
    into OUT/mask_dir, both named after the image id (the masks and VOC layouts). With
    `tiled_masks`, a gigapixel image's mask is OUT/mask_dir/<id>.tif, a tiled TIFF of class
    ids with the class colours (written tile by tile); without, it is left out."""

    def tiled(record: ImageRecord, store: TiledMaskStore) -> None:
        write_tiled_mask(run.out / mask_dir / f"{record.id}.tif", store, run.project.classes)
        suffix = run.project.image_path(record).suffix.lower()
        copy_image(run.project, record, run.out / image_dir / f"{record.id}{suffix}")

    for record, mask in run.masks(tiled=tiled if tiled_masks else None):
        suffix = run.project.image_path(record).suffix.lower()
        copy_image(run.project, record, run.out / image_dir / f"{record.id}{suffix}")
        imageio.write_mask(run.out / mask_dir / f"{record.id}.png", mask, run.project.classes, compress_level=6)


def write_gray_png(path: Path, array: np.ndarray) -> None:
    atomic_write_with(path, lambda handle: Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(handle, format="PNG", compress_level=1))


def write_split_lists(folder: Path, records: list[ImageRecord], suffix: str = ".txt") -> list[Path]:
    """`train.txt`, `val.txt`, ... listing the ids (= file stems) of each split, sorted."""
    written = []
    for split in SPLITS:
        ids = sorted(r.id for r in records if r.split == split)
        if ids:
            path = folder / f"{split}{suffix}"
            atomic_write_text(path, "\n".join(ids) + "\n")
            written.append(path)
    return written


def write_classes(folder: Path, classes: ClassTable) -> None:
    atomic_write_json(folder / CLASSES_FILE, {"ignore_index": classes.ignore_index, "classes": classes.to_list()})
