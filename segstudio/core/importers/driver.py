"""The one import loop every format shares: skips, class merging, files, transaction, report.

All or nothing: every file the import creates is recorded in the project transaction and
removed again if the import fails (or, with --strict, skips anything); the manifest is
written only at the end. A project folder the import created itself is removed as well.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from segstudio.core import gigapixel, gigapixel_project, imageio, imagery, rasters
from segstudio.core.classes import ClassDef, ClassTable
from segstudio.core.errors import DatasetImportError, MaskError, SegstudioError
from segstudio.core.importers import tiled_masks
from segstudio.core.importers.base import (
    DatasetSource,
    ImportItem,
    ImportOptions,
    ImportReport,
    Skip,
    SourceMask,
)
from segstudio.core.progress import UNKNOWN_TOTAL, ProgressCallback
from segstudio.core.project import MANIFEST_NAME, SPLITS, Project, check_split, project_transaction

log = logging.getLogger(__name__)

Scanner = Callable[[ImportOptions, "ClassTable | None"], DatasetSource]

# Threads that read images and masks ahead of the writer (decoding releases the GIL).
READ_WORKERS = 4
# How many skipped files an error message lists before it says "and N more".
MESSAGE_SKIP_LINES = 20


class _FatalImportError(DatasetImportError):
    """Stops the whole import (the project cannot take more), unlike a per-file skip."""


class ClassMerger:
    """Maps a dataset's class ids onto the project's classes: same name = same class, the
    ignore class onto the ignore class, anything new appended (keeping its id if free)."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.added: list[str] = []
        self._cache: dict[ClassDef, int] = {}

    def project_id(self, cls: ClassDef) -> int:
        cached = self._cache.get(cls)
        if cached is not None:
            return cached
        table = self.project.classes
        if cls.ignore and table.ignore_class is not None:
            result = table.ignore_class.id
        else:
            try:
                result = table.by_name(cls.name).id
            except KeyError:
                result = self._append(table, cls)
        self._cache[cls] = result
        return result

    def _append(self, table: ClassTable, cls: ClassDef) -> int:
        if cls.id not in table.ids:
            new_id = cls.id
        else:
            try:
                new_id = table.next_free_id()
            except SegstudioError as exc:
                raise _FatalImportError(
                    f"cannot add class '{cls.name}': the project already has 256 classes; "
                    "merge or delete classes first"
                ) from exc
        ignore = cls.ignore and table.ignore_class is None
        self.project.classes = table.with_class(ClassDef(new_id, cls.name, cls.color, ignore))
        self.added.append(cls.name)
        return new_id

    def to_project(self, mask: SourceMask, source: str) -> np.ndarray | tiled_masks.TiledIds:
        """The mask in project ids; ids the dataset's table does not name are an error. A
        gigapixel mask read band by band stays so, with the id map attached."""
        tiled = isinstance(mask.ids, tiled_masks.TiledIds)
        if tiled:
            counts = mask.ids.counts
            tiled_masks.check_counts(counts, mask.classes, source=source)
        else:
            counts = np.bincount(mask.ids.ravel(), minlength=256)
            imageio.check_mask_values(mask.ids, mask.classes, source=source)
        lut = np.arange(256, dtype=np.uint8)
        identity = True
        for value in np.flatnonzero(counts):
            target = self.project_id(mask.classes.by_id(int(value)))
            lut[value] = target
            identity = identity and target == value
        if identity:
            return mask.ids
        return mask.ids.mapped(lut) if tiled else lut[mask.ids]

    def adopt(self, classes: ClassTable) -> None:
        """Merge a whole table up front, so classes no mask uses yet still come in, in order."""
        for cls in classes:
            self.project_id(cls)


