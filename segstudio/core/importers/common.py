"""Helpers the format modules share: listing folders, reading masks, class files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core import imageio
from segstudio.core.classes import ClassTable, load_class_file
from segstudio.core.errors import DatasetImportError, MaskError
from segstudio.core.importers.base import Skip, SourceMask


def list_folder(folder: Path) -> tuple[list[Path], Skip | None]:
    """The visible entries of a folder, sorted; or a Skip naming why it cannot be listed."""
    try:
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except FileNotFoundError:
        return [], Skip(folder, "folder not found; check the path")
    except NotADirectoryError:
        return [], Skip(folder, "is not a folder")
    except PermissionError:
        return [], Skip(folder, "permission denied; the folder cannot be listed")
    except OSError as exc:
        return [], Skip(folder, f"cannot be listed ({exc.strerror or exc})")
    return entries, None


def walk_files(root: Path, _top: Path | None = None, _seen: set[Path] | None = None) -> Iterator[Path | Skip]:
    """Every visible file below `root` in sorted order; unreadable folders come as Skips, and
    so do links that lead out of the folder the user gave (or back into a folder already
    walked: a link loop)."""
    top = _top if _top is not None else root.resolve()
    seen = _seen if _seen is not None else {top}
    entries, problem = list_folder(root)
    if problem is not None:
        yield problem
        return
    for entry in entries:
        if entry.is_symlink():
            escape = outside(entry, top)
            if escape is not None:
                yield escape
                continue
        if entry.is_dir():
            real = entry.resolve()
            if real in seen:
                yield Skip(entry, "a link back into a folder already imported (a loop); skipped")
                continue
            seen.add(real)
            yield from walk_files(entry, top, seen)
        else:
            yield entry


def outside(path: Path, *roots: Path) -> Skip | None:
    """A Skip when `path` (after following links) is in none of `roots`: a dataset file must
    not lead the import to files elsewhere on the machine ('..', absolute paths, links)."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError):
        return Skip(path, "a link that cannot be followed (a loop or a missing target)")
    if any(real.is_relative_to(root.resolve()) for root in roots):
        return None
    where = ", ".join(str(root) for root in roots)
    return Skip(path, f"leads outside the dataset folder ({where}) to {real}; copy the file into the dataset "
                      "to import it")


def source_files(sources: tuple[Path, ...]) -> Iterator[Path | Skip]:
    """Each source that is a file, and every file below each folder; a missing one is a Skip."""
    for source in sources:
        if source.is_file():
            yield source
        elif source.exists():
            yield from walk_files(source)
        else:
            yield Skip(source, "not found; check the path")


def read_ids_mask(path: Path, classes: ClassTable | None, infer: bool = False) -> SourceMask:
    """A mask file as ids: grayscale and palette PNGs hold ids, RGB masks are mapped through
    the class colours. With `infer` (no class table), the ids found name the classes."""
    data, mode = imageio.read_mask_array(path)
    if mode == "RGB":
        if classes is None:
            raise MaskError(
                "an RGB colour mask needs a class table with colours; pass --classes FILE"
            )
        return SourceMask(imageio.colors_to_ids(data, classes, source=str(path)), classes)
    if classes is None or infer:
        present = np.flatnonzero(np.bincount(data.ravel(), minlength=256))
        return SourceMask(data, ClassTable.from_ids(int(v) for v in present))
    return SourceMask(data, classes)


def class_file(options_file: Path | None, *candidates: Path) -> ClassTable | None:
    """The class table from --classes, else from the first candidate file that exists."""
    if options_file is not None:
        if not options_file.is_file():
            raise DatasetImportError(f"class file {options_file} not found; check the --classes path")
        return load_class_file(options_file)
    for candidate in candidates:
        if candidate.is_file():
            return load_class_file(candidate)
    return None


def load_json(path: Path) -> Any:
    """A JSON file's content; unreadable or broken files raise DatasetImportError."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise DatasetImportError(f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    except UnicodeDecodeError as exc:
        raise DatasetImportError("not a UTF-8 text file") from exc
    except FileNotFoundError as exc:
        raise DatasetImportError("file not found") from exc
    except OSError as exc:
        raise DatasetImportError(f"cannot be read ({exc.strerror or exc})") from exc
    except RecursionError as exc:
        raise DatasetImportError("JSON nested too deeply") from exc


def find_by_stem(folder: Path, stem: str) -> Path | None:
    """An image file in `folder` named `stem` with any image suffix."""
    for suffix in sorted(imageio.IMAGE_SUFFIXES):
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))

