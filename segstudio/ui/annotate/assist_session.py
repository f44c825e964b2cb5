"""The click assist's Qt side: one model, the open image's embedding computed in the
background (a stale encode is cancelled when the user moves on), decoding on demand."""

from __future__ import annotations

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
from segstudio.assist.cache import image_key
from segstudio.assist.errors import AssistError
from segstudio.ui.jobs import JobCancelled, error_text, run_in_background


class AssistSession(QObject):
    """Owns a ClickAssistant; `set_image` starts the encode, `ready` fires when it is done."""

    ready = Signal()
    note = Signal(str)  # status-bar text: encoding, ready, errors

    def __init__(self, assistant: ClickAssistant, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.assistant = assistant
        self._key: str | None = None
        self._embedding: Embedding | None = None
        self._token: CancelToken | None = None

    @classmethod
    def from_files(cls, encoder: str | Path, decoder: str | Path, parent: QObject | None = None) -> AssistSession:
        return cls(ClickAssistant(encoder, decoder), parent)

    @classmethod
    def from_store(cls, name: str | None = None, parent: QObject | None = None) -> AssistSession:
        """The registered model `name`, or the first registered one."""
        from segstudio.assist.store import ModelStore

        store = ModelStore()
        models = store.models()
        if not models:
            raise AssistError(
                "no assist model is registered yet: run `segstudio assist-models download sam-vit-b` "
                "(or `assist-models add NAME --encoder ENC.onnx --decoder DEC.onnx` for files you have)"
            )
        model = store.get(name) if name else models[sorted(models)[0]]
        return cls.from_files(model.encoder, model.decoder, parent)

    @property
    def embedding(self) -> Embedding | None:
        return self._embedding

    def describe(self) -> str:
        return f"{self.assistant.family} on {self.assistant.provider}"

    def set_image(self, image: np.ndarray | None) -> None:
        """Start encoding `image` (cancelling a stale encode); None forgets the image."""
        if self._token is not None:
            self._token.cancel()
            self._token = None
        self._embedding = None
        if image is None:
            self._key = None
            return
        key = image_key(image)
        self._key = key
        cached = self.assistant.cached(key)
        if cached is not None:
            self._embedding = cached
            self.ready.emit()
            return
        token = CancelToken()
        self._token = token
        self.note.emit(f"Assist: preparing this image ({self.describe()})...")

        def encode(job: object) -> Embedding:
            return self.assistant.embed(image, key=key, cancel=token)

        def done(embedding: Embedding) -> None:
            if key != self._key:
                return  # the user moved on meanwhile
            self._token = None
            self._embedding = embedding
            self.note.emit(f"Assist ready ({self.describe()}, {self.assistant.last_encode_s:.1f} s)")
            self.ready.emit()

        def failed(exc: BaseException) -> None:
            if isinstance(exc, (AssistCancelled, JobCancelled)) or key != self._key:
                return
            self._token = None
            self.note.emit(f"Assist: {error_text(exc)}")

        run_in_background(encode, done, failed, owner=self)

    def predict(self, prompt: Prompt, mask_input: np.ndarray | None = None) -> AssistResult | None:
        """The decoder's answer for `prompt`, or None while the embedding is not ready."""
        if self._embedding is None or prompt.is_empty:
            return None
        return self.assistant.predict(self._embedding, prompt, mask_input)