def run_import(root: str | Path, fmt: str, scan: Scanner, options: ImportOptions,
               progress: ProgressCallback | None = None) -> ImportReport:
    """Import a dataset into the project at `root`, creating the project if there is none."""
    root = Path(root)
    if options.split is not None:
        check_split(options.split)
    for split in options.splits:
        check_split(split)
    is_new = not (root / MANIFEST_NAME).is_file()
    project = None if is_new else Project.open(root)
    source = scan(options, None if project is None else project.classes)
    created_dirs: list[Path] = []
    if project is None:
        _make_dirs(root, ("masks", "runs", "models"), created_dirs)
        try:
            classes = (source.classes or ClassTable(())).ensure_ignore()
        except SegstudioError:
            _remove_dirs(created_dirs)
            raise
        project = Project(root, root.resolve().name, classes, [])
    try:
        with project_transaction(project) as created:
            run = _ImportRun(project, options, created, created_dirs, progress)
            if source.classes is not None:
                run.merger.adopt(source.classes)
            run.consume(source.items, parallel=source.parallel)
            if run.images == 0:
                raise DatasetImportError(_nothing_message(root, fmt, run.skipped))
            run.warnings.extend(imagery.prepare(project, run.band_names).notes)
            try:
                project.save()
            except SegstudioError as exc:
                raise DatasetImportError(str(exc)) from exc
    except BaseException:
        _remove_dirs(created_dirs)
        raise
    return ImportReport(
        project=root,
        format=fmt,
        images=run.images,
        masks=run.masks,
        splits={name: run.splits.get(name, 0) for name in SPLITS if run.splits.get(name)},
        skipped=run.skipped,
        new_classes=tuple(run.merger.added) if not is_new else (),
        created_project=is_new,
        classes=len(project.classes),
        warnings=tuple(run.warnings),
    )


