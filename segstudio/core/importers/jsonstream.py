"""Streaming reads of big JSON files (ijson's C parser): one value or one array's items at a
time, so a COCO file of millions of annotations never sits in memory as Python objects.

Errors come back as DatasetImportError with a line and column like `load_json`'s, although
yajl itself only names the buffer it failed in: the failing buffer is parsed again a byte
at a time to find the byte. That is where yajl stopped: the offending character, or the
last character of the offending token (json.load names its first).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from ijson.common import JSONError

# Named statically (ijson itself picks its backend by name at run time), so PyInstaller
# bundles the C parser; the pure-Python one is the fallback where no wheel has it.
try:
    import ijson.backends.yajl2_c as ijson
except ImportError:  # pragma: no cover - every wheel we ship with has the C backend
    import ijson.backends.python as ijson  # type: ignore[no-redef]

from segstudio.core.errors import DatasetImportError

BOM = b"\xef\xbb\xbf"
CHUNK = 1 << 16
_MISSING = object()


class _Reader:
    """A binary file without its UTF-8 BOM that remembers where its last chunk began; from
    `slow_from` on it hands out one byte per read, so a parse error names its byte."""

    def __init__(self, handle: BinaryIO, slow_from: int | None = None) -> None:
        self.handle = handle
        self.slow_from = slow_from
        self.delivered = 0
        self.chunk_start = 0
        self.at_end = False
        if handle.read(len(BOM)) != BOM:
            handle.seek(0)

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        if self.slow_from is not None:
            room = self.slow_from - self.delivered
            size = 1 if room <= 0 else (room if size < 0 else min(size, room))
        data = self.handle.read(size)
        self.chunk_start = self.delivered
        self.delivered += len(data)
        self.at_end = not data
        return data


def stream_items(path: Path, prefix: str) -> Iterator[Any]:
    """Every value at `prefix` (ijson's dotted path: 'annotations.item' is each element of
    the top-level 'annotations' array), numbers as int or float like `json.load`."""
    with _open(path) as handle:
        reader = _Reader(handle)
        try:
            yield from ijson.items(reader, prefix, use_float=True, buf_size=CHUNK)
        except JSONError as exc:
            raise DatasetImportError(_describe(path, exc, reader.chunk_start)) from exc
        except OSError as exc:
            raise DatasetImportError(f"cannot be read ({exc.strerror or exc})") from exc


def value_at(path: Path, key: str) -> Any:
    """The value of a top-level key (the last one, as `json.load` keeps), or None without it."""
    found = _MISSING
    for found in stream_items(path, key):  # noqa: B007 - the last one counts
        pass
    return None if found is _MISSING else found


def mentions(path: Path, needle: bytes) -> bool:
    """Whether the file's bytes hold `needle` anywhere: a plain byte search (gigabytes a
    second), to spare a parse pass for a key that is not there. A key spelt with \\u
    escapes is not seen."""
    tail = b""
    with _open(path) as handle:
        while block := handle.read(1 << 20):
            if needle in tail + block[: len(needle)] or needle in block:
                return True
            tail = block[-len(needle):]
    return False


def top_level_kind(path: Path) -> str:
    """The first event of the document: 'start_map' for an object, 'start_array', ..."""
    with _open(path) as handle:
        try:
            for _prefix, event, _value in ijson.parse(_Reader(handle), buf_size=CHUNK):
                return str(event)
        except JSONError as exc:
            raise DatasetImportError(_describe(path, exc, 0)) from exc
    return ""


@contextlib.contextmanager
def _open(path: Path) -> Iterator[BinaryIO]:
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError as exc:
        raise DatasetImportError("file not found") from exc
    except OSError as exc:
        raise DatasetImportError(f"cannot be read ({exc.strerror or exc})") from exc
    with handle:
        yield handle


def _describe(path: Path, exc: Exception, chunk_start: int) -> str:
    """'not valid JSON (line L, column C: what)' for a yajl error in the chunk at `chunk_start`."""
    text = exc.args[0] if exc.args else str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    what = str(text).strip().splitlines()[0] if str(text).strip() else "broken JSON"
    for head in ("parse error: ", "lexical error: "):
        what = what.removeprefix(head)
    what = what.rstrip(".")
    if "invalid bytes in UTF8" in what:
        return "not a UTF-8 text file (invalid bytes in a string)"
    if what == "premature EOF":
        what = "the file ends in the middle of the JSON (cut short?)"
    offset = _error_offset(path, chunk_start)
    if offset is None:
        return f"not valid JSON ({what})"
    line, column = _line_column(path, offset)
    return f"not valid JSON (line {line}, column {column}: {what})"


def _error_offset(path: Path, chunk_start: int) -> int | None:
    """The byte (after any BOM) at which yajl stops: the file is parsed again with the
    failing chunk fed one byte at a time (the end of the file for one cut short)."""
    try:
        with open(path, "rb") as handle:
            reader = _Reader(handle, slow_from=chunk_start)
            try:
                for _ in ijson.basic_parse(reader, buf_size=CHUNK, use_float=True):
                    pass
            except JSONError:
                return reader.delivered if reader.at_end else max(reader.delivered - 1, 0)
    except OSError:
        return None
    return None


def _line_column(path: Path, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters: UTF-8 continuation bytes do not count) of
    byte `offset` after any BOM; read in chunks, since a COCO file is often one long line."""
    line, column, done = 1, 0, 0
    with open(path, "rb") as handle:
        reader = _Reader(handle)
        while done < offset:
            block = reader.read(min(CHUNK, offset - done))
            if not block:
                break
            done += len(block)
            if b"\n" in block:
                line += block.count(b"\n")
                block = block[block.rindex(b"\n") + 1:]
                column = 0
            codes = np.frombuffer(block, np.uint8)
            column += int(np.count_nonzero((codes & 0xC0) != 0x80))
    return line, column + 1


def available_memory() -> int | None:
    """Bytes of memory the system can give without swapping, or None where unknown
    (Linux: MemAvailable; other POSIX: free physical pages; Windows: unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for row in handle:
                if row.startswith("MemAvailable:"):
                    return int(row.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None
