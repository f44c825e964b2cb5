"""Fetch catalogue models: progress, resume, sha256 check, atomic placement.

A partial file grows in the downloads folder (beside the models folder) and moves into
the models folder only once complete and verified, so the models folder never holds a
half-written file. An interrupted download resumes with an HTTP Range request.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from segstudio.assist.catalogue import CatalogueEntry, RemoteFile
from segstudio.assist.errors import DownloadError
from segstudio.assist.store import ModelStore, RegisteredModel, downloads_dir
from segstudio.core.progress import ProgressCallback

CHUNK = 1 << 20
TIMEOUT_S = 20.0
USER_AGENT = "segstudio-assist-download"


def _offline_message(url: str, reason: object, entry: CatalogueEntry) -> str:
    host = urlparse(url).hostname or url
    return (
        f"could not reach {host} ({reason}): this computer seems to be offline, or the address "
        f"is blocked by a firewall or proxy. Download the files on another machine from "
        f"{entry.source_page} (or {url}), then register them with "
        f"`segstudio assist-models add {entry.name} --encoder ENC.onnx --decoder DEC.onnx`"
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_file(remote: RemoteFile, part: Path, entry: CatalogueEntry,
               progress: ProgressCallback | None = None) -> None:
    """Download (or resume) `remote` into `part`; raise DownloadError in words."""
    assert remote.url is not None
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(remote.url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # asked past the end: the part is already complete
            return
        raise DownloadError(
            f"{remote.url} answered HTTP {exc.code} {exc.reason}; the file may have moved: "
            f"see {entry.source_page}, or add files you have with `segstudio assist-models add`"
        ) from exc
    except (TimeoutError, urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(_offline_message(remote.url, reason, entry)) from exc
    with response:
        resumed = have > 0 and getattr(response, "status", 200) == 206
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else 0
        done = have
        try:
            with open(part, "ab" if resumed else "wb") as handle:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    handle.write(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total, remote.filename)
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            raise DownloadError(
                f"the download of {remote.filename} broke off after {done} bytes ({exc}); "
                "run the same download again to resume it"
            ) from exc
    if total and done < total:
        raise DownloadError(
            f"{remote.filename} arrived truncated ({done} of {total} bytes); "
            "run the same download again to resume it"
        )


def _verified(remote: RemoteFile, part: Path) -> str:
    actual = sha256_of(part)
    if remote.sha256 and actual != remote.sha256.lower():
        with contextlib.suppress(OSError):
            part.unlink()  # a wrong file cannot be resumed into a right one
        raise DownloadError(
            f"{remote.filename} does not match its published sha256 (expected {remote.sha256}, "
            f"got {actual}); the partial file was deleted. Try again later or from another network; "
            "if it keeps happening the file on the server changed"
        )
    return actual


def download_model(entry: CatalogueEntry, store: ModelStore | None = None,
                   progress: ProgressCallback | None = None,
                   staging: Path | None = None) -> tuple[RegisteredModel, dict[str, str]]:
    """Download an entry's encoder and decoder, verify, place atomically and register it.

    Returns the registered model and the sha256 of each file (reported for entries whose
    sha256 is not known)."""
    if not entry.downloadable:
        raise DownloadError(
            f"{entry.title} has no download address in the catalogue ({entry.note or 'none known'}); "
            f"get the encoder and decoder from {entry.source_page} and use "
            f"`segstudio assist-models add {entry.name} --encoder ENC.onnx --decoder DEC.onnx`"
        )
    store = store or ModelStore()
    staging = staging or downloads_dir()
    staging.mkdir(parents=True, exist_ok=True)
    parts: dict[str, Path] = {}
    digests: dict[str, str] = {}
    for role, remote in (("encoder", entry.encoder), ("decoder", entry.decoder)):
        part = staging / f"{entry.name}.{remote.filename}.part"
        fetch_file(remote, part, entry, progress)
        digests[role] = _verified(remote, part)
        parts[role] = part
    target = store.folder / entry.name
    placing = store.folder / f".{entry.name}.placing"
    shutil.rmtree(placing, ignore_errors=True)
    placing.mkdir(parents=True)
    for role, part in parts.items():
        shutil.move(str(part), placing / getattr(entry, role).filename)
    # the complete folder appears in one rename: never half a model in the models folder
    if target.exists():
        shutil.rmtree(target)
    os.replace(placing, target)
    model = RegisteredModel(
        entry.name, entry.family, str(target / entry.encoder.filename), str(target / entry.decoder.filename),
        entry.licence, "catalogue", entry.commercial_use,
    )
    store.register(model)
    return model, digests