class _ImportRun:
    """State of one import: counts, skips, and the files created so far."""

    def __init__(self, project: Project, options: ImportOptions, created: list[Path],
                 created_dirs: list[Path], progress: ProgressCallback | None) -> None:
        self.project = project
        self.options = options
        self.created = created
        self.created_dirs = created_dirs
        self.progress = progress
        self.merger = ClassMerger(project)
        self.images = 0
        self.masks = 0
        self.splits: dict[str, int] = {}
        self.skipped: list[tuple[str, str]] = []
        self._image_stems: set[str] | None = None
        self.warnings: list[str] = []
        self.band_names: tuple[str, ...] = ()  # the first file's own band names (OME)
        self._known_paths: dict[str, str] | None = None

    def consume(self, items: Iterable[ImportItem | Skip], parallel: bool = True) -> None:
        workers = min(READ_WORKERS, os.cpu_count() or 1) if parallel else 1
        for entry, ready in _prefetched(_guarded(items), workers):
            if isinstance(entry, Skip):
                self._skip(entry.path, entry.reason)
                continue
            mark = len(self.created)
            try:
                self._import_one(entry, ready)
            except _FatalImportError:
                raise
            except (SegstudioError, OSError, ValueError) as exc:
                self._undo_files(mark)
                self._skip(entry.source, _reason(exc, entry.source))
            if self.progress is not None:
                self.progress(self.images + len(self.skipped), UNKNOWN_TOTAL, str(entry.source))

    def _skip(self, path: Path, reason: str) -> None:
        if self.options.strict:
            raise DatasetImportError(f"{path}: {reason} (--strict: the import stopped and changed nothing)")
        log.debug("skipped %s: %s", path, reason)
        self.skipped.append((str(path), reason))

    def _undo_files(self, mark: int) -> None:
        for path in self.created[mark:]:
            with contextlib.suppress(OSError):
                path.unlink()
        del self.created[mark:]

    def _import_one(self, item: ImportItem, ready: Future[_Read] | None) -> None:
        if item.image is not None and not self.options.copy:
            # Running an import again must not add every image a second time.
            stored = self.project.stored_path(item.image)
            if self._known_paths is None:
                self._known_paths = {rec.path: rec.id for rec in self.project.images}
            if stored in self._known_paths:
                raise DatasetImportError(f"already in the project as '{self._known_paths[stored]}'")
        image_id = self._free_id(item.name)
        image_path = item.image
        if item.image_bytes is not None:
            image_path = self._project_file(f"{image_id}{item.image_suffix}")
            self._write(image_path, lambda target: target.write_bytes(item.image_bytes or b""))
        if image_path is None:
            raise DatasetImportError("no image file and no embedded image data")
        info, mask = ready.result() if ready is not None else _read(item, image_path)
        self.warnings.extend(f"{item.source}: {note}" for note in info.warnings)
        if info.channel_names and not self.band_names:
            self.band_names = info.channel_names
        ids = None
        if mask is not None:
            if mask.ids.shape != (info.height, info.width):
                raise MaskError(
                    f"mask is {mask.ids.shape[1]}x{mask.ids.shape[0]} but the image is "
                    f"{info.width}x{info.height}"
                )
            ids = self.merger.to_project(mask, source=str(item.source))
        if self.options.copy and item.image_bytes is None:
            target = self._project_file(f"{image_id}{image_path.suffix.lower()}")
            self._write(target, lambda dest: shutil.copyfile(image_path, dest))
            image_path = target
        record = self.project.add_image(image_path, split=item.split, info=info, image_id=image_id,
                                        status="labeled" if ids is not None else "unlabeled")
        if ids is not None and gigapixel_project.is_gigapixel_record(self.project, record):
            # The app reads a gigapixel image's mask from its chunk store, never from a PNG.
            store = gigapixel_project.mask_store(self.project, record)
            try:
                self.created.extend(tiled_masks.write_store(store, ids))
            except OSError as exc:
                self.project.remove_image(record.id)
                raise _FatalImportError(_write_failed(store.path, exc)) from exc
            except BaseException:
                self.project.remove_image(record.id)
                raise
            self.created_dirs.append(store.path)
            self.masks += 1
        elif ids is not None:
            if isinstance(ids, tiled_masks.TiledIds):
                ids = ids.array()  # an image decoded whole (not a TIFF): its mask is too
            mask_path = self.project.mask_path(record)
            self.created.append(mask_path)
            try:
                imageio.write_mask(mask_path, np.ascontiguousarray(ids, dtype=np.uint8), self.project.classes)
            except OSError as exc:
                self.project.remove_image(record.id)
                raise _FatalImportError(_write_failed(mask_path, exc)) from exc
            self.masks += 1
        self.images += 1
        if self._known_paths is not None:
            self._known_paths[record.path] = record.id
        self.splits[item.split] = self.splits.get(item.split, 0) + 1

    def _free_id(self, stem: str) -> str:
        """An id no image, mask or copied file of the project uses yet (never overwrite)."""
        stem = stem.strip() or "image"
        if self._image_stems is None:
            folder = self.project.root / "images"
            self._image_stems = {p.stem for p in folder.iterdir()} if folder.is_dir() else set()
        candidate, n = self.project.unique_id(stem), 2
        while (self.project.mask_path(candidate).exists() or self.project.tiled_mask_path(candidate).exists()
               or candidate in self._image_stems):
            candidate = self.project.unique_id(f"{stem}~{n}")
            n += 1
        self._image_stems.add(candidate)
        return candidate

    def _project_file(self, name: str) -> Path:
        folder = self.project.root / "images"
        if not folder.is_dir():
            _make_dirs(folder, (), self.created_dirs)
        return folder / name

    def _write(self, target: Path, writer: Callable[[Path], object]) -> None:
        """Write a file into the project, recorded for rollback; a failure here is the
        project's (read-only, disk full), so it stops the import."""
        self.created.append(target)
        try:
            writer(target)
        except OSError as exc:
            raise _FatalImportError(_write_failed(target, exc)) from exc


