"""The project folder: a human-readable manifest, masks as palette PNGs, runs and models.

    my-project/
      project.json        manifest: schema version, classes, images (path, split, status)
      masks/<id>.png      one 8-bit palette PNG per labelled image, pixel = class id
      images/             only images the user chose to copy in; others stay where they are
      runs/  models/      reserved for training

Every write is atomic; the manifest is written last so that a failed import or a crash
leaves the previous, consistent project behind. Several processes may hold one project (the
app, a CLI import, a second window): `save()` takes the project's write lock, re-reads the
manifest and replays this process's changes onto it (manifest_merge), so nobody's changes
are lost; a mask changed on disk by another writer is reported, never silently overwritten.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from segstudio import __version__
from segstudio.core import channels, display, imageio, tiled_mask
from segstudio.core.atomic import atomic_write_bytes, clean_stray_temps, storage_error
from segstudio.core.classes import ClassTable
from segstudio.core.errors import MaskError, ProjectError, StorageError
from segstudio.core.locking import DEFAULT_TIMEOUT_S, LockInfo, ProjectLock, lock_info
from segstudio.core.manifest_merge import ManifestState, MergeResult, merge
from segstudio.core.mask_guard import MaskStamps, file_stamp
from segstudio.core.vocabulary import SPLITS, STATUSES, Split, Status

MANIFEST_NAME = "project.json"
SCHEMA_VERSION = 2
RESERVED_DIRS = ("masks", "images", "runs", "models")
SETTINGS_CHANNELS = channels.SETTINGS_KEY


@dataclass(frozen=True)
class ImageRecord:
    """One image of the project. `id` names its mask file: masks/<id>.png."""

    id: str
    path: str
    width: int
    height: int
    split: Split = "unassigned"
    status: Status = "unlabeled"
    # What the file holds (0 / "": not recorded, e.g. a manifest older than these fields).
    channels: int = 0
    dtype: str = ""
    # Georeferencing of a GeoTIFF: 'EPSG:<code>' and the GDAL geotransform (6 numbers).
    crs: str | None = None
    geotransform: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "path": self.path,
            "width": self.width,
            "height": self.height,
            "split": self.split,
            "status": self.status,
        }
        if self.channels:
            data["channels"] = self.channels
        if self.dtype:
            data["dtype"] = self.dtype
        if self.crs is not None:
            data["crs"] = self.crs
        if self.geotransform is not None:
            data["geotransform"] = list(self.geotransform)
        return data


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise ProjectError(f"unknown {what} '{value}'; use one of {', '.join(choices)}")
    return value


def check_split(split: str) -> Split:
    """`split` if the manifest accepts it; otherwise a ProjectError naming the valid ones."""
    return cast(Split, _check_choice(split, SPLITS, "split"))


def check_status(status: str) -> Status:
    """`status` if the manifest accepts it; otherwise a ProjectError naming the valid ones."""
    return cast(Status, _check_choice(status, STATUSES, "status"))


def check_image_id(image_id: str) -> str:
    """`image_id` if it is a plain file name: it names masks/<id>.png, so an id such as
    '../../x' or '/etc/x' in a hostile manifest must never lead a write out of masks/."""
    plain = Path(image_id)
    if (not image_id or image_id in (".", "..") or "\0" in image_id or "/" in image_id
            or "\\" in image_id or plain.anchor or plain.name != image_id):
        raise ProjectError(f"image id {image_id!r} is not a plain file name (it names the mask file); "
                           "rename the image in the manifest")
    return image_id


# -- schema migration -----------------------------------------------------------------------
def _migrate_v1(data: dict[str, Any]) -> dict[str, Any]:
    """v1 (segstudio 0.0.x) kept `labels` [{name, color}] with ids by position and a
    per-image `labeled` flag; v2 has explicit class ids, an ignore flag and a status."""
    classes = [
        {"id": i, "name": item["name"], "color": item.get("color", [0, 0, 0]), "ignore": bool(item.get("void"))}
        for i, item in enumerate(data.get("labels", []))
    ]
    images = []
    for item in data.get("images", []):
        images.append(
            {
                "id": item.get("id") or Path(item["file"]).stem,
                "path": item["file"],
                "width": item.get("width", 0),
                "height": item.get("height", 0),
                "split": item.get("split", "unassigned"),
                "status": "labeled" if item.get("labeled") else "unlabeled",
            }
        )
    return {"schema_version": 2, "name": data.get("name", ""), "classes": classes, "images": images}


_MIGRATIONS = {1: _migrate_v1}


def migrate(data: dict[str, Any], source: str = MANIFEST_NAME) -> dict[str, Any]:
    version = data.get("schema_version", data.get("version"))
    if not isinstance(version, int):
        raise ProjectError(f"{source}: no whole-number 'schema_version'; is this a segstudio project?")
    if version > SCHEMA_VERSION:
        raise ProjectError(
            f"{source} has schema {version}, newer than this segstudio ({__version__}) reads "
            f"(schema {SCHEMA_VERSION}); update segstudio"
        )
    while version < SCHEMA_VERSION:
        step = _MIGRATIONS.get(version)
        if step is None:
            raise ProjectError(f"{source}: schema {version} cannot be migrated")
        try:
            data = step(data)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ProjectError(f"{source}: schema {version} manifest is malformed ({exc})") from exc
        version = data["schema_version"]
    return data


class _NewerSchemaError(ProjectError):
    """The manifest on disk was written by a newer segstudio: never overwrite it."""


def _parse_manifest(raw: bytes, root: Path) -> tuple[ManifestState, Any]:
    """A manifest file's bytes as a state (migrated to this schema) and its original version."""
    manifest = root / MANIFEST_NAME
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ProjectError(f"{manifest} is not UTF-8 text; restore it from a backup") from exc
    except json.JSONDecodeError as exc:
        raise ProjectError(
            f"{manifest} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "restore it from a backup or fix it in a text editor"
        ) from exc
    except RecursionError as exc:
        raise ProjectError(f"{manifest} is nested too deeply to be a manifest") from exc
    if not isinstance(data, dict):
        raise ProjectError(f"{manifest} must hold a JSON object")
    original_version = data.get("schema_version", data.get("version"))
    if isinstance(original_version, int) and original_version > SCHEMA_VERSION:
        try:
            migrate(data, str(manifest))
        except ProjectError as exc:
            raise _NewerSchemaError(str(exc)) from exc
    data = migrate(data, str(manifest))
    try:
        classes = ClassTable.from_list(data.get("classes", []))
    except Exception as exc:
        raise ProjectError(f"{manifest}: invalid classes ({exc})") from exc
    images = _parse_images(data.get("images", []), str(manifest))
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        raise ProjectError(f"{manifest}: 'settings' must be an object")
    name = str(data.get("name") or root.resolve().name)
    return ManifestState(name, classes, {rec.id: rec for rec in images}, settings), original_version


