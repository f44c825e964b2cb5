"""Model downloads against a tiny HTTP server on 127.0.0.1: resume, truncation, sha256,
placement; and the real offline message (this machine reaches no model host)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from segstudio.assist.catalogue import CatalogueEntry, RemoteFile, catalogue_entry
from segstudio.assist.download import download_model
from segstudio.assist.errors import DownloadError
from segstudio.assist.store import ModelStore

ENCODER = bytes(range(256)) * 4000  # about 1 MB
DECODER = b"decoder-bytes" * 3000


class _Server:
    """Serves FILES with Range support; `truncate` names paths sent half-way then cut."""

    def __init__(self) -> None:
        self.files = {"/enc.onnx": ENCODER, "/dec.onnx": DECODER}
        self.truncate: set[str] = set()
        self.ranges: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                wanted = self.headers.get("Range")
                server.ranges.append(wanted)
                start = int(wanted.split("=")[1].split("-")[0]) if wanted else 0
                if start >= len(body):
                    self.send_error(416, "Range Not Satisfiable")
                    return
                self.send_response(206 if wanted else 200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if self.path in server.truncate:
                    payload = payload[: len(payload) // 2]
                    server.truncate.discard(self.path)  # only once: a retry completes
                self.wfile.write(payload)
                self.wfile.flush()
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def entry(self, encoder_sha: str | None = None, decoder_sha: str | None = None) -> CatalogueEntry:
        return CatalogueEntry(
            "tiny", "Tiny test model", "SAM 1", "Apache-2.0", "https://example.org/tiny",
            RemoteFile(self.url + "/enc.onnx", encoder_sha or hashlib.sha256(ENCODER).hexdigest(), 1),
            RemoteFile(self.url + "/dec.onnx", decoder_sha, 0.04),
        )


@pytest.fixture
def server() -> Iterator[_Server]:
    made = _Server()
    yield made
    made.httpd.shutdown()
    made.httpd.server_close()


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "assist-models")


def _nothing_half_written(store: ModelStore) -> bool:
    if not store.folder.exists():
        return True
    return all(not p.name.endswith(".part") and not p.name.startswith(".") for p in store.folder.rglob("*"))


def test_download_verifies_places_and_registers(server: _Server, store: ModelStore, tmp_path: Path) -> None:
    seen: list[tuple[int, int, str]] = []
    model, digests = download_model(server.entry(), store, lambda d, t, i: seen.append((d, t, i)),
                                    staging=tmp_path / "downloads")
    assert Path(model.encoder).read_bytes() == ENCODER
    assert Path(model.decoder).read_bytes() == DECODER
    assert Path(model.encoder).parent == store.folder / "tiny"
    assert digests["decoder"] == hashlib.sha256(DECODER).hexdigest()  # reported: none published
    assert store.get("tiny").source == "catalogue"
    assert seen[-1][0] == seen[-1][1] == len(DECODER) and seen[0][2] == "enc.onnx"
    assert not list((tmp_path / "downloads").iterdir())


def test_a_truncated_download_resumes_with_a_range_request(server: _Server, store: ModelStore,
                                                           tmp_path: Path) -> None:
    server.truncate.add("/enc.onnx")
    staging = tmp_path / "downloads"
    with pytest.raises(DownloadError, match="truncated|broke off"):
        download_model(server.entry(), store, staging=staging)
    assert _nothing_half_written(store) and not (store.folder / "tiny").exists()
    (part,) = staging.glob("*.part")
    half = part.stat().st_size
    assert 0 < half < len(ENCODER)
    model, _ = download_model(server.entry(), store, staging=staging)
    assert f"bytes={half}-" in server.ranges
    assert Path(model.encoder).read_bytes() == ENCODER


def test_a_wrong_sha256_is_refused_and_nothing_is_placed(server: _Server, store: ModelStore,
                                                         tmp_path: Path) -> None:
    staging = tmp_path / "downloads"
    with pytest.raises(DownloadError, match="does not match its published sha256"):
        download_model(server.entry(encoder_sha="0" * 64), store, staging=staging)
    assert not (store.folder / "tiny").exists() and _nothing_half_written(store)
    assert not list(staging.glob("*.part"))
    assert "tiny" not in store.models()


def test_a_missing_file_names_the_http_answer(server: _Server, store: ModelStore, tmp_path: Path) -> None:
    server.files.pop("/dec.onnx")
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_model(server.entry(), store, staging=tmp_path / "downloads")
    assert not (store.folder / "tiny").exists()


def test_offline_for_real_says_so_and_how_to_proceed(store: ModelStore, tmp_path: Path) -> None:
    entry = catalogue_entry("efficientsam-ti")
    with pytest.raises(DownloadError) as caught:
        download_model(entry, store, staging=tmp_path / "downloads")
    message = str(caught.value)
    if "HTTP" in message:
        pytest.skip("this machine is online; the offline message cannot be seen here")
    assert "could not reach github.com" in message and "offline" in message
    assert "assist-models add efficientsam-ti" in message
    assert not store.folder.exists() or not (store.folder / "efficientsam-ti").exists()


def test_entries_without_an_address_point_at_their_source() -> None:
    entry = catalogue_entry("mobilesam")
    assert entry is not None and not entry.downloadable
    with pytest.raises(DownloadError, match="ChaoningZhang/MobileSAM.*assist-models add mobilesam"):
        download_model(entry, ModelStore(Path("/nonexistent")))