def _guarded(items: Iterable[ImportItem | Skip]) -> Iterator[ImportItem | Skip]:
    """The importer's stream, with file-system errors while listing turned into words."""
    iterator = iter(items)
    while True:
        try:
            entry = next(iterator)
        except StopIteration:
            return
        except OSError as exc:
            raise DatasetImportError(f"cannot read the dataset: {exc}") from exc
        yield entry


_Read = tuple[imageio.ImageInfo, SourceMask | None]


def _read(item: ImportItem, image_path: Path) -> _Read:
    """The reading half of an import (header check, mask decode): no project state, so it
    can run ahead on worker threads while the main thread writes."""
    info = imageio.read_image_info(image_path, verify=True)
    # Over MAX_PIXELS is skipped; a tightly packed big image is listed (header only) and
    # refused when something decodes it.
    # A gigapixel TIFF is read by tiles (core/gigapixel.py), never decoded whole: no pixel
    # ceiling, only the bomb check (a tiny file claiming gigapixels).
    if rasters.is_tiff(image_path) and gigapixel.is_gigapixel(info.height, info.width):
        gigapixel.check_plausible(image_path, info.height, info.width)
    else:
        imageio.check_pixel_budget(image_path, info.width, info.height, ratio=False)
    return info, (item.load_mask(info) if item.load_mask is not None else None)


def _prefetched(items: Iterable[ImportItem | Skip], workers: int
                ) -> Iterator[tuple[ImportItem | Skip, Future[_Read] | None]]:
    """Items in order, each with its read already started (a bounded window ahead)."""
    if workers <= 1:
        yield from ((entry, None) for entry in items)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="import-read") as pool:
        window: deque[tuple[ImportItem | Skip, Future[_Read] | None]] = deque()
        for entry in items:
            future = None
            if isinstance(entry, ImportItem) and entry.image is not None and entry.image_bytes is None:
                future = pool.submit(_read, entry, entry.image)
            window.append((entry, future))
            if len(window) > 2 * workers:
                yield window.popleft()
        while window:
            yield window.popleft()


def _reason(exc: BaseException, source: Path) -> str:
    text = str(exc)
    if isinstance(exc, OSError) and not isinstance(exc, SegstudioError):
        text = f"cannot be read ({exc.strerror or exc})"
    # Messages from imageio start with the path; the report already names the file.
    prefix = f"{source}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def _write_failed(path: Path, exc: OSError) -> str:
    return (f"cannot write {path}: {exc.strerror or exc}; is the project folder writable "
            "and is there free disk space? The import changed nothing")


def _nothing_message(root: Path, fmt: str, skipped: list[tuple[str, str]]) -> str:
    if not skipped:
        return f"nothing to import: the {fmt} sources hold no images; check the paths"
    lines = [f"nothing could be imported into {root}; {len(skipped)} file(s) skipped:"]
    lines += [f"  {path}: {reason}" for path, reason in skipped[:MESSAGE_SKIP_LINES]]
    if len(skipped) > MESSAGE_SKIP_LINES:
        lines.append(f"  ... and {len(skipped) - MESSAGE_SKIP_LINES} more")
    return "\n".join(lines)


def _make_dirs(root: Path, subdirs: tuple[str, ...], created: list[Path]) -> None:
    try:
        missing = [p for p in (root, *reversed(root.parents)) if not p.exists()]
        for path in sorted(missing, key=lambda p: len(p.parts)):
            path.mkdir()
            created.append(path)
        for sub in subdirs:
            path = root / sub
            if not path.exists():
                path.mkdir()
                created.append(path)
    except OSError as exc:
        _remove_dirs(created)
        raise DatasetImportError(f"cannot create {root}: {exc.strerror or exc}; check the path and permissions") from exc


def _remove_dirs(created: list[Path]) -> None:
    for path in sorted(created, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            path.rmdir()  # only empty folders: never what someone else put there
    created.clear()

