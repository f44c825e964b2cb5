"""The click assist's Qt side: one model, the open image's embedding computed in the
background (a stale encode is cancelled when the user moves on), the next images encoded
ahead of time, embeddings kept on disk in the project when given a folder, decoding on demand."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from segstudio.assist import (
    AssistCancelled,
    AssistResult,
    CancelToken,
    ClickAssistant,
    Embedding,
    Prompt,
)
from segstudio.assist.cache import DiskEmbeddingCache, image_key
from segstudio.assist.errors import AssistError
from segstudio.ui.jobs import Job, JobCancelled, error_text, run_in_background
from segstudio.ui.settings import AppSettings

log = logging.getLogger(__name__)

# The float16 embeddings a project keeps on disk (SAM 1: 2 MiB each, SAM 2: about 8 MiB).
DISK_CACHE_BYTES = 512 << 20
ImageLoader = Callable[[], np.ndarray]


class AssistSession(QObject):
    """Owns a ClickAssistant; `set_image` starts the encode, `ready` fires when it is done.

    Built with `background=True`, the model itself loads on a pool thread (a SAM ViT-B encoder
    is a few hundred MB for ONNX Runtime to read and optimise): until `loaded`, the session
    keeps the last image it was given and encodes it once the model is there, so clicks made
    meanwhile are answered then; a file that cannot be loaded ends in `load_failed`."""

    ready = Signal()
    loaded = Signal()
    load_failed = Signal(str)  # the message, already worded for the status bar
    note = Signal(str)  # status-bar text: loading, encoding, ready, errors

    def __init__(self, assistant: ClickAssistant | None, parent: QObject | None = None, name: str = "") -> None:
        super().__init__(parent)
        self.assistant = assistant
        self.name = name  # the registered model's name ('' for files opened directly)
        self.load_error: str | None = None
        self._key: str | None = None
        self._embedding: Embedding | None = None
        self._token: CancelToken | None = None
        self._ahead: tuple[Job[int], CancelToken] | None = None
        self._waiting: np.ndarray | None = None  # the image given while the model loads
        self._cache_folder: Path | None = None

    @classmethod
    def from_files(cls, encoder: str | Path, decoder: str | Path, parent: QObject | None = None,
                   name: str = "", *, background: bool = False) -> AssistSession:
        if not background:
            return cls(ClickAssistant(encoder, decoder), parent, name)
        session = cls(None, parent, name)
        session._load(Path(encoder), Path(decoder))
        return session

    @classmethod
    def from_store(cls, name: str | None = None, parent: QObject | None = None, *,
                   background: bool = False) -> AssistSession:
        """The registered model `name`; else the one chosen with "Use for assist" (while it
        is registered); else the first registered one."""
        from segstudio.assist.store import ModelStore

        store = ModelStore()
        models = store.models()
        if not models:
            raise AssistError(
                "no assist model is registered yet: open Tools > Assist models... to download or "
                "add one (or run `segstudio assist-models download sam-vit-b`)"
            )
        if name is None:
            chosen = AppSettings().assist_model()
            name = chosen if chosen in models else sorted(models)[0]
        model = store.get(name)
        return cls.from_files(model.encoder, model.decoder, parent, name, background=background)

    # -- loading the model ------------------------------------------------------------------
    def _load(self, encoder: Path, decoder: Path) -> None:
        self.note.emit(f"Assist: loading {self.name or encoder.name}...")

        def load(job: object) -> ClickAssistant:
            return ClickAssistant(encoder, decoder)

        def done(assistant: ClickAssistant) -> None:
            self.assistant = assistant
            self.set_cache_folder(self._cache_folder)
            self.note.emit(f"Assist: {self.describe()}")
            self.loaded.emit()
            waiting, self._waiting = self._waiting, None
            if waiting is not None:
                self.set_image(waiting)

        def failed(exc: BaseException) -> None:
            self._waiting = None
            self.load_error = f"could not load {self.name or encoder.name}: {error_text(exc)}"
            self.note.emit(f"Assist: {self.load_error}")
            self.load_failed.emit(self.load_error)

        run_in_background(load, done, failed, owner=self)

    @property
    def loading(self) -> bool:
        """True until the model loaded in the background is ready (or failed)."""
        return self.assistant is None and self.load_error is None

    def set_cache_folder(self, folder: Path | None) -> None:
        """Keep embeddings as float16 files in `folder` (e.g. PROJECT/.cache/assist, capped
        at DISK_CACHE_BYTES), so reopening a project does not re-encode; None: memory only."""
        self._cache_folder = folder
        if self.assistant is not None:
            self.assistant.disk_cache = None if folder is None else DiskEmbeddingCache(folder, DISK_CACHE_BYTES)

    @property
    def embedding(self) -> Embedding | None:
        return self._embedding

    def describe(self) -> str:
        """'mobilesam (SAM 1) on CPU': the model and the execution provider it runs on."""
        if self.assistant is None:
            return f"{self.name or 'the model'} ({'not loaded' if self.load_error else 'loading'})"
        what = f"{self.name} ({self.assistant.family})" if self.name else self.assistant.family
        return f"{what} on {self.assistant.provider}"

    @property
    def encoding(self) -> bool:
        """True while the open image's encode runs (or waits for the model to load)."""
        return self._token is not None or (self._waiting is not None and self.loading)

    def set_image(self, image: np.ndarray | None) -> None:
        """Start encoding `image` (cancelling a stale encode); None forgets the image. The
        same image again changes nothing (its encode goes on, or its embedding stays)."""
        if self.assistant is None:
            self._waiting = image if self.loading else None
            return
        if image is not None and self._key is not None and (self._token is not None or self._embedding is not None):
            if image_key(image) == self._key:
                return
        if self._token is not None:
            self._token.cancel()
            self._token = None
        self._embedding = None
        if image is None:
            self._key = None
            return
        assistant = self.assistant
        key = image_key(image)
        self._key = key
        cached = assistant.cached(key)
        if cached is not None:
            self._embedding = cached
            self.ready.emit()
            return
        token = CancelToken()
        self._token = token
        self.note.emit(f"Assist: preparing this image ({self.describe()})...")

        def encode(job: object) -> Embedding:
            return assistant.embed(image, key=key, cancel=token)

        def done(embedding: Embedding) -> None:
            if key != self._key:
                return  # the user moved on meanwhile
            self._token = None
            self._embedding = embedding
            self.note.emit(f"Assist ready ({self.describe()}, {assistant.last_encode_s:.1f} s)")
            self.ready.emit()

        def failed(exc: BaseException) -> None:
            if isinstance(exc, (AssistCancelled, JobCancelled)) or key != self._key:
                return
            self._token = None
            self.note.emit(f"Assist: {error_text(exc)}")

        run_in_background(encode, done, failed, owner=self)

    def predict(self, prompt: Prompt, mask_input: np.ndarray | None = None) -> AssistResult | None:
        """The decoder's answer for `prompt`, or None while the embedding is not ready."""
        if self.assistant is None or self._embedding is None or prompt.is_empty:
            return None
        return self.assistant.predict(self._embedding, prompt, mask_input)

    # -- encoding ahead ---------------------------------------------------------------------
    def encode_ahead(self, loaders: Sequence[ImageLoader]) -> Job[int] | None:
        """Encode the images `loaders` return (the next ones in the list), one after the other
        on a pool thread, into the caches; a new call or `cancel_ahead` stops the last one.
        onnxruntime releases the GIL, so the UI thread keeps painting meanwhile."""
        self.cancel_ahead()
        assistant = self.assistant
        if not loaders or assistant is None:
            return None
        token = CancelToken()

        def encode(job: Job[int]) -> int:
            done = 0
            for load in loaders:
                job.check_cancelled()
                token.check()
                image = load()
                assistant.embed(image, cancel=token)
                done += 1
            return done

        def finished(count: int) -> None:
            if self._ahead is not None and self._ahead[1] is token:
                self._ahead = None
            log.debug("assist: %d image(s) encoded ahead", count)

        def failed(exc: BaseException) -> None:
            if self._ahead is not None and self._ahead[1] is token:
                self._ahead = None
            if not isinstance(exc, (AssistCancelled, JobCancelled)):
                log.info("assist: encoding ahead stopped: %s", error_text(exc))

        job = run_in_background(encode, finished, failed, owner=self)
        self._ahead = (job, token)
        return job

    def cancel_ahead(self) -> None:
        """Stop encoding ahead (the user moved on; the order changed)."""
        if self._ahead is not None:
            job, token = self._ahead
            self._ahead = None
            token.cancel()
            job.cancel()

    @property
    def encoding_ahead(self) -> bool:
        return self._ahead is not None