def _manifest_dict(state: ManifestState) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "segstudio_version": __version__,
        "name": state.name,
        "classes": state.classes.to_list(),
        "settings": state.settings,
        "images": [rec.to_dict() for rec in state.images.values()],
    }


def _encode(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _digest(raw: bytes) -> str:
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def _parse_images(items: Any, source: str) -> list[ImageRecord]:
    if not isinstance(items, list):
        raise ProjectError(f"{source}: 'images' must be a list")
    records = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        try:
            record = ImageRecord(
                id=check_image_id(str(item["id"])),
                path=str(item["path"]),
                width=int(item.get("width", 0)),
                height=int(item.get("height", 0)),
                split=check_split(str(item.get("split", "unassigned"))),
                status=check_status(str(item.get("status", "unlabeled"))),
                channels=int(item.get("channels", 0)),
                dtype=str(item.get("dtype", "")),
                crs=None if item.get("crs") is None else str(item["crs"]),
                geotransform=_geotransform(item.get("geotransform")),
            )
        except (KeyError, TypeError, ValueError, ProjectError) as exc:
            raise ProjectError(f"{source}: image entry {index} is invalid ({exc})") from exc
        if record.id in seen:
            raise ProjectError(f"{source}: image id '{record.id}' appears twice")
        seen.add(record.id)
        records.append(record)
    return records


def _geotransform(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    numbers = tuple(float(v) for v in value)
    if len(numbers) != 6:
        raise ValueError(f"geotransform needs 6 numbers, got {len(numbers)}")
    return numbers


class Project:
    """An open project: manifest state in memory, files on disk.

    Not thread-safe: the UI owns one instance on its thread, a training child process
    opens its own read-only copy.
    """

    def __init__(self, root: Path, name: str, classes: ClassTable, images: Iterable[ImageRecord],
                 settings: dict[str, Any] | None = None) -> None:
        self.root = Path(root)
        self.name = name
        self.classes = classes
        self._images: dict[str, ImageRecord] = {rec.id: rec for rec in images}
        self.settings: dict[str, Any] = dict(settings or {})
        # The manifest as last read or written (what save() diffs against) and its digest.
        self._base = ManifestState.snapshot(name, classes, self._images, self.settings)
        self._disk_digest: str | None = None
        self._masks = MaskStamps(self.root)
        self.lock_timeout = DEFAULT_TIMEOUT_S
        # Ids of images this process added that the last save renamed (another writer had
        # added a different image under the same id): old id -> new id.
        self.last_renamed: dict[str, str] = {}

    # -- create / open / save ---------------------------------------------------------------
    @classmethod
    def create(cls, root: str | os.PathLike[str], classes: ClassTable, name: str | None = None) -> Project:
        root = Path(root)
        if (root / MANIFEST_NAME).exists():
            raise ProjectError(f"{root} already holds a project; open it, or choose an empty folder")
        try:
            root.mkdir(parents=True, exist_ok=True)
            for sub in ("masks", "runs", "models"):
                (root / sub).mkdir(exist_ok=True)
        except OSError as exc:
            raise ProjectError(f"cannot create project folder {root}: {exc.strerror or exc}") from exc
        project = cls(root, name or root.resolve().name, classes.ensure_ignore(), [])
        project.save()
        return project

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> Project:
        root = Path(root)
        if root.is_file() and root.name == MANIFEST_NAME:
            root = root.parent
        manifest = root / MANIFEST_NAME
        try:
            raw = manifest.read_bytes()
        except FileNotFoundError as exc:
            raise ProjectError(f"{root} is not a segstudio project (no {MANIFEST_NAME}); create one with 'segstudio new'") from exc
        except OSError as exc:
            raise ProjectError(f"cannot read {manifest}: {exc.strerror or exc}") from exc
        state, original_version = _parse_manifest(raw, root)
        project = cls(root, state.name, state.classes, state.images.values(), state.settings)
        project._disk_digest = _digest(raw)
        for folder in (root, root / "masks"):
            clean_stray_temps(folder)  # left by a writer killed mid-save; never read
        if original_version != SCHEMA_VERSION:
            project.save()
        return project

    def to_dict(self) -> dict[str, Any]:
        return _manifest_dict(self._state())

    def save(self) -> None:
        """Lock the project, re-read the manifest, replay this process's changes since the
        last sync onto it, write it atomically, unlock; this object then holds the merged
        state, other writers' changes included."""
        self._require_root()
        try:
            with ProjectLock(self.root, timeout=self.lock_timeout):
                theirs, _ = self._read_disk()
                mine = self._state()
                result = merge(self._base, mine, theirs) if theirs is not None else MergeResult(mine)
                raw = _encode(_manifest_dict(result.state))
                atomic_write_bytes(self.manifest_path, raw)
        except StorageError as exc:
            raise ProjectError(f"cannot save {self.manifest_path}: {exc}") from exc
        self._adopt(result)
        self._base = ManifestState.snapshot(self.name, self.classes, self._images, self.settings)
        self._disk_digest = _digest(raw)

    def refresh(self) -> bool:
        """Follow what others saved: re-read the manifest and keep this process's unsaved
        changes on top of it. True when the file had changed since the last sync."""
        theirs, digest = self._read_disk()
        if theirs is None or digest == self._disk_digest:
            return False
        self._adopt(merge(self._base, self._state(), theirs))
        self._base = theirs
        self._disk_digest = digest
        return True

    def lock_info(self) -> LockInfo | None:
        """Who is writing the project right now (host, pid, since), if anyone."""
        return lock_info(self.root)

    def _state(self) -> ManifestState:
        return ManifestState(self.name, self.classes, self._images, self.settings)

    def _adopt(self, result: MergeResult) -> None:
        # In place, so that a caller holding `project.settings` sees the merged values.
        state = result.state
        self.name, self.classes = state.name, state.classes
        images, settings = dict(state.images), dict(state.settings)
        self._images.clear()
        self._images.update(images)
        self.settings.clear()
        self.settings.update(settings)
        for old, new in result.renamed.items():
            self._masks.rename(old, new)
        self.last_renamed = dict(result.renamed)

    def _read_disk(self) -> tuple[ManifestState | None, str | None]:
        """The manifest on disk now and its digest; the last synced state when unchanged;
        None when it was deleted, or unreadable (then kept aside and rewritten from memory)."""
        path = self.manifest_path
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            raise ProjectError(f"cannot read {path} to merge with: {exc.strerror or exc}; "
                               "check the drive and save again") from exc
        digest = _digest(raw)
        if digest == self._disk_digest:
            return self._base, digest
        try:
            state, _ = _parse_manifest(raw, self.root)
        except _NewerSchemaError:
            raise
        except ProjectError:
            # Torn or hand-broken: keep it for the user, then write the state held here.
            with contextlib.suppress(OSError):
                shutil.copy2(path, path.with_name(f"{MANIFEST_NAME}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}"))
            return None, None
        return state, digest

    def _require_root(self) -> None:
        if not self.root.is_dir():
            gone = storage_error(self.manifest_path, FileNotFoundError(errno.ENOENT, "no such folder"))
            raise ProjectError(f"cannot save the project: {gone} Your changes are still open here") from gone

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    # -- images -----------------------------------------------------------------------------
    @property
    def images(self) -> list[ImageRecord]:
        return list(self._images.values())

    def __len__(self) -> int:
        return len(self._images)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._images

    def image(self, image_id: str) -> ImageRecord:
        try:
            return self._images[image_id]
        except KeyError as exc:
            raise ProjectError(f"no image '{image_id}' in project {self.name}") from exc

    def images_where(self, split: str | None = None, statuses: Iterable[str] | None = None) -> list[ImageRecord]:
        wanted = set(statuses) if statuses is not None else None
        return [
            rec for rec in self._images.values()
            if (split is None or rec.split == split) and (wanted is None or rec.status in wanted)
        ]

    def unique_id(self, stem: str) -> str:
        candidate, n = stem, 2
        while candidate in self._images:
            candidate = f"{stem}~{n}"
            n += 1
        return candidate

    def stored_path(self, path: Path) -> str:
        """How the manifest refers to an image: relative to the project where possible."""
        absolute = Path(os.path.abspath(path))
        try:
            return Path(os.path.relpath(absolute, os.path.abspath(self.root))).as_posix()
        except ValueError:  # another drive on Windows
            return absolute.as_posix()

    def add_image(self, path: str | os.PathLike[str], split: str = "unassigned", status: str = "unlabeled",
                  copy: bool = False, info: imageio.ImageInfo | None = None,
                  image_id: str | None = None) -> ImageRecord:
        """Register an image (reading its header only). With `copy`, copy it into images/.
        `image_id` (importers) asks for an id other than the file's stem; it is made unique."""
        source = Path(path)
        info = info or imageio.read_image_info(source)
        image_id = self.unique_id(check_image_id(image_id or source.stem))
        if copy:
            target = self.root / "images" / f"{image_id}{source.suffix.lower()}"
            target.parent.mkdir(exist_ok=True)
            shutil.copy2(source, target)
            source = target
        record = ImageRecord(image_id, self.stored_path(source), info.width, info.height,
                             check_split(split), check_status(status), info.channels, info.dtype,
                             info.crs, info.geotransform)
        self._images[image_id] = record
        return record

    def update_image(self, image_id: str, **changes: Any) -> ImageRecord:
        record = self.image(image_id)
        if "split" in changes:
            check_split(changes["split"])
        if "status" in changes:
            check_status(changes["status"])
        record = replace(record, **changes)
        self._images[image_id] = record
        return record

    def remove_image(self, image_id: str) -> None:
        self.image(image_id)
        del self._images[image_id]

    def image_path(self, record: ImageRecord | str) -> Path:
        record = self.image(record) if isinstance(record, str) else record
        path = Path(record.path)
        return path if path.is_absolute() else self.root / path

    def read_image(self, record: ImageRecord | str) -> np.ndarray:
        """The image as shown: HxWx3 uint8 RGB (through the display mapping, if the project
        has one; a photo project reads exactly as it always has)."""
        mapping = display.mapping_of(self.settings)
        if mapping is None:
            return imageio.read_image_rgb(self.image_path(record))
        return display.render(self.read_raw(record), mapping)

    def read_raw(self, record: ImageRecord | str) -> np.ndarray:
        """The image's pixels in their own dtype and band count (HxW or HxWxC)."""
        return imageio.read_image_raw(self.image_path(record))

    def read_model_input(self, record: ImageRecord | str) -> np.ndarray:
        """What a model trains on: the photo as uint8 RGB, or with a channel table the bands
        the model sees as float32 raw values."""
        table = channels.table_of(self.settings)
        if table is None:
            return self.read_image(record)
        return channels.model_input(self.read_raw(record), table.model_indices)

    # -- masks ------------------------------------------------------------------------------
    def mask_path(self, record: ImageRecord | str) -> Path:
        image_id = record if isinstance(record, str) else record.id
        return self.root / "masks" / f"{image_id}.png"

    def tiled_mask_path(self, record: ImageRecord | str) -> Path:
        """Where a gigapixel image's mask lives: a chunk store beside the PNGs (core/tiled_mask.py)."""
        image_id = record if isinstance(record, str) else record.id
        return self.root / "masks" / f"{image_id}{tiled_mask.STORE_SUFFIX}"

    def _tiled_store(self, record: ImageRecord | str) -> tiled_mask.TiledMaskStore | None:
        path = self.tiled_mask_path(record)
        return tiled_mask.TiledMaskStore.open(path) if (path / ".zarray").is_file() else None

    def has_mask(self, record: ImageRecord | str) -> bool:
        return self.mask_path(record).is_file() or (self.tiled_mask_path(record) / ".zarray").is_file()

    def read_mask(self, record: ImageRecord | str) -> np.ndarray | None:
        """The saved mask, checked against the image size and class table; None if absent."""
        record = self.image(record) if isinstance(record, str) else record
        path = self.mask_path(record)
        stamp = file_stamp(path)  # taken first: a change while we read shows as a conflict later
        self._masks.seen(record.id, stamp)
        if stamp is None or not path.is_file():
            return None
        if record.width:
            imageio.check_mask_header(path, (record.height, record.width))
        mask = imageio.read_mask(path, self.classes)
        if record.width and mask.shape != (record.height, record.width):
            raise MaskError(
                f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
                f"{record.width}x{record.height}; delete or resize the mask"
            )
        return mask

    def blank_mask(self, record: ImageRecord | str) -> np.ndarray:
        record = self.image(record) if isinstance(record, str) else record
        return np.full((record.height, record.width), self.classes.unlabeled_id, dtype=np.uint8)

    def write_mask(self, record: ImageRecord | str, mask: np.ndarray, status: str | None = None,
                   save_manifest: bool = True) -> ImageRecord:
        """Check and atomically write a mask; optionally set the image's status. A mask that
        another writer changed (or deleted) since this process read it raises
        MaskConflictError; answer with keep_mine() or load_theirs()."""
        record = self.image(record) if isinstance(record, str) else record
        self._masks.check(record.id, self.mask_path(record))
        return self._write_mask(record, mask, status, save_manifest)

    def keep_mine(self, record: ImageRecord | str, mask: np.ndarray, status: str | None = None,
                  save_manifest: bool = True) -> Path | None:
        """Resolve a mask conflict for mine: theirs is copied to .conflicts/ (returned path),
        then mine is written."""
        record = self.image(record) if isinstance(record, str) else record
        kept = self._masks.keep_aside(record.id, self.mask_path(record))
        self._write_mask(record, mask, status, save_manifest)
        return kept

    def load_theirs(self, record: ImageRecord | str) -> np.ndarray | None:
        """Resolve a mask conflict for theirs: the mask on disk now (None: they deleted it)."""
        return self.read_mask(record)

    def mask_changed_on_disk(self, record: ImageRecord | str) -> bool:
        """Whether another writer changed this mask since this process read or wrote it."""
        image_id = record if isinstance(record, str) else record.id
        return self._masks.conflict(image_id, self.mask_path(image_id)) is not None

    def _write_mask(self, record: ImageRecord, mask: np.ndarray, status: str | None,
                    save_manifest: bool) -> ImageRecord:
        if mask.shape != (record.height, record.width):
            raise MaskError(
                f"mask for '{record.id}' is {mask.shape[1]}x{mask.shape[0]} but the image is "
                f"{record.width}x{record.height}"
            )
        imageio.check_mask_values(mask, self.classes, source=f"mask for '{record.id}'")
        if not self.root.is_dir():  # never recreate a vanished project (an unmounted drive)
            raise storage_error(self.mask_path(record), FileNotFoundError(errno.ENOENT, "no such folder"))
        path = self.mask_path(record)
        imageio.write_mask(path, mask, self.classes)
        self._masks.seen(record.id, file_stamp(path))
        if status is not None and status != record.status:
            record = self.update_image(record.id, status=status)
            if save_manifest:
                self.save()
        return record

    def delete_mask(self, record: ImageRecord | str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.mask_path(record).unlink()
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.tiled_mask_path(record))
        self._masks.seen(record if isinstance(record, str) else record.id, None)

    # -- classes ----------------------------------------------------------------------------
    def set_classes(self, classes: ClassTable) -> None:
        self.classes = classes

    def remap_class(self, old_id: int, new_id: int) -> list[str]:
        """Rewrite every saved mask so pixels of `old_id` become `new_id`; returns changed ids."""
        changed = []
        lut = np.arange(256, dtype=np.uint8)
        lut[old_id] = new_id
        for record in self._images.values():
            store = self._tiled_store(record)
            if store is not None and store.remap(lut):  # a gigapixel mask: chunk by chunk
                changed.append(record.id)
            path = self.mask_path(record)
            if not path.is_file():
                continue
            mask, _ = imageio.read_mask_array(path)
            if np.any(mask == old_id):
                imageio.write_mask(path, lut[mask], self.classes)
                self._masks.seen(record.id, file_stamp(path))
                changed.append(record.id)
        return changed

    # -- statistics -------------------------------------------------------------------------
    def pixel_counts(self, split: str | None = None) -> np.ndarray:
        """Per-id pixel counts (256 entries) over the saved masks, optionally of one split."""
        counts = np.zeros(256, dtype=np.int64)
        for record in self.images_where(split=split):
            store = self._tiled_store(record)
            if store is not None:
                counts += store.counts()
            path = self.mask_path(record)
            if path.is_file():
                mask, mode = imageio.read_mask_array(path)
                if mode != "RGB":
                    counts += np.bincount(mask.ravel(), minlength=256)
        return counts

    def summary(self, split: str | None = None) -> dict[str, Any]:
        """What `segstudio info --json` prints."""
        counts = self.pixel_counts(split)
        total = int(counts.sum())
        share = {cls.name: (float(counts[cls.id]) / total if total else 0.0) for cls in self.classes}
        records = self.images_where(split=split)
        return {
            "name": self.name,
            "path": str(self.root),
            "schema_version": SCHEMA_VERSION,
            "images": len(records),
            "masks": sum(1 for rec in records if self.has_mask(rec)),
            "splits": {s: sum(1 for r in records if r.split == s) for s in SPLITS},
            "status": {s: sum(1 for r in records if r.status == s) for s in STATUSES},
            "classes": [cls.to_dict() for cls in self.classes],
            "ignore_index": self.classes.ignore_index,
            "pixel_share": share,
            **self._imagery_summary(records),
        }

    def _imagery_summary(self, records: list[ImageRecord]) -> dict[str, Any]:
        """Bands, dtypes and georeferencing, for projects that are not plain photos."""
        if SETTINGS_CHANNELS not in self.settings and not any(r.crs or r.geotransform for r in records):
            return {}
        return {
            "channels": self.settings.get(SETTINGS_CHANNELS),
            "display": self.settings.get(display.SETTINGS_KEY),
            "rasters": {r.id: {"channels": r.channels, "dtype": r.dtype, "crs": r.crs,
                               "geotransform": list(r.geotransform) if r.geotransform else None}
                        for r in records},
        }

    def missing_files(self) -> list[ImageRecord]:
        return [rec for rec in self._images.values() if not self.image_path(rec).is_file()]


@contextlib.contextmanager
def project_transaction(project: Project) -> Iterator[list[Path]]:
    """All or nothing: yields a list to record every file created; on error those files are
    removed and the in-memory state restored, and the manifest is never written."""
    saved = (project.classes, dict(project._images), dict(project.settings))
    created: list[Path] = []
    try:
        yield created
    except BaseException:
        for path in created:
            with contextlib.suppress(OSError):
                path.unlink()
        project.classes, project._images, project.settings = saved[0], saved[1], saved[2]
        raise
    project.save()
